"""Turn the ``images`` a user gave into URLs WaveSpeed can fetch.

http(s) URLs pass through; local files are uploaded (through the ``upload`` callable the operator
passes: its hook's ``upload_media``); ``s3://`` objects become
presigned GET URLs (or, with ``input_mode="upload"``, are streamed through the upload endpoint for
buckets WaveSpeed cannot reach). Every input is checked first, so a missing file or object fails the
task before anything is sent to WaveSpeed.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from airflow_wavespeed.exceptions import WaveSpeedInputError
from airflow_wavespeed.utils.media import SNIFF_BYTES, SPOOL_BYTES, upload_name
from airflow_wavespeed.utils.validation import image_kind, parse_s3_uri

#: Longest a SigV4 presigned URL may live.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
log = logging.getLogger(__name__)
#: Uploads a file or stream under a name and answers its download URL (the hook's ``upload_media``).
Upload = Callable[[Any, str], str]


def resolve_images(
    images: list[str],
    upload: Upload,
    *,
    input_mode: str = "presign",
    aws_conn_id: str | None = "aws_default",
    presign_seconds: float = 3600,
) -> list[str]:
    """Return one fetchable URL per image, in order. Checks all of them before uploading any."""
    local = {n: _local_path(image) for n, image in enumerate(images) if image_kind(image) == "local"}
    upload_names: dict[int, str] = {}
    for n, path in local.items():
        if not path.is_file():
            raise WaveSpeedInputError(f"images[{n}]: no file at {str(path)!r}")
        with path.open("rb") as handle:
            upload_names[n] = upload_name(path.name, handle.read(SNIFF_BYTES), f"images[{n}]: {str(path)!r}")
    s3_inputs = {n: parse_s3_uri(image) for n, image in enumerate(images) if image_kind(image) == "s3"}
    s3: Any = _s3_client(aws_conn_id) if s3_inputs else None
    if s3_inputs and input_mode != "upload" and presign_seconds > MAX_PRESIGN_SECONDS:
        log.warning(
            "Presigned S3 URLs live at most 7 days, less than the %.0f s asked for (the task's timeout "
            "plus a margin): WaveSpeed must fetch the inputs before then, or use input_mode='upload'",
            presign_seconds,
        )
    for n, (bucket, key) in s3_inputs.items():
        size = _check_s3_object(s3, bucket, key, f"images[{n}]")
        # Presigned or uploaded, WaveSpeed gets these bytes: an object that is not an image is refused here.
        upload_names[n] = _s3_upload_name(s3, bucket, key, size, f"images[{n}]")

    resolved = []
    for n, image in enumerate(images):
        if n in local:
            resolved.append(upload(local[n], upload_names[n]))
            log.info("Uploaded images[%d] %s as %s", n, local[n], resolved[-1])
        elif n in s3_inputs:
            bucket, key = s3_inputs[n]
            if input_mode == "upload":
                resolved.append(_upload_s3_object(s3, bucket, key, upload_names[n], upload))
                log.info("Uploaded images[%d] s3://%s/%s as %s", n, bucket, key, resolved[-1])
            else:
                resolved.append(
                    s3.generate_presigned_url(
                        "get_object",
                        Params={"Bucket": bucket, "Key": key},
                        ExpiresIn=int(min(MAX_PRESIGN_SECONDS, presign_seconds)),
                    )
                )
        else:
            resolved.append(image)
    return resolved


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


def _s3_upload_name(s3: Any, bucket: str, key: str, size: int, argument: str) -> str:
    described = f"{argument}: s3://{bucket}/{key}"
    if size == 0:
        raise WaveSpeedInputError(f"{described} is empty")
    head = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{min(size, SNIFF_BYTES) - 1}")["Body"].read()
    return upload_name(Path(key).name, head, described)


def _upload_s3_object(s3: Any, bucket: str, key: str, filename: str, upload: Upload) -> str:
    """Stream an object into WaveSpeed's media store through a spooled file: bounded memory."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        s3.download_fileobj(bucket, key, spool)
        spool.seek(0)
        stream: IO[bytes] = spool  # type: ignore[assignment]
        return upload(stream, filename)
