"""Stored outputs as Airflow Assets, so downstream DAGs can be scheduled on new images.

An operator that stores into ``s3://…`` declares that destination as its outlet (unless ``outlets=``
is given), and each run's asset event lists the objects it stored in ``extra["uris"]``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_wavespeed.utils.validation import is_s3_bucket, parse_s3_uri

if TYPE_CHECKING:
    from airflow.sdk import Asset, BaseOperator, Context


def with_default_outlet(kwargs: dict[str, Any], destination: Any) -> dict[str, Any]:
    """Declare an ``s3://`` destination as the task's Asset outlet unless ``outlets=`` was given.

    Used by the operators' ``__init__`` and ``partial()`` alike: a mapped task's outlets must be known
    when the DAG is parsed, so ``partial(dest_s3_prefix=...)`` declares it too.
    """
    if kwargs.get("outlets") is None:
        asset = destination_asset(destination)
        if asset is not None:
            kwargs["outlets"] = [asset]
    return kwargs


def destination_asset(destination: Any) -> Asset | None:
    """
    The Airflow Asset that outputs stored under an ``s3://`` destination belong to, or None.

    A destination templated past its bucket (``s3://bucket/edits/{{ ds }}``) maps to the fixed part
    (``s3://bucket/edits``): an asset must be known when the DAG is parsed; each event's extra then
    names the exact objects.
    """
    if not isinstance(destination, str) or not destination.startswith("s3://"):
        return None
    fixed = re.split(r"\{\{|\{%", destination, maxsplit=1)[0]
    if fixed != destination:
        fixed = fixed[: fixed.rfind("/")]
    uri = fixed.rstrip("/")
    if not is_s3_bucket(parse_s3_uri(uri)[0]):
        return None
    from airflow.providers.common.compat.sdk import Asset

    return Asset(uri)


def emit_asset_events(context: Context, task: BaseOperator, stored: list[str]) -> None:
    """Attach the stored URIs to this task's asset outlets, so downstream DAGs see what arrived."""
    outlet_events = context.get("outlet_events")
    if not stored or outlet_events is None:
        return
    for outlet in task.outlets or []:
        if type(outlet).__name__ == "Asset":
            outlet_events[outlet].extra["uris"] = list(stored)
