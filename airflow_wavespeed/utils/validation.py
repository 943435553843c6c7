"""Every argument check, run before any request is sent: a sent request costs the user money.

Each check names the argument and what is allowed. Operators call them at construction for literal
values and again at execute time, after templates are rendered. URL and ``s3://`` parsing live here
too, so every module reads a location the same way.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
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
#: Fields a ``key_template`` may use.
NAME_TEMPLATE_FIELDS = ("dag_id", "run_id", "task_id", "map_index", "prediction_id", "n", "ext")
#: The longest any timeout or wait may be: WaveSpeed deletes predictions (and outputs) after 7 days.
MAX_SECONDS = 7 * 24 * 3600.0
#: Where a copy stops when ``max_output_bytes`` is not given, by the output's media (told from its bytes):
#: a generated image is a few MiB, a minute of 4K video hundreds, a 3D scene with textures tens.
MAX_OUTPUT_BYTES_BY_MEDIA = {
    "image": 200 * 1024**2,
    "video": 4 * 1024**3,
    "audio": 1024**3,
    "3d": 2 * 1024**3,
    "text": 16 * 1024**2,
}
#: Real base64 images are far longer; a short string is more likely a prediction id passed by mistake.
MIN_BASE64_CHARS = 64

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_HTTP_URL = re.compile(r"^https?://[^/\s?#]+\S*$", re.IGNORECASE)
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_BASE64_HEAD = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")
_PREDICTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: Control characters a prompt may hold: tab and line breaks. Any other is refused (and never billed).
_PROMPT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MODEL = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)+$")


# ------------------------------------------------------------------ reading locations


def scheme_of(location: str) -> str:
    """The lower-case scheme of ``scheme://…``, or ``""`` for a plain path."""
    match = _SCHEME.match(location)
    return match.group(1).lower() if match else ""


def is_http_url(value: str) -> bool:
    """An http(s) URL with a host and no whitespace."""
    return bool(_HTTP_URL.match(value))


