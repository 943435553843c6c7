"""Runtime-mutable knobs of the WaveSpeed emulator: latency, sizes and fault injection."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_RATE_FIELDS = frozenset(
    {
        "fail_rate",
        "submit_429_rate",
        "poll_5xx_rate",
        "poll_429_rate",
        "malformed_rate",
        "drop_rate",
        "submit_drop_rate",
        "submit_5xx_rate",
        "slow_rate",
        "upload_5xx_rate",
        "sync_504_rate",
    }
)


@dataclass
class EmulatorConfig:
    """Every behaviour a test may want to change, read afresh by the server on each request.

    Assigning a field of a running emulator's config takes effect on the next request, which lets one
    test walk a client through several fault scenarios without restarting the server.
    Latency settings are captured per prediction when it is created.
    """

    # Latency: a prediction completes on the (processing_polls + 1)-th result GET AND once
    # processing_seconds passed since it was created. Sync-mode predictions ignore processing_polls.
    processing_polls: int = 1
    processing_seconds: float = 0.0
    # Output images are the real API sizes (1024x1024, 1024x1536, ...) times this factor.
    scale: float = 1.0
    balance: float = 100.0
    # What POST /api/v3/model/pricing quotes, in USD, for a model not named in model_prices; each completed
    # prediction lowers the balance by its price.
    price_usd: float = 0.06
    # Per-model prices, "model=USD,model=USD"; "model=none" answers no price for that model.
    model_prices: str | None = None
    sync_timeout_seconds: float = 30.0
    # The HTTP status of that code-5004 answer: the docs do not say whether it is 200 or 504.
    sync_timeout_http_status: int = 200
    max_upload_bytes: int = 64 * 1024 * 1024
    # When > 0, output files are served padded to this many bytes (streamed): zeros after an image, a
    # trailing ISO-BMFF `free` box after an MP4 (so it stays a valid MP4).
    large_output_bytes: int = 0
    # Output URLs end in their extension (/outputs/{id}/0.mp4); False serves /outputs/{id}/0, as real CDN
    # URLs often are.
    output_url_extensions: bool = True
    # None serves each output with its true Content-Type; a string serves every output with that one (a
    # lying server, to prove a client types files by their bytes).
    output_content_type: str | None = None
    # processing_seconds times this factor per media a model makes: "image=1,audio=2,3d=3,video=4".
    media_latency_factors: str = "image=1,text=1,audio=2,3d=3,video=4"
    # Which price quotes answer: "price" (POST /api/v3/model/price), "pricing" (/model/pricing); the other 404s.
    price_endpoints: str = "price,pricing"
    # The discount_rate POST /api/v3/model/price answers; the billed (discounted) price is lowered by it.
    price_discount_rate: float = 0.0
    # The API docs are ambiguous about a data: prefix on base64 outputs; clients must cope with both.
    base64_data_uri_prefix: bool = False
    fetch_timeout_seconds: float = 10.0
    # Base of the URLs the emulator hands out; None derives it from each request's Host header.
    public_base_url: str | None = None
    # Seed of the random generator behind every *_rate knob (None: unpredictable).
    seed: int | None = None

    # Faults, all off by default.
    fail_rate: float = 0.0
    submit_429_count: int = 0
    submit_429_rate: float = 0.0
    retry_after: str | None = "1"
    unavailable_retry_after: str | None = None
    poll_5xx_rate: float = 0.0
    poll_429_rate: float = 0.0
    malformed_rate: float = 0.0
    drop_rate: float = 0.0
    submit_drop_rate: float = 0.0
    submit_5xx_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    # How long a submit whose prompt holds "[slow-submit]" waits, after creating the prediction, to answer.
    slow_submit_seconds: float = 10.0
    upload_5xx_rate: float = 0.0
    sync_504_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable view, as answered by the control endpoint."""
        return dataclasses.asdict(self)

    def price_of(self, model: str) -> float | None:
        """The base price of one run of ``model``: ``model_prices``, else the catalog's ``base_price`` of a
        listed model, else ``price_usd`` (which is also GPT Image 2 Edit's price, as it always was)."""
        from airflow_wavespeed.emulator import catalog

        prices = parse_model_prices(self.model_prices)
        if model in prices:
            return prices[model]
        listed = catalog.find(model)
        if listed is not None and model != catalog.EDIT_MODEL:
            return listed.base_price
        return self.price_usd

    def latency_factor(self, media: str) -> float:
        """How many times ``processing_seconds`` a model making ``media`` takes (1 when not named)."""
        return parse_factors(self.media_latency_factors).get(media, 1.0)

    def price_endpoint_enabled(self, name: str) -> bool:
        """Whether the price quote ``name`` (``price`` or ``pricing``) answers, or 404s."""
        return name in parse_endpoints(self.price_endpoints)

    def copy(self) -> EmulatorConfig:
        """An independent copy (all fields are immutable values)."""
        return dataclasses.replace(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply JSON-ish changes after validating all of them, so a bad request changes nothing."""
        coerced = {name: coerce_field(name, value) for name, value in changes.items()}
        for name, value in coerced.items():
            setattr(self, name, value)

    def restore(self, other: EmulatorConfig) -> None:
        """Copy every field of ``other`` into this object, keeping references to it valid."""
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(other, field.name))


def field_types() -> dict[str, Any]:
    """Resolved annotation of every config field (the module uses postponed annotations)."""
    hints = typing.get_type_hints(EmulatorConfig)
    return {field.name: hints[field.name] for field in dataclasses.fields(EmulatorConfig)}


def coerce_field(name: str, value: Any, *, from_text: bool = False) -> Any:
    """Check (and for CLI text, parse) one field value; raise ValueError with a readable reason."""
    types = field_types()
    if name not in types:
        raise ValueError(f"unknown config field {name!r}")
    annotation = types[name]
    args = typing.get_args(annotation)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), annotation) if args else annotation
    if value is None or (from_text and optional and str(value).lower() in {"none", "null"}):
        if optional:
            return None
        raise ValueError(f"{name} must not be null")
    if from_text:
        value = _parse_text(name, base, str(value))
    if base is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a boolean")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer")
        if value < 0 and name != "seed":
            raise ValueError(f"{name} must be >= 0")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number")
        number = float(value)
        if number < 0:
            raise ValueError(f"{name} must be >= 0")
        if name in _RATE_FIELDS and number > 1:
            raise ValueError(f"{name} must be between 0 and 1")
        if name == "scale" and number <= 0:
            raise ValueError("scale must be > 0")
        return number
    if base is str:
        if name == "media_latency_factors" and isinstance(value, Mapping):
            value = ",".join(f"{key}={factor}" for key, factor in value.items())
        if name == "price_endpoints" and isinstance(value, Sequence) and not isinstance(value, str):
            value = ",".join(str(item) for item in value)
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        if name in ("retry_after", "unavailable_retry_after"):
            _check_retry_after(value)
        if name == "model_prices":
            parse_model_prices(value)
        if name == "media_latency_factors":
            parse_factors(value)
        if name == "price_endpoints":
            parse_endpoints(value)
        return value
    raise ValueError(f"{name} has an unsupported type")  # pragma: no cover - all fields are covered


def _parse_text(name: str, base: Any, text: str) -> Any:
    """Turn a command-line string into the field's type."""
    try:
        if base is bool:
            lowered = text.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(text)
        if base is int:
            return int(text)
        if base is float:
            return float(text)
    except ValueError:
        raise ValueError(f"{name}: cannot parse {text!r}") from None
    return text


def parse_model_prices(text: str | None) -> dict[str, float | None]:
    """``"a/b=0.1,c/d=none"`` as ``{"a/b": 0.1, "c/d": None}``; raises ValueError on anything else."""
    prices: dict[str, float | None] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        model, sep, price = item.rpartition("=")
        if not sep or not model:
            raise ValueError(f"model_prices: {item!r} is not model=USD")
        if price.strip().lower() == "none":
            prices[model.strip()] = None
            continue
        try:
            value = float(price)
        except ValueError:
            raise ValueError(f"model_prices: {price!r} is not a price") from None
        if value < 0:
            raise ValueError("model_prices: a price must be >= 0")
        prices[model.strip()] = value
    return prices


def parse_factors(text: str | Mapping[str, float]) -> dict[str, float]:
    """``"video=4,audio=2"`` (or a mapping) as ``{"video": 4.0, "audio": 2.0}``; ValueError otherwise."""
    items = text.items() if isinstance(text, Mapping) else (
        part.strip().partition("=")[::2] for part in text.split(",") if part.strip()
    )  # fmt: skip
    factors: dict[str, float] = {}
    for media, factor in items:
        try:
            value = float(factor)
        except (TypeError, ValueError):
            raise ValueError(f"media_latency_factors: {factor!r} for {media!r} is not a number") from None
        if not media or value < 0:
            raise ValueError("media_latency_factors: write media=factor, e.g. video=4, with factors >= 0")
        factors[str(media).strip()] = value
    return factors


def parse_endpoints(value: str | Sequence[str]) -> set[str]:
    """``"price,pricing"`` (or a list) as a set; ValueError for a name that is neither."""
    names = {part.strip() for part in (value.split(",") if isinstance(value, str) else value) if part.strip()}
    unknown = names - {"price", "pricing"}
    if unknown:
        raise ValueError(f"price_endpoints: {sorted(unknown)} unknown; allowed: price, pricing")
    return names


def _check_retry_after(value: str) -> None:
    """Retry-After must be a non-negative number of seconds (fractions allowed for fast tests)."""
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError("retry_after must be a number of seconds, e.g. '1' or '0.2'") from None
    if seconds < 0:
        raise ValueError("retry_after must be >= 0")
