"""The emulator's model catalog (``GET /api/v3/models``): real WaveSpeed model ids of every kind, with
their input JSON Schemas, and the kind of a model the catalog does not list, told from its name.

Where the ids and inputs come from (public material read for this module, December 2026):
- ``openai/gpt-image-2/edit``: the product page and WAVESPEED_API.md (the emulator's own edit model).
- ``wavespeed-ai/wan-2.2/i2v-480p`` and ``t2v-480p`` ($0.15 per 5 s): WaveSpeed's Wan 2.2 collection, as
  cited by public clients; durations 5 or 8 s as Wan 2.2's own API documents them.
- ``wavespeed-ai/hunyuan3d-v3/image-to-3d`` (inputs ``image``, ``enable_pbr``, ``face_count``
  40000-1500000, ``generate_type``), ``minimax/music-02`` (``prompt``, ``lyrics``, ``bitrate``,
  ``sample_rate``), ``elevenlabs/eleven-v3``: a public listing of WaveSpeed's model docs pages.
- ``minimax/speech-02-hd``: WaveSpeed's node list in a public integration; its inputs follow MiniMax's
  TTS (``text``, ``voice_id``, ``speed`` 0.5-2).
- ``wavespeed-ai/infinitetalk`` (``image``, ``audio``, ``prompt``, ``resolution`` 480p/720p, ``seed``),
  ``wavespeed-ai/video-upscaler`` (``video``, ``target_resolution``), ``wavespeed-ai/any-llm`` (``prompt``,
  ``model``): WaveSpeed's docs pages and public clients calling them.
- ``wavespeed-ai/flux-dev``, ``bytedance/seedream-v4``, ``kwaivgi/kling-v2.1-i2v-standard``,
  ``bytedance/seedance-v1-pro-t2v-480p``: WaveSpeed model ids used by public clients; their schemas here
  are plausible, not copied.
Schemas are draft 7; media inputs are ``{"type": "string", "format": "uri"}`` (or arrays of them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from airflow_wavespeed.emulator import images

EDIT_MODEL = "openai/gpt-image-2/edit"
KINDS = ("text-to-image", "image-to-image", "text-to-video", "image-to-video", "video-to-video",
         "audio-to-video", "text-to-audio", "image-to-3d", "text-to-3d", "text-to-text")  # fmt: skip

_URI: dict[str, Any] = {"type": "string", "format": "uri"}
_FLAGS: dict[str, Any] = {
    "enable_sync_mode": {"type": "boolean", "default": False, "description": "Wait for the result in the POST."},
    "enable_base64_output": {"type": "boolean", "default": False, "description": "Answer base64, not URLs."},
}


def _text(description: str, max_length: int = 10000) -> dict[str, Any]:
    return {"type": "string", "description": description, "maxLength": max_length}


def _enum(values: list[Any], default: Any, kind: str = "string") -> dict[str, Any]:
    return {"type": kind, "enum": values, "default": default}


def _range(minimum: float, maximum: float, default: float, kind: str = "number") -> dict[str, Any]:
    return {"type": kind, "minimum": minimum, "maximum": maximum, "default": default}


_SEED = _range(-1, 2147483647, -1, "integer")


@dataclass(frozen=True)
class Model:
    """One catalog entry: id, kind (WaveSpeed's ``type``), base price in USD and input properties."""

    model_id: str
    name: str
    kind: str
    base_price: float
    properties: dict[str, Any]
    required: tuple[str, ...]
    description: str = ""
    #: The price is per this many seconds of ``duration`` (video models billed by length), else per run.
    per_seconds: float | None = None
    flags: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def media(self) -> str:
        """What the model makes: the word after the last ``-to-``."""
        return self.kind.rsplit("-to-", 1)[-1]

    def request_schema(self) -> dict[str, Any]:
        """The JSON Schema of the model's inputs, as ``api_schema.api_schemas[0].request_schema``."""
        properties = {**self.properties, **(_FLAGS if self.flags else {})}
        return {
            "type": "object",
            "properties": properties,
            "required": list(self.required),
            "x-order-properties": list(properties),
        }

    def entry(self, base_price: float | None = None) -> dict[str, Any]:
        """The catalog item as ``GET /api/v3/models`` answers it."""
        price = self.base_price if base_price is None else base_price
        unit = f" per {self.per_seconds:g} s of video" if self.per_seconds else " per run"
        return {
            "model_id": self.model_id,
            "name": self.name,
            "description": self.description or f"{self.name} ({self.kind}) on the WaveSpeed emulator",
            "type": self.kind,
            "base_price": price,
            "formula": f"{price:g} USD{unit}",
            "api_schema": {
                "api_schemas": [
                    {"type": "model_run", "method": "POST", "api_path": f"/api/v3/{self.model_id}",
                     "request_schema": self.request_schema()}
                ]
            },
        }  # fmt: skip

    def media_inputs(self) -> dict[str, str]:
        """Input name -> the media it must be (image, video, audio), for every URI input."""
        found = {}
        for name, spec in self.properties.items():
            item = spec.get("items", spec) if spec.get("type") == "array" else spec
            if item.get("format") == "uri":
                found[name] = media_of_input(name)
        return found


def media_of_input(name: str) -> str:
    """The media an input holds, by its name: ``video``, ``audio`` (audio, voice, song...) or ``image``."""
    if "video" in name:
        return "video"
    if any(word in name for word in ("audio", "voice", "song", "instrumental")):
        return "audio"
    return "image"


_WAN_480P = {"832*480": None, "480*832": None}
MODELS: tuple[Model, ...] = (
    Model(EDIT_MODEL, "GPT Image 2 Edit", "image-to-image", 0.06, {
        "images": {"type": "array", "items": _URI, "minItems": 1, "maxItems": 16},
        "prompt": _text("What to change.", 32000),
        "aspect_ratio": _enum(list(images.ASPECT_RATIOS), "1:1"),
        "resolution": _enum(["1k", "2k", "4k"], "1k"),
        "quality": _enum(["low", "medium", "high"], "medium"),
        "output_format": _enum(["jpeg", "png"], "png"),
    }, ("images", "prompt")),
    Model("wavespeed-ai/flux-dev", "FLUX.1 [dev]", "text-to-image", 0.003, {
        "prompt": _text("The image to make."),
        "size": {"type": "string", "default": "1024*1024", "pattern": r"^\d{3,4}\*\d{3,4}$"},
        "num_inference_steps": _range(1, 50, 28, "integer"),
        "guidance_scale": _range(1.0, 20.0, 3.5),
        "num_images": _range(1, 4, 1, "integer"),
        "seed": _SEED,
    }, ("prompt",)),
    Model("bytedance/seedream-v4", "Seedream 4.0", "text-to-image", 0.027, {
        "prompt": _text("The image to make."),
        "aspect_ratio": _enum(["1:1", "3:2", "2:3", "4:3", "3:4", "16:9", "9:16"], "1:1"),
        "output_format": _enum(["jpeg", "png"], "jpeg"),
    }, ("prompt",)),
    Model("wavespeed-ai/wan-2.2/i2v-480p", "Wan 2.2 image-to-video 480p", "image-to-video", 0.15, {
        "image": _URI,
        "prompt": _text("How the scene moves.", 800),
        "negative_prompt": _text("What to avoid.", 800),
        "duration": _enum([5, 8], 5, "integer"),
        "seed": _SEED,
    }, ("image", "prompt"), per_seconds=5),
    Model("kwaivgi/kling-v2.1-i2v-standard", "Kling 2.1 image-to-video", "image-to-video", 0.25, {
        "image": _URI,
        "prompt": _text("How the scene moves.", 2500),
        "duration": _enum([5, 10], 5, "integer"),
        "guidance_scale": _range(0.0, 1.0, 0.5),
    }, ("image",), per_seconds=5),
    Model("wavespeed-ai/wan-2.2/t2v-480p", "Wan 2.2 text-to-video 480p", "text-to-video", 0.15, {
        "prompt": _text("The clip to make.", 800),
        "negative_prompt": _text("What to avoid.", 800),
        "size": _enum(list(_WAN_480P), "832*480"),
        "duration": _enum([5, 8], 5, "integer"),
        "seed": _SEED,
    }, ("prompt",), per_seconds=5),
    Model("bytedance/seedance-v1-pro-t2v-480p", "Seedance 1.0 Pro text-to-video 480p", "text-to-video", 0.15, {
        "prompt": _text("The clip to make.", 2000),
        "aspect_ratio": _enum(["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"], "16:9"),
        "duration": _range(2, 12, 5, "integer"),
        "seed": _SEED,
    }, ("prompt",), per_seconds=5),
    Model("wavespeed-ai/video-upscaler", "Video upscaler", "video-to-video", 0.025, {
        "video": _URI,
        "target_resolution": _enum(["720p", "1080p", "2k", "4k"], "1080p"),
    }, ("video",)),
    Model("wavespeed-ai/infinitetalk", "InfiniteTalk lip sync", "audio-to-video", 0.15, {
        "image": _URI,
        "audio": _URI,
        "prompt": _text("How the speaker looks and moves.", 2000),
        "resolution": _enum(["480p", "720p"], "480p"),
        "seed": _SEED,
    }, ("image", "audio")),
    Model("minimax/speech-02-hd", "MiniMax Speech 02 HD", "text-to-audio", 0.05, {
        "text": _text("What to say. Every character is billed."),
        "voice_id": _enum(["Wise_Woman", "Friendly_Person", "Inspirational_girl", "Deep_Voice_Man",
                           "Calm_Woman", "Casual_Guy", "Lively_Girl", "Patient_Man"], "Wise_Woman"),
        "speed": _range(0.5, 2.0, 1.0),
        "volume": _range(0.1, 10.0, 1.0),
        "pitch": _range(-12, 12, 0, "integer"),
        "emotion": _enum(["happy", "sad", "angry", "fearful", "disgusted", "surprised", "neutral"], "happy"),
    }, ("text", "voice_id")),
    Model("minimax/music-02", "MiniMax Music 02", "text-to-audio", 0.03, {
        "prompt": _text("The music to make.", 2000),
        "lyrics": _text("The lyrics, one line per line.", 3000),
        "bitrate": _enum([32000, 64000, 128000, 256000], 256000, "integer"),
        "sample_rate": _enum([16000, 24000, 32000, 44100], 44100, "integer"),
    }, ("prompt", "lyrics")),
    Model("wavespeed-ai/hunyuan3d-v3/image-to-3d", "Hunyuan3D 3.0 image-to-3D", "image-to-3d", 0.375, {
        "image": _URI,
        "back_image": _URI,
        "left_image": _URI,
        "right_image": _URI,
        "enable_pbr": {"type": "boolean", "default": False},
        "face_count": _range(40000, 1500000, 500000, "integer"),
        "generate_type": _enum(["Normal", "LowPoly", "Geometry"], "Normal"),
    }, ("image",)),
    Model("wavespeed-ai/any-llm", "Any LLM", "text-to-text", 0.001, {
        "prompt": _text("The question.", 100000),
        "system_prompt": _text("How to answer.", 100000),
        "model": _enum(["google/gemini-2.5-flash", "openai/gpt-4o-mini", "anthropic/claude-3.7-sonnet"],
                       "google/gemini-2.5-flash"),
        "max_tokens": _range(1, 32768, 1024, "integer"),
        "temperature": _range(0.0, 2.0, 0.7),
    }, ("prompt",), flags=False),
)  # fmt: skip
_BY_ID = {model.model_id: model for model in MODELS}


def find(model_id: str) -> Model | None:
    """The catalog entry of a model, or None when the catalog does not list it."""
    return _BY_ID.get(model_id)


def entries(edit_price: float | None) -> list[dict[str, Any]]:
    """Every catalog item; the edit's base price is the emulator's ``price_usd``, its quoted price."""
    return [model.entry(edit_price if model.model_id == EDIT_MODEL else None) for model in MODELS]


_NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"(?<![a-z0-9])i2v(?![a-z0-9])", "image-to-video"),
    (r"(?<![a-z0-9])t2v(?![a-z0-9])", "text-to-video"),
    (r"upscal.*video|video.*upscal", "video-to-video"),
    (r"lip-?sync|talk", "audio-to-video"),
    (r"speech|(?<![a-z0-9])tts(?![a-z0-9])|music|audio", "text-to-audio"),
    (r"3d(?![a-z0-9])", "image-to-3d"),
    (r"(?<![a-z0-9])llm(?![a-z0-9])", "text-to-text"),
)


