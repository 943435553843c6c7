"""The model catalog (``GET /api/v3/models``): every model's kind, base price and input JSON Schema.

:mod:`~airflow_wavespeed.catalog.entry` reads one entry, :mod:`~airflow_wavespeed.catalog.check` checks a
run's inputs against its schema, :mod:`~airflow_wavespeed.catalog.lookup` keeps the catalog per process.
"""
