"""End-to-end tests: a real Airflow in subprocesses (``pytest -m e2e``)."""