def kind_of(model_id: str) -> str:
    """The kind of a model: the catalog's when listed, else what its name says (image when it says nothing)."""
    listed = find(model_id)
    if listed is not None:
        return listed.kind
    lowered = model_id.lower()
    spelled = re.search(r"(text|image|video|audio|sketch)-to-(image|video|audio|3d|text|speech|music)", lowered)
    if spelled:  # the name spells its kind out: "…/image-to-3d", "…/video-to-audio", "…/text-to-speech"
        source, made = spelled.groups()
        return f"{'image' if source == 'sketch' else source}-to-{'audio' if made in ('speech', 'music') else made}"
    for pattern, kind in _NAME_RULES:
        if re.search(pattern, lowered):
            return kind
    return "text-to-image"


def media_of(kind: str) -> str:
    """The media a kind makes: ``text-to-video`` -> ``video``, ``image-to-3d`` -> ``3d``."""
    return kind.rsplit("-to-", 1)[-1]


def validate(model: Model, body: dict[str, Any]) -> str | None:
    """None when ``body`` fits the model's schema, else a message naming the field (the 400's text)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(model.request_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return None
    if error.validator == "required":
        missing = next((name for name in model.required if name not in body), "")
        return f"{missing} is required"
    where = ".".join(str(part) for part in error.absolute_path) or "body"
    return f"{where}: {error.message}"


def price(model_id: str, inputs: dict[str, Any], base: float | None) -> float | None:
    """A run's price: ``base`` (the configured or catalog price), times the clip's length for models billed
    per seconds of video."""
    listed = find(model_id)
    if base is None or listed is None or not listed.per_seconds:
        return base
    duration = inputs.get("duration")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration <= 0:
        duration = listed.properties.get("duration", {}).get("default", listed.per_seconds)
    return round(base * float(duration) / listed.per_seconds, 6)
