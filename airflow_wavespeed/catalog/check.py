"""A run's inputs checked against the model's catalog entry before anything is submitted.

The entry's JSON Schema is WaveSpeed's own word on what a model takes, so it is checked with a JSON
Schema library (``jsonschema``), not by rules of ours: a missing required input, a value outside an enum
or a range, a wrong type. An input the schema does not list is refused too (a typo would otherwise be
billed and ignored), naming the closest inputs the model has.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Collection, Iterable
from typing import Any

from airflow_wavespeed.catalog.entry import ModelEntry
from airflow_wavespeed.exceptions import WaveSpeedInputError

#: Inputs every model takes: the provider sets them, whatever a schema lists.
SUBMIT_FLAGS = frozenset({"enable_sync_mode", "enable_base64_output"})
#: Input names that take a file, where a schema does not say so with a ``format``.
_MEDIA_NAME = re.compile(r"(^|_)(images?|videos?|audios?|masks?|faces?|frames?|references?|meshe?s?|url|urls)(_|$)")
_MEDIA_FORMATS = frozenset({"uri", "url", "binary", "image", "video", "audio", "file"})
#: What stands for bytes while the schema is checked (they become an upload URL later).
_UPLOAD_PLACEHOLDER = "https://upload.invalid/input"
#: Problems listed in one error; more are counted.
_MAX_LISTED = 10

log = logging.getLogger(__name__)


def media_fields(entry: ModelEntry) -> list[str]:
    """The inputs of ``entry`` that take media files: by the schema's ``format``, else by their name."""
    fields = []
    for name, spec in entry.properties.items():
        if not isinstance(spec, dict):
            continue
        items: dict[str, Any] = spec["items"] if isinstance(spec.get("items"), dict) else {}
        kinds = {spec.get("type"), items.get("type")}
        formats = {str(spec.get("format", "")).lower(), str(items.get("format", "")).lower()}
        if formats & _MEDIA_FORMATS or ("string" in kinds or "array" in kinds) and _MEDIA_NAME.search(name.lower()):
            fields.append(name)
    return fields


def check_inputs(entry: ModelEntry, inputs: dict[str, Any]) -> None:
    """Raise :class:`WaveSpeedInputError` listing every way ``inputs`` break ``entry``'s schema."""
    import jsonschema

    schema = entry.request_schema
    if schema is None:
        return
    problems = [_unknown(name, entry) for name in sorted(set(inputs) - set(entry.properties) - SUBMIT_FLAGS)]
    try:
        validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        log.warning("The catalog's schema of %s is not a valid JSON Schema (%s); not checked", entry.model_id, error.message)
        return
    document = {key: _checkable(value) for key, value in inputs.items()}
    errors = sorted(validator_class(schema).iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    problems += [_described(error) for error in errors]
    if problems:
        listed = problems[:_MAX_LISTED]
        more = f"\n- … and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        raise WaveSpeedInputError(
            f"{entry.model_id} does not take these inputs (checked against its entry in WaveSpeed's model "
            "catalog; nothing was submitted):\n- " + "\n- ".join(listed) + more
        )


def unknown_model(model: str, known: Collection[str]) -> WaveSpeedInputError:
    """The error for a model the catalog does not list, with the closest names it does."""
    closest = difflib.get_close_matches(model, list(known), n=3, cutoff=0.5)
    hint = f"closest: {', '.join(closest)}" if closest else f"it lists {len(known)} models"
    return WaveSpeedInputError(
        f"model {model!r} is not in WaveSpeed's model catalog ({hint}); nothing was submitted. "
        "(check_catalog=False skips this check, e.g. for a model the catalog does not list yet.)"
    )


def _unknown(name: str, entry: ModelEntry) -> str:
    allowed = list(entry.properties)
    closest = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {closest[0]!r}?" if closest else ""
    return f"inputs[{name!r}] is not an input of {entry.model_id} (it takes: {', '.join(allowed)}){hint}"


def _described(error: Any) -> str:
    where = "".join(f"[{part!r}]" for part in error.absolute_path)
    return f"inputs{where}: {error.message}" if where else f"inputs: {error.message}"


def _checkable(value: Any) -> Any:
    """``value`` as JSON for the schema: bytes (sent as an upload) stand as a URL."""
    if isinstance(value, (bytes, bytearray)):
        return _UPLOAD_PLACEHOLDER
    if isinstance(value, (list, tuple)):
        return [_checkable(item) for item in value]
    return value


def named_media(fields: Iterable[str], entry: ModelEntry | None) -> list[str]:
    """The media inputs of a run: the ones the DAG author named, else those of the model's schema."""
    named = list(fields)
    return named if named or entry is None else media_fields(entry)
