"""Turn the ``images`` a user gave into URLs WaveSpeed can fetch.

http(s) URLs pass through; local files are uploaded through the hook; ``s3://`` objects become
presigned GET URLs (or, with ``input_mode="upload"``, are streamed through the upload endpoint for
buckets WaveSpeed cannot reach). Every input is checked first, so a missing file or object fails the
task before anything is sent to WaveSpeed.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_wavespeed.exceptions import WaveSpeedInputError
from airflow_wavespeed.utils.media import UPLOADABLE_TYPES, sniff_image_extension
from airflow_wavespeed.utils.validation import image_kind

if TYPE_CHECKING:
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

#: Longest a SigV4 presigned URL may live.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
#: S3 objects streamed in upload mode spill from memory to a temporary file past this size.
SPOOL_BYTES = 8 * 1024 * 1024


def resolve_images(
    images: list[str],
    hook: WaveSpeedHook,
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
            upload_names[n] = upload_name(path.name, handle.read(16), f"images[{n}]: {str(path)!r}")
    s3_inputs = {n: _split_s3(image) for n, image in enumerate(images) if image_kind(image) == "s3"}
    s3: Any = _s3_client(aws_conn_id) if s3_inputs else None
    if s3_inputs and input_mode != "upload" and presign_seconds > MAX_PRESIGN_SECONDS:
        logging.getLogger(__name__).warning(
            "Presigned S3 URLs live at most 7 days, less than the %.0f s asked for (the task's timeout "
            "plus a margin): WaveSpeed must fetch the inputs before then, or use input_mode='upload'",
            presign_seconds,
        )
    for n, (bucket, key) in s3_inputs.items():
        size = _check_s3_object(s3, bucket, key, f"images[{n}]")
        if input_mode == "upload":
            upload_names[n] = _s3_upload_name(s3, bucket, key, size, f"images[{n}]")

    resolved = []
    for n, image in enumerate(images):
        if n in local:
            resolved.append(hook.upload_media(local[n], filename=upload_names[n]))
        elif n in s3_inputs:
            bucket, key = s3_inputs[n]
            if input_mode == "upload":
                resolved.append(_upload_s3_object(s3, bucket, key, upload_names[n], hook))
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


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


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


def upload_name(filename: str, head: bytes, described: str) -> str:
    """The name to upload an image as: its own when the extension is one WaveSpeed takes, else one from
    its first bytes (keys and files often carry no extension). Raises naming ``described`` otherwise.
    """
    if Path(filename).suffix.lower() in UPLOADABLE_TYPES:
        return filename
    extension = sniff_image_extension(head)
    if extension is None:
        raise WaveSpeedInputError(
            f"{described} is not an image type WaveSpeed accepts (by its name or its first bytes); allowed "
            f"extensions: {', '.join(sorted(UPLOADABLE_TYPES))}"
        )
    return f"{Path(filename).stem or 'input'}{extension}"


def _s3_upload_name(s3: Any, bucket: str, key: str, size: int, argument: str) -> str:
    described = f"{argument}: s3://{bucket}/{key}"
    if size == 0:
        raise WaveSpeedInputError(f"{described} is empty")
    head = b""
    if Path(key).suffix.lower() not in UPLOADABLE_TYPES:
        head = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{min(size, 16) - 1}")["Body"].read()
    return upload_name(Path(key).name, head, described)


def _upload_s3_object(s3: Any, bucket: str, key: str, filename: str, hook: WaveSpeedHook) -> str:
    """Stream an object into WaveSpeed's media store through a spooled file: bounded memory."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        s3.download_fileobj(bucket, key, spool)
        spool.seek(0)
        return hook.upload_media(spool, filename=filename)  # type: ignore[arg-type]
