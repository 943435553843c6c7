"""One model of the catalog, and what its kind says it makes.

WaveSpeed names a model's kind by what it takes and what it makes (``text-to-video``, ``image-to-3d``,
``audio-to-video`` for lip sync). The media it makes is the word after the last ``-to-``; a name that is
not in the catalog is read the same way, and by the abbreviations model names use (``t2v``, ``i2v``, ``tts``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from airflow_wavespeed.utils.validation import finite_number

#: Words of a kind or a model name, and the media they mean. Checked in order: the first match wins.
_MEDIA_WORDS = tuple(
    (media, re.compile(pattern))
    for media, pattern in (
        ("video", r"(^|[^a-z0-9])(video|t2v|i2v|v2v|lip-?sync|avatar|animate)|talk"),
        ("audio", r"(^|[^a-z0-9])(audio|speech|tts|voice|music|song|sound|sfx)"),
        ("3d", r"3d|(^|[^a-z0-9])(mesh|glb)"),
        ("text", r"(^|[^a-z0-9])(text|llm|chat|caption)"),
        ("image", r"(^|[^a-z0-9])(image|t2i|i2i|photo|edit|flux|sdxl|seedream|upscal)"),
    )
)
_TARGET = re.compile(r"-to-([a-z0-9]+)$")


def media_of_kind(kind: str) -> str | None:
    """The media a kind (or a model's name) makes: image, video, audio, 3d, text, or None when it does not say."""
    text = kind.strip().lower()
    target = _TARGET.search(text)
    words = target.group(1) if target else text
    for media, pattern in _MEDIA_WORDS:
        if pattern.search(words):
            return media
    return None


@dataclass(frozen=True)
class ModelEntry:
    """What the catalog says of one model.

    :param kind: the catalog's ``type`` (e.g. ``text-to-video``), ``""`` when it gives none.
    :param request_schema: the JSON Schema of the model's inputs, None when the entry has none.
    """

    model_id: str
    kind: str = ""
    name: str = ""
    base_price: float | None = None
    request_schema: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def media(self) -> str | None:
        """What the model makes, by its kind (by its name when the kind says nothing)."""
        return media_of_kind(self.kind) or media_of_kind(self.model_id)

    @property
    def properties(self) -> dict[str, Any]:
        schema = self.request_schema or {}
        properties = schema.get("properties")
        return properties if isinstance(properties, dict) else {}

    @classmethod
    def from_item(cls, item: Any) -> ModelEntry | None:
        """Read one item of the catalog's ``data``; None for an item without a model id (skipped)."""
        if not isinstance(item, dict) or not isinstance(item.get("model_id"), str) or not item["model_id"]:
            return None
        return cls(
            model_id=item["model_id"],
            kind=str(item.get("type") or ""),
            name=str(item.get("name") or ""),
            base_price=finite_number(item.get("base_price")),
            request_schema=_request_schema(item.get("api_schema")),
        )


def _request_schema(api_schema: Any) -> dict[str, Any] | None:
    """``api_schema.api_schemas[0].request_schema`` (the model-run one when several are listed)."""
    schemas = api_schema.get("api_schemas") if isinstance(api_schema, dict) else None
    if not isinstance(schemas, list):
        return None
    runs = [s for s in schemas if isinstance(s, dict) and s.get("type") in (None, "model_run")] or schemas
    for schema in runs:
        request = schema.get("request_schema") if isinstance(schema, dict) else None
        if isinstance(request, dict) and isinstance(request.get("properties"), dict):
            return request
    return None
