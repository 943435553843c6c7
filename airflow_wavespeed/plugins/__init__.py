"""The WaveSpeed views in Airflow's UI: a tab on each task instance, a gallery of a run, a list of runs.

``wavespeed_plugin`` only registers; ``www/`` is the view's code, imported by the api-server alone.
"""
