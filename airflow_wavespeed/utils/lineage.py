"""Which images fed an edit and where its outputs went, for lineage tools (OpenLineage, Marquez, DataHub).

Two channels, one set of locations:

- Airflow's hook-lineage collector (through ``apache-airflow-providers-common-compat``, which covers
  Airflow 3.1 to 3.3): :func:`report_to_airflow`, called when a task has its inputs and outputs.
- OpenLineage facets: :func:`openlineage_facets`, returned by the operators'
  ``get_openlineage_facets_on_complete``. Datasets follow OpenLineage's naming spec: S3 as namespace
  ``s3://bucket`` and the key as name, local files as namespace ``file`` and the path, URLs as namespace
  ``scheme://host[:port]`` and the path.

Locations are URIs: ``https://…`` (inputs given as URLs, and outputs WaveSpeed serves), ``s3://bucket/key``,
``file:///abs/path``. Base64 outputs and query strings (which can hold signatures) are never reported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_wavespeed.utils.validation import parse_s3_uri, scheme_of

log = logging.getLogger(__name__)


def location_uri(location: str) -> str | None:
    """A lineage URI for an input, a stored output or an output URL; None for any other scheme.

    Callers pass locations only (base64 outputs are always stored first, and only where they went is
    reported), so a string without a scheme is a local path.
    """
    scheme = scheme_of(location)
    if scheme in ("http", "https"):
        parts = urlsplit(location)
        return urlunsplit((parts.scheme.lower(), parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))
    if scheme == "s3":
        return location
    if scheme in ("", "file"):
        return Path(location.removeprefix("file://")).expanduser().resolve().as_uri()
    return None


def dataset_name(uri: str) -> tuple[str, str]:
    """OpenLineage's ``(namespace, name)`` for a lineage URI."""
    scheme = scheme_of(uri)
    if scheme == "s3":
        bucket, key = parse_s3_uri(uri)
        return f"s3://{bucket}", key
    if scheme == "file":
        return "file", urlsplit(uri).path
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}", parts.path or "/"


def uris(locations: Iterable[str]) -> list[str]:
    return [uri for uri in (location_uri(location) for location in locations) if uri is not None]


def lineage_active() -> bool:
    """Whether a lineage listener is on (the OpenLineage provider, enabled): a task that reports lineage
    must finish on a worker, where listeners run."""
    try:
        from airflow.providers.openlineage.conf import is_disabled
    except ImportError:
        return False
    try:
        return not is_disabled()
    except Exception:  # a misconfigured provider: finish on the worker, where its errors are seen
        return True


def report_to_airflow(task: Any, *, inputs: Iterable[str], outputs: Iterable[str]) -> None:
    """Hand the locations to Airflow's hook-lineage collector, attributed to ``task.hook`` (built only when
    something reads the lineage: a resumed task has no other use for it).

    Lineage is reported, never required: a collector that fails is logged and the task goes on.
    """
    try:
        if not hook_lineage_read():
            return
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        collector = get_hook_lineage_collector()  # type: ignore[no-untyped-call]
        hook = task.hook
        for uri in uris(inputs):
            collector.add_input_asset(context=hook, uri=uri)
        for uri in uris(outputs):
            collector.add_output_asset(context=hook, uri=uri)
    except Exception as error:  # lineage must never fail an edit that succeeded
        log.warning("Could not report lineage to Airflow: %s", error)


def hook_lineage_read() -> bool:
    """Whether a plugin reads hook lineage (OpenLineage registers one when enabled).

    Without one, Airflow's collector is a no-op, but building even that imports every installed
    provider's asset handlers (the Amazon provider's pulls in boto3): about 0.2 s of CPU in each task
    process that resumes an edit, for nothing. So the collector is only asked for when it is read.
    """
    try:
        from airflow.sdk import plugins_manager  # Airflow >= 3.2

        return bool(plugins_manager.get_hook_lineage_readers_plugins())
    except ImportError:
        from airflow import plugins_manager as core_plugins  # Airflow 3.1

        core_plugins.initialize_hook_lineage_readers_plugins()  # type: ignore[attr-defined]
        return bool(core_plugins.hook_lineage_reader_classes)  # type: ignore[attr-defined]


def openlineage_facets(*, inputs: Iterable[str], outputs: Iterable[str]) -> Any:
    """An ``OperatorLineage`` with the inputs and outputs as OpenLineage datasets (imports on use)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset

    def datasets(locations: Iterable[str]) -> list[Any]:
        return [Dataset(namespace=ns, name=name) for ns, name in (dataset_name(u) for u in dict.fromkeys(uris(locations)))]

    return OperatorLineage(inputs=datasets(inputs), outputs=datasets(outputs))
