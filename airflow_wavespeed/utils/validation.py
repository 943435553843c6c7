"""Argument checks that run before any request is sent: a sent request costs the user money.

Each check names the argument and what is allowed. Operators call them at construction for literal
values and again at execute time, after templates are rendered.
"""

from __future__ import annotations

import math
import re
from typing import Any

from airflow_wavespeed.exceptions import WaveSpeedInputError

#: What GPT Image 2 Edit accepts: the product page's three, then the newer model page's list.
ASPECT_RATIOS = (
    "1:1", "2:3", "3:2",
    "1:2", "2:1", "1:3", "3:1", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "9:21", "21:9",
)  # fmt: skip
MAX_IMAGES = 16
MAX_PROMPT_CHARS = 32_000
NSFW_POLICIES = ("allow", "fail", "drop")
INPUT_MODES = ("presign", "upload")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_S3_PREFIX = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
_PREDICTION_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_MODEL = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)+$")


def is_templated(value: Any) -> bool:
    """True while a value still holds Jinja that Airflow renders at run time."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, (list, tuple)):
        return any(is_templated(v) for v in value)
    if isinstance(value, dict):
        return any(is_templated(v) for v in value.values())
    return hasattr(value, "resolve") or type(value).__name__ in {"XComArg", "PlainXComArg", "MapXComArg"}


def image_kind(source: str) -> str:
    """``"url"``, ``"s3"`` or ``"local"`` for one entry of ``images`` (already validated)."""
    match = _SCHEME.match(source)
    if not match:
        return "local"
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        return "url"
    if scheme == "s3":
        return "s3"
    return "local"  # file://


def check_images(images: Any, *, argument: str = "images") -> list[str]:
    """Return ``images`` as a list: 1 to 16 http(s) URLs, ``s3://bucket/key`` URIs or local paths."""
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, (list, tuple)) or not images:
        raise WaveSpeedInputError(
            f"{argument} must be a non-empty list of image URLs (http/https), s3://bucket/key URIs or "
            f"local file paths, got {images!r}"
        )
    if len(images) > MAX_IMAGES:
        raise WaveSpeedInputError(f"{argument} holds {len(images)} images; at most {MAX_IMAGES} are allowed")
    checked = []
    for n, image in enumerate(images):
        if not isinstance(image, str) or not image.strip():
            raise WaveSpeedInputError(
                f"{argument}[{n}] must be a non-empty string (URL, s3:// URI or path), got {image!r}"
            )
        image = image.strip()
        match = _SCHEME.match(image)
        scheme = match.group(1).lower() if match else ""
        if scheme in ("http", "https"):
            if not re.match(r"^https?://[^/\s?#]+", image, re.IGNORECASE) or re.search(r"\s", image):
                raise WaveSpeedInputError(f"{argument}[{n}] is not a valid URL: {image!r}")
        elif scheme == "s3":
            if not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+", image):
                raise WaveSpeedInputError(
                    f"{argument}[{n}] must be s3://bucket/key with both a bucket and a key, got {image!r}"
                )
        elif scheme not in ("", "file"):
            raise WaveSpeedInputError(
                f"{argument}[{n}] has scheme {scheme}://, which is not supported; use http://, https://, "
                f"s3:// or a local file path, got {image!r}"
            )
        checked.append(image)
    return checked


def check_prompt(prompt: Any, *, argument: str = "prompt") -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise WaveSpeedInputError(f"{argument} must be a non-empty string describing the edit, got {prompt!r}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise WaveSpeedInputError(
            f"{argument} is {len(prompt)} characters long; at most {MAX_PROMPT_CHARS} are allowed"
        )
    return prompt


def check_choice(value: Any, allowed: tuple[str, ...], *, argument: str, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if value not in allowed:
        extra = " or None" if allow_none else ""
        raise WaveSpeedInputError(f"{argument} must be one of {', '.join(allowed)}{extra}, got {value!r}")
    return value


def check_bool(value: Any, *, argument: str) -> bool:
    if not isinstance(value, bool):
        raise WaveSpeedInputError(f"{argument} must be True or False, got {value!r}")
    return value


def check_positive(value: Any, *, argument: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if hasattr(value, "total_seconds"):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise WaveSpeedInputError(f"{argument} must be a positive number of seconds, got {value!r}")
    return float(value)


def check_dict(value: Any, *, argument: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise WaveSpeedInputError(f"{argument} must be a dict with string keys, got {type(value).__name__}")
    return value


def check_output_uri(value: Any, *, argument: str = "output_uri") -> str | None:
    """None, an ``s3://bucket/prefix`` URI, or a local directory (plain path or ``file://``)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise WaveSpeedInputError(
            f"{argument} must be a local directory or an s3://bucket/prefix URI, got {value!r}"
        )
    match = _SCHEME.match(value)
    scheme = match.group(1).lower() if match else ""
    if scheme == "s3":
        check_s3_prefix(value, argument=argument)
    elif scheme not in ("", "file"):
        raise WaveSpeedInputError(
            f"{argument} must be a local directory or an s3://bucket/prefix URI; scheme {scheme}:// is not "
            f"supported (got {value!r})"
        )
    return value


def validate_model(model: object) -> None:
    if not isinstance(model, str) or not _MODEL.match(model):
        raise WaveSpeedInputError(
            f"model must be a WaveSpeed model path such as 'openai/gpt-image-2/edit' (lower-case segments "
            f"separated by '/'), got {model!r}"
        )


def validate_prediction_id(prediction_id: object) -> None:
    if not isinstance(prediction_id, str) or not _PREDICTION_ID.match(prediction_id):
        raise WaveSpeedInputError(
            f"prediction_id must be the id WaveSpeed returned (letters, digits, '-', '_', '.'), "
            f"got {prediction_id!r}"
        )


def check_s3_prefix(value: Any, *, argument: str = "dest_s3_prefix") -> str:
    """``s3://bucket[/prefix]`` with a valid bucket name and no ``.``/``..`` path segments."""
    if not isinstance(value, str) or not _S3_PREFIX.match(value):
        raise WaveSpeedInputError(f"{argument} must be s3://bucket[/prefix], got {value!r}")
    segments = value.removeprefix("s3://").split("/")[1:]
    if any(segment in (".", "..") for segment in segments):
        raise WaveSpeedInputError(f"{argument} may not contain '.' or '..' segments, got {value!r}")
    return value
