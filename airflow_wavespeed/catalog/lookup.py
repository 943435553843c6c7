"""The catalog, fetched once per process and base URL and kept for an hour, as WaveSpeed's own MCP
server and CLI keep it. Reading it bills nothing; a catalog that cannot be read is no reason to fail a
run (the API checks inputs too), so the check is then skipped with a warning."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_wavespeed.catalog.check import unknown_model
from airflow_wavespeed.catalog.entry import ModelEntry
from airflow_wavespeed.exceptions import WaveSpeedError

if TYPE_CHECKING:
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

#: How long a fetched catalog is trusted.
CATALOG_TTL_SECONDS = 3600.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Catalog:
    """Every model the catalog lists, by id."""

    entries: dict[str, ModelEntry]


_CACHE: dict[str, tuple[float, Catalog]] = {}
_LOCK = threading.Lock()


def catalog_of(hook: WaveSpeedHook) -> Catalog | None:
    """The catalog of the hook's API, from the cache while it is fresh; None when it cannot be read."""
    key = hook.base_url
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and time.monotonic() - cached[0] < CATALOG_TTL_SECONDS:
            return cached[1]
    try:
        entries = hook.get_models()
    except WaveSpeedError as error:
        log.warning("WaveSpeed's model catalog could not be read (%s); the inputs are not checked against it", error)
        return None
    catalog = Catalog({entry.model_id: entry for entry in entries})
    with _LOCK:
        _CACHE[key] = (time.monotonic(), catalog)
    return catalog


def model_entry(hook: WaveSpeedHook, model: str) -> ModelEntry | None:
    """The catalog entry of ``model``; None when the catalog cannot be read. A model it does not list is
    refused (:func:`~airflow_wavespeed.catalog.check.unknown_model`), before anything is submitted."""
    catalog = catalog_of(hook)
    if catalog is None or not catalog.entries:
        return None
    entry = catalog.entries.get(model)
    if entry is None:
        raise unknown_model(model, catalog.entries)
    return entry


def forget_catalogs() -> None:
    """Drop every cached catalog (the next lookup fetches again)."""
    with _LOCK:
        _CACHE.clear()
