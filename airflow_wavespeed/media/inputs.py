"""Turn the media inputs of a run (images, video, audio, masks, lists of references) into URLs WaveSpeed
can fetch.

An http(s) URL passes through. A local file or bytes are uploaded (through the ``upload`` callable the
operator passes: its hook's ``upload_media``); an ``s3://`` object becomes a presigned GET URL (or, with
``input_mode="upload"``, is streamed through the upload endpoint for buckets WaveSpeed cannot reach).
Every source is typed by its first bytes and checked before anything is sent, in two steps so a caller
can put its own check between them: :func:`check_media` (local files, S3 objects, bytes: no request to
WaveSpeed), then :meth:`MediaPlan.resolve` (uploads and presigned URLs).

Which inputs are media is the caller's to say (:func:`find_media`): the fields the DAG author names or
the model's schema marks, and any value that can only be a location (``s3://``, ``file://``, bytes).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from airflow_wavespeed.exceptions import WaveSpeedInputError
from airflow_wavespeed.media.sources import SPOOL_BYTES, UPLOADABLE_MEDIA, upload_name
from airflow_wavespeed.media.types import SNIFF_BYTES
from airflow_wavespeed.utils.validation import image_kind, parse_s3_uri

#: Longest a SigV4 presigned URL may live.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
log = logging.getLogger(__name__)
#: Uploads a file or stream under a name and answers its download URL (the hook's ``upload_media``).
Upload = Callable[[Any, str], str]
#: Where one source sits in the inputs: a field, or a field and a list index.
Where = tuple[str, int | None]


@dataclass
class MediaInput:
    """One media source of a run: where it sits in the inputs, and what the user gave."""

    where: Where
    source: str | bytes
    label: str
    allowed: tuple[str, ...] = UPLOADABLE_MEDIA

    @property
    def kind(self) -> str:
        """``"url"``, ``"s3"``, ``"local"`` or ``"bytes"``."""
        return "bytes" if isinstance(self.source, bytes) else image_kind(self.source)


def find_media(
    inputs: dict[str, Any],
    fields: Iterable[str] = (),
    *,
    label: Callable[[Where], str] | None = None,
    allowed: Callable[[str], tuple[str, ...]] | None = None,
) -> list[MediaInput]:
    """The media sources in ``inputs``: every string (or list entry) of the named ``fields``, and anywhere
    a value that can only be a file (``s3://`` or ``file://`` URIs, bytes).

    :param label: names a source in messages (default ``inputs['audio']``, ``inputs['images'][1]``).
    :param allowed: the media a field may hold (default: any that can be uploaded).
    """
    named = set(fields)
    label = label or _input_label
    found = []
    for key, value in inputs.items():
        values = list(enumerate(value)) if isinstance(value, (list, tuple)) else [(None, value)]
        for index, item in values:
            if isinstance(item, (bytes, bytearray)):
                source: str | bytes = bytes(item)
            elif isinstance(item, str) and (key in named or image_kind(item) == "s3" or item.startswith("file://")):
                source = item.strip()
            else:
                continue
            where = (key, index)
            found.append(MediaInput(where, source, label(where), allowed(key) if allowed else UPLOADABLE_MEDIA))
    return found


def _input_label(where: Where) -> str:
    key, index = where
    return f"inputs[{key!r}]" + ("" if index is None else f"[{index}]")


@dataclass
class MediaPlan:
    """Sources checked and named, ready to be sent: what :func:`check_media` found."""

    inputs: list[MediaInput]
    names: dict[Where, str] = field(default_factory=dict)
    s3: Any = None

    def add(self, other: MediaPlan) -> None:
        """Take in the sources another check found (inputs only a model's schema names as media)."""
        self.inputs += other.inputs
        self.names.update(other.names)
        self.s3 = self.s3 if self.s3 is not None else other.s3

    def resolve(
        self,
        inputs: dict[str, Any],
        upload: Upload,
        *,
        input_mode: str = "presign",
        presign_seconds: float = 3600,
    ) -> dict[str, Any]:
        """``inputs`` with every source replaced by a URL WaveSpeed can fetch (uploads happen here)."""
        resolved = {key: list(value) if isinstance(value, (list, tuple)) else value for key, value in inputs.items()}
        if self.s3 is not None and input_mode != "upload" and presign_seconds > MAX_PRESIGN_SECONDS:
            log.warning(
                "Presigned S3 URLs live at most 7 days, less than the %.0f s asked for (the task's timeout "
                "plus a margin): WaveSpeed must fetch the inputs before then, or use input_mode='upload'",
                presign_seconds,
            )
        for media in self.inputs:
            url = self._url(media, upload, input_mode=input_mode, presign_seconds=presign_seconds)
            key, index = media.where
            if index is None:
                resolved[key] = url
            else:
                resolved[key][index] = url
        return resolved

    def _url(self, media: MediaInput, upload: Upload, *, input_mode: str, presign_seconds: float) -> str:
        source, name = media.source, self.names.get(media.where, "")
        if isinstance(source, bytes):
            url = upload(source, name)
            log.info("Uploaded %s (%d bytes) as %s", media.label, len(source), url)
        elif media.kind == "local":
            url = upload(_local_path(source), name)
            log.info("Uploaded %s %s as %s", media.label, source, url)
        elif media.kind == "s3":
            bucket, key = parse_s3_uri(source)
            if input_mode == "upload":
                url = _upload_s3_object(self.s3, bucket, key, name, upload)
                log.info("Uploaded %s s3://%s/%s as %s", media.label, bucket, key, url)
            else:
                url = self.s3.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": bucket, "Key": key},
                    ExpiresIn=int(min(MAX_PRESIGN_SECONDS, presign_seconds)),
                )
        else:
            url = source
        return url


def check_media(inputs: list[MediaInput], *, aws_conn_id: str | None = "aws_default") -> MediaPlan:
    """Check every source without sending anything to WaveSpeed: local files exist, ``s3://`` objects can
    be read, and each is a file of the media its field allows, by its first bytes. Raises naming the input."""
    plan = MediaPlan(inputs)
    s3_inputs = [media for media in inputs if media.kind == "s3"]
    plan.s3 = _s3_client(aws_conn_id) if s3_inputs else None
    for media in inputs:
        source = media.source
        if isinstance(source, bytes):
            if not source:
                raise WaveSpeedInputError(f"{media.label}: the bytes are empty")
            plan.names[media.where], _ = upload_name(
                "input", source[:SNIFF_BYTES], f"{media.label} (bytes)", allowed=media.allowed
            )
        elif media.kind == "local":
            path = _local_path(source)
            if not path.is_file():
                raise WaveSpeedInputError(f"{media.label}: no file at {str(path)!r}")
            with path.open("rb") as handle:
                plan.names[media.where], _ = upload_name(
                    path.name, handle.read(SNIFF_BYTES), f"{media.label}: {str(path)!r}", allowed=media.allowed
                )
        elif media.kind == "s3":
            bucket, key = parse_s3_uri(source)
            if not bucket or not key:
                raise WaveSpeedInputError(f"{media.label} must be s3://bucket/key, got {source!r}")
            size = _check_s3_object(plan.s3, bucket, key, media.label)
            # Presigned or uploaded, WaveSpeed gets these bytes: an object of the wrong kind is refused here.
            plan.names[media.where] = _s3_upload_name(plan.s3, bucket, key, size, media)
    return plan


def _local_path(image: str) -> Path:
    return Path(image.removeprefix("file://")).expanduser()


def _s3_client(aws_conn_id: str | None) -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=aws_conn_id).get_conn()


def _check_s3_object(s3: Any, bucket: str, key: str, argument: str) -> int:
    """Raise naming ``argument`` unless the object can be read; returns its size in bytes."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            raise WaveSpeedInputError(f"{argument}: s3://{bucket}/{key} does not exist") from None
        raise WaveSpeedInputError(f"{argument}: cannot read s3://{bucket}/{key}: {code or error}") from None
    return int(head.get("ContentLength") or 0)


def _s3_upload_name(s3: Any, bucket: str, key: str, size: int, media: MediaInput) -> str:
    described = f"{media.label}: s3://{bucket}/{key}"
    if size == 0:
        raise WaveSpeedInputError(f"{described} is empty")
    head = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{min(size, SNIFF_BYTES) - 1}")["Body"].read()
    name, _ = upload_name(Path(key).name, head, described, allowed=media.allowed)
    return name


def _upload_s3_object(s3: Any, bucket: str, key: str, filename: str, upload: Upload) -> str:
    """Stream an object into WaveSpeed's media store through a spooled file: bounded memory."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        s3.download_fileobj(bucket, key, spool)
        spool.seek(0)
        stream: IO[bytes] = spool  # type: ignore[assignment]
        return upload(stream, filename)
