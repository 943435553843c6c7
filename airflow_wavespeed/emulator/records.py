"""The emulator's records: predictions, uploads, tickets and the request log, as plain data classes."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_wavespeed.emulator import images
from airflow_wavespeed.media.types import ACCEPTED, MediaType


@dataclass(frozen=True)
class RequestRecord:
    """One served request, as tests see it: no headers and no bodies, on purpose."""

    method: str
    path: str
    status: int | Literal["dropped"]
    prediction_id: str | None
    time: float

    def to_dict(self) -> dict[str, Any]:
        """JSON view for the control endpoint."""
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "prediction_id": self.prediction_id,
            "time": self.time,
        }


@dataclass
class StoredFile:
    """Bytes of an uploaded file, served back under /media like the real CDN would."""

    data: bytes = field(repr=False)
    content_type: str
    filename: str


@dataclass
class UploadTicket:
    """A pending presigned-style upload (the SDK's ticket + PUT flow)."""

    upload_id: str
    filename: str


@dataclass
class Prediction:
    """Server-side state of one prediction. Tests may read it; only the server thread writes it."""

    id: str
    model: str
    prompt: str
    image_urls: list[str]
    aspect_ratio: str | None
    output_format: str
    base64_output: bool
    sync: bool
    base_url: str
    created_at: str
    created_monotonic: float
    required_polls: int
    required_seconds: float
    nsfw: bool
    fail_reason: str | None
    generated: bool = False
    #: The model's kind (WaveSpeed's ``type``, e.g. ``text-to-video``): what the output is.
    kind: str = "text-to-image"
    #: The submitted inputs, for renderers that follow them (duration, text, sample_rate...).
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    #: Video and audio input URLs as (media, url), fetched beside ``image_urls``.
    media_urls: list[tuple[str, str]] = field(default_factory=list)
    polls: int = 0
    status: str = "created"
    outputs: list[str] = field(default_factory=list)
    error: str = ""
    inference_ms: int = 0
    work_error: str | None = None
    output_bytes: bytes | None = field(default=None, repr=False)
    #: The output's extension and true Content-Type, known once rendered.
    output_ext: str = "png"
    output_content_type: str = "image/png"
    #: A text model's answer, handed out in ``outputs`` as it is (not as a URL).
    output_text: str | None = None
    #: Path of the single output file, set on completion (``/outputs/{id}/0.{ext}``, or without extension).
    output_path: str = ""
    work: asyncio.Task[None] | None = field(default=None, repr=False)

    def data(self) -> dict[str, Any]:
        """The `data` object of the API envelope for the current state."""
        completed = self.status == "completed"
        return {
            "id": self.id,
            "model": self.model,
            "outputs": list(self.outputs),
            "urls": {"get": f"{self.base_url}/api/v3/predictions/{self.id}/result"},
            "has_nsfw_contents": [self.nsfw] * len(self.outputs) if completed else [],
            "status": self.status,
            "created_at": self.created_at,
            "error": self.error,
            "timings": {"inference": self.inference_ms},
        }


class FetchFailed(Exception):
    """An input image could not be fetched; the message is the reason."""


@dataclass
class PredictionSpec:
    """Validated submit inputs, as the HTTP layer hands them to the state."""

    prompt: str
    image_urls: list[str]
    aspect_ratio: str | None
    output_format: str
    sync: bool
    base64_output: bool
    generated: bool
    kind: str = "text-to-image"
    params: dict[str, Any] = field(default_factory=dict)
    media_urls: list[tuple[str, str]] = field(default_factory=list)



def media_type(kind: str) -> MediaType:
    """The accepted type of an image kind (``jpeg``) or of a stored extension (``mp4``, ``glb``)."""
    return ACCEPTED[images.EXTENSIONS.get(kind, kind)]


def safe_filename(filename: str | None, kind: str) -> str:
    """A URL-safe file name: basename, [A-Za-z0-9._-] only, with an extension."""
    base = re.split(r"[\\/]", filename or "")[-1]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[:128] or "upload"
    if "." not in name:
        name = f"{name}.{media_type(kind).ext}"
    return name