def is_output_url(output: str) -> bool:
    """An output WaveSpeed serves by URL; anything else is base64 image data."""
    return output.startswith(("http://", "https://"))


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` as ``(bucket, key)``; the key may be empty (a bare bucket)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def is_s3_bucket(name: str) -> bool:
    return bool(_S3_BUCKET.fullmatch(name))


def image_kind(source: str) -> str:
    """``"url"``, ``"s3"`` or ``"local"`` for one entry of ``images`` (already validated)."""
    scheme = scheme_of(source)
    if scheme in ("http", "https"):
        return "url"
    if scheme == "s3":
        return "s3"
    return "local"  # a path or file://


def is_templated(value: Any) -> bool:
    """True while a value still holds Jinja that Airflow renders at run time."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, (list, tuple)):
        return any(is_templated(v) for v in value)
    if isinstance(value, dict):
        return any(is_templated(v) for v in value.values())
    return hasattr(value, "resolve") or type(value).__name__ in {"XComArg", "PlainXComArg", "MapXComArg"}


# ------------------------------------------------------------------ plain values


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


def check_positive(value: Any, *, argument: str, maximum: float = MAX_SECONDS) -> float:
    """A positive number of seconds (a ``timedelta`` too), returned as a float: the one conversion.

    Bounded by ``maximum`` (7 days unless said otherwise): WaveSpeed deletes a prediction after 7 days,
    so no wait or timeout is longer, and an absurd value fails here instead of overflowing later.
    """
    if hasattr(value, "total_seconds"):
        value = value.total_seconds()
    if finite_number(value) is None or value <= 0:
        raise WaveSpeedInputError(f"{argument} must be a positive number of seconds, got {value!r}")
    if value > maximum:
        raise WaveSpeedInputError(
            f"{argument} must be at most {maximum:.0f} seconds ({maximum / 86400:g} days), got {value!r}"
        )
    return float(value)


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (a bool is not one); None otherwise, also for an
    int too large for a float (on which ``math.isfinite`` raises OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def check_positive_int(value: Any, *, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise WaveSpeedInputError(f"{argument} must be a positive int, got {value!r}")
    return value


def check_json(value: Any, *, argument: str) -> bytes:
    """``value`` encoded as a JSON body: plain JSON values only, and no NaN or infinity (which JSON lacks)."""
    try:
        return json.dumps(value, allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise WaveSpeedInputError(
            f"{argument} must hold JSON values only (str, int, float, bool, None, lists, dicts; no NaN or "
            f"infinity): {error}"
        ) from None


def without_bytes(value: Any) -> Any:
    """``value`` with bytes (media a task uploads before submitting) in place as a short text, so what is
    left can be checked as JSON and digested."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes, sha256 {hashlib.sha256(value).hexdigest()[:16]}>"
    if isinstance(value, dict):
        return {key: without_bytes(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_bytes(item) for item in value]
    return value


def check_usd(value: Any, *, argument: str) -> float:
    """An amount of US dollars: a finite number, zero or more."""
    amount = finite_number(value)
    if amount is None or amount < 0:
        raise WaveSpeedInputError(f"{argument} must be an amount of US dollars (a number, 0 or more), got {value!r}")
    return amount


def check_dict(value: Any, *, argument: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise WaveSpeedInputError(f"{argument} must be a dict with string keys, got {type(value).__name__}")
    return value


def check_conn_id(value: Any, *, argument: str, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value:
        raise WaveSpeedInputError(f"{argument} must be a connection id{' or None' if allow_none else ''}, got {value!r}")
    return value


# ------------------------------------------------------------------ model inputs


def validate_model(model: object) -> None:
    if not isinstance(model, str) or not _MODEL.match(model):
        raise WaveSpeedInputError(
            f"model must be a WaveSpeed model path such as 'openai/gpt-image-2/edit' (lower-case segments "
            f"separated by '/'), got {model!r}"
        )


def is_prediction_id(value: object) -> bool:
    """An id as WaveSpeed gives them: up to 128 letters, digits, '-', '_' or '.', starting with a letter
    or digit (so never '..', and it is a single path segment)."""
    return isinstance(value, str) and _PREDICTION_ID.fullmatch(value) is not None


def validate_prediction_id(prediction_id: object) -> None:
    if not is_prediction_id(prediction_id):
        raise WaveSpeedInputError(
            f"prediction_id must be the id WaveSpeed returned (up to 128 letters, digits, '-', '_', '.', "
            f"starting with a letter or digit), got {prediction_id!r}"
        )


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
        scheme = scheme_of(image)
        if scheme in ("http", "https"):
            if not is_http_url(image):
                raise WaveSpeedInputError(f"{argument}[{n}] is not a valid URL: {image!r}")
        elif scheme == "s3":
            bucket, key = parse_s3_uri(image)
            if not is_s3_bucket(bucket) or not key:
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
    control = _PROMPT_CONTROL.search(prompt)
    if control:
        raise WaveSpeedInputError(
            f"{argument} holds the control character {control.group()!r} at position {control.start()}; only "
            "tabs and line breaks are allowed"
        )
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as error:
        raise WaveSpeedInputError(
            f"{argument} is not valid text: {error.reason} at position {error.start} (a broken character, "
            "such as a lone surrogate)"
        ) from None
    return prompt


# ------------------------------------------------------------------ where outputs go


def check_output_uri(value: Any, *, argument: str = "output_uri") -> str | None:
    """None, an ``s3://bucket/prefix`` URI, or a local directory (plain path or ``file://``)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise WaveSpeedInputError(
            f"{argument} must be a local directory or an s3://bucket/prefix URI, got {value!r}"
        )
    scheme = scheme_of(value)
    if scheme == "s3":
        check_s3_prefix(value, argument=argument)
    elif scheme in ("", "file"):
        if ".." in value.removeprefix("file://").replace("\\", "/").split("/"):
            raise WaveSpeedInputError(f"{argument} may not contain '..' segments, got {value!r}")
    else:
        raise WaveSpeedInputError(
            f"{argument} must be a local directory or an s3://bucket/prefix URI; scheme {scheme}:// is not "
            f"supported (got {value!r})"
        )
    return value


def check_s3_prefix(value: Any, *, argument: str = "dest_s3_prefix") -> str:
    """``s3://bucket[/prefix]`` with a valid bucket name and no ``.``/``..`` path segments."""
    if not isinstance(value, str) or scheme_of(value) != "s3" or not value.startswith("s3://"):
        raise WaveSpeedInputError(f"{argument} must be s3://bucket[/prefix], got {value!r}")
    bucket, prefix = parse_s3_uri(value)
    if not is_s3_bucket(bucket):
        raise WaveSpeedInputError(f"{argument} must be s3://bucket[/prefix], got {value!r}")
    if any(segment in (".", "..") for segment in prefix.split("/")):
        raise WaveSpeedInputError(f"{argument} may not contain '.' or '..' segments, got {value!r}")
    return value


def check_name_template(template: Any, *, argument: str = "key_template") -> str:
    """A ``str.format`` template of output names using only :data:`NAME_TEMPLATE_FIELDS`."""
    if not isinstance(template, str) or not template.strip():
        raise WaveSpeedInputError(f"{argument} must be a non-empty str.format template")
    try:
        # Typed as when storing: n and map_index are ints, so a spec that fails on them fails here.
        template.format(**{**dict.fromkeys(NAME_TEMPLATE_FIELDS, "x"), "n": 0, "map_index": 0})
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as error:
        raise WaveSpeedInputError(
            f"{argument} {template!r} is not valid: {error}; allowed fields: {', '.join(NAME_TEMPLATE_FIELDS)}"
        ) from None
    return template


def from_json_text(value: Any) -> Any:
    """An XCom value as it was pushed: a task that ended in the triggerer leaves its XComs as JSON text
    (README, "Ending in the triggerer"), so a string holding a JSON list or object is read as one."""
    if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def check_outputs(outputs: Any, *, argument: str = "outputs") -> list[str]:
    """``outputs`` as a list: http(s) URLs or base64 strings (a ``data:`` URI or bare base64).

    A JSON list in a string is read as the list (:func:`from_json_text`).
    """
    outputs = from_json_text(outputs)
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, Sequence):
        raise WaveSpeedInputError(
            f"{argument} must be a list of output URLs or base64 strings (e.g. edit_task.output), "
            f"got {type(outputs).__name__}"
        )
    checked = []
    for n, output in enumerate(outputs):
        if isinstance(output, (list, tuple)):
            raise WaveSpeedInputError(
                f"{argument}[{n}] is a list: {argument} holds one list per mapped task instance; map this "
                f"operator too: WaveSpeedToS3Operator.partial(...).expand({argument}=edit_task.output)"
            )
        if not isinstance(output, str) or not output.strip():
            raise WaveSpeedInputError(
                f"{argument}[{n}] must be a non-empty string (http(s) URL or base64), got {output!r}"
            )
        scheme = scheme_of(output)
        if scheme in ("http", "https"):
            if not is_http_url(output):
                raise WaveSpeedInputError(f"{argument}[{n}] is not a valid URL: {output[:200]!r}")
        elif scheme:
            raise WaveSpeedInputError(
                f"{argument}[{n}] has scheme {scheme}://; only http(s) URLs are downloaded (and base64 "
                f"outputs decoded), got {output[:200]!r}"
            )
        elif output.startswith("data:"):
            if ";base64," not in output[:100]:
                raise WaveSpeedInputError(
                    f"{argument}[{n}] is a data: URI without ';base64,': {output[:100]!r}"
                )
        elif len(output) < MIN_BASE64_CHARS or not _BASE64_HEAD.match(output[:MIN_BASE64_CHARS]):
            raise WaveSpeedInputError(
                f"{argument}[{n}] is neither an http(s) URL nor base64 image data, got {output[:80]!r} "
                f"(a prediction id? store the outputs of a task that waits for completion)"
            )
        checked.append(output)
    return checked
