"""The hook's calls that describe models and bill nothing: the catalog and the price quote.

Kept apart from :mod:`airflow_wavespeed.hooks.wavespeed` (the connection, submits and polls) as a mixin
of :class:`~airflow_wavespeed.hooks.wavespeed.WaveSpeedHook`; both speak through its ``_request``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_wavespeed.catalog.entry import ModelEntry
from airflow_wavespeed.exceptions import WaveSpeedMalformedResponseError, WaveSpeedNotFoundError
from airflow_wavespeed.hooks.transport import envelope
from airflow_wavespeed.utils.validation import check_json, finite_number, validate_model

if TYPE_CHECKING:
    from airflow_wavespeed.hooks.limits import RequestLimits
    from airflow_wavespeed.hooks.transport import Parser, T

#: The catalog lists 700+ models with their schemas: a larger answer than any prediction, read on a worker.
CATALOG_MAX_BYTES = 64 * 1024 * 1024
CATALOG_MAX_VALUES = 5_000_000
#: The quote endpoints, newest first, and where each puts the price: ``/model/price`` is what WaveSpeed's
#: newer clients call (``discounted_price`` is presumably what is billed, else ``price``); older clients
#: call ``/model/pricing`` and read ``unit_price``.
PRICE_ENDPOINTS = (
    ("/api/v3/model/price", ("discounted_price", "price", "unit_price")),
    ("/api/v3/model/pricing", ("unit_price", "price")),
)


class CatalogCalls:
    """``get_models`` and ``get_price``, for :class:`~airflow_wavespeed.hooks.wavespeed.WaveSpeedHook`."""

    if TYPE_CHECKING:
        limits: RequestLimits

        def _request(self, method: str, path: str, *, context: str, parse: Parser[T], **options: Any) -> T: ...

    def get_models(self) -> list[ModelEntry]:
        """Every model of the catalog (``GET /api/v3/models``): kind, base price and input schema. Bills
        nothing; :func:`~airflow_wavespeed.catalog.lookup.catalog_of` keeps it per process."""
        data, _ = self._request(
            "GET",
            "/api/v3/models",
            context="read the model catalog",
            parse=envelope,
            max_bytes=max(CATALOG_MAX_BYTES, self.limits.max_response_bytes),
            max_values=CATALOG_MAX_VALUES,
            list_data=True,
        )
        items = data.get("items", data.get("models"))
        if not isinstance(items, list):
            raise WaveSpeedMalformedResponseError(
                "read the model catalog: 'data' is not a list of models", http_status=200, body=str(list(data))[:200]
            )
        return [entry for entry in map(ModelEntry.from_item, items) if entry is not None]

    def get_price(self, model: str, inputs: dict[str, Any]) -> float | None:
        """Quote what one run of ``model`` with ``inputs`` would cost, in USD, without billing anything.

        Asks ``POST /api/v3/model/price``, then ``POST /api/v3/model/pricing`` when the first answers 404
        (both are in use). None when neither gives a usable price: a missing price is unknown, never free.
        """
        validate_model(model)
        body = check_json({"model_id": model, "inputs": inputs}, argument="inputs")
        for path, fields in PRICE_ENDPOINTS:
            try:
                data, _ = self._request("POST", path, context=f"quote {model}", parse=envelope, data=body)
            except WaveSpeedNotFoundError:
                continue  # this endpoint (or this model's price) is not there: try the other reading
            prices = [finite_number(data.get(name)) for name in fields]
            price = next((p for p in prices if p is not None), None)
            return None if price is None or price < 0 else price
        return None
