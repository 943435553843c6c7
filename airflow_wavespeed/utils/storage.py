"""Copy prediction outputs somewhere durable: a local directory or S3.

WaveSpeed deletes outputs after 7 days. Both the operators' ``output_uri`` and ``WaveSpeedToS3Operator``
store through :func:`store_media`, so naming, size caps and streaming are decided here once. Outputs are
streamed in chunks (never held whole in memory, whatever their size: a video runs to hundreds of MiB), and
base64 outputs are decoded straight to storage so XCom only ever carries the resulting paths or URIs.

Every kind is stored (images, video, audio, 3D, text), typed by its bytes
(:mod:`airflow_wavespeed.media.types`): the file's extension and Content-Type come from the type, never
from the URL or the server's headers. Anything else (HTML, SVG, archives, executables) is refused and
nothing of it is kept. Downloads go through the ``download`` callable the caller passes (the hook's output
downloader, which applies the output-host rules); this module makes no HTTP request of its own.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from airflow_wavespeed.exceptions import (
    OutputExistsError,
    OutputTooLargeError,
    WaveSpeedError,
    WaveSpeedInputError,
    WaveSpeedOutputError,
    WaveSpeedOutputRefusedError,
)
from airflow_wavespeed.media.types import (
    ACCEPTED,
    FILE_MEDIA,
    SNIFF_BYTES,
    MediaType,
    kinds_in_words,
    refusal,
    sniff,
)
from airflow_wavespeed.utils.validation import (
    MAX_OUTPUT_BYTES_BY_MEDIA,
    check_name_template,
    is_output_url,
    parse_s3_uri,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_S3_KEY_TEMPLATE = "{dag_id}/{run_id}/{task_id}/{map_index}/{prediction_id}_{n}.{ext}"
DEFAULT_FILE_TEMPLATE = "{prediction_id}_{n}.{ext}"
CHUNK_BYTES = 1024 * 1024
#: S3 multipart: 8 MiB parts, one at a time, keeps a copy's memory small whatever the file's size.
S3_PART_BYTES = 8 * 1024 * 1024
#: Characters kept in name values: portable across filesystems and S3 tools (no ':' or '+', which a
#: run_id such as ``manual__2026-11-30T14:07:41+00:00`` carries; it stays unique per run without them).
_UNSAFE = re.compile(r"[^A-Za-z0-9._=@-]")
#: Opens one output URL: yields its body as a stream and the announced length (the hook's downloader).
Download = Callable[[str], AbstractContextManager[tuple[IO[bytes], "int | None"]]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredOutput:
    """Where one output went and what it is: for return values, asset events and the ``prediction`` XCom."""

    location: str
    media: str
    content_type: str
    bytes: int

    def to_xcom(self) -> dict[str, Any]:
        return {"uri": self.location, "media": self.media, "content_type": self.content_type, "bytes": self.bytes}


@dataclass(frozen=True)
class _Opened:
    stream: IO[bytes]
    type: MediaType
    #: Bytes read so far (a download's running count), for the size recorded once the copy is done.
    count: Callable[[], int]


class _CappedReader(io.RawIOBase):
    """A readable stream that raises once more than ``limit`` bytes went through it; the first bytes, read
    ahead to tell the file's type, come first."""

    def __init__(self, raw: Any, limit: int | None, source: str) -> None:
        self._raw, self._limit, self._source, self.count = raw, limit, source, 0
        self._head = b""

    def readable(self) -> bool:
        return True

    def read_head(self) -> bytes:
        """Up to :data:`SNIFF_BYTES` from the start (however the body arrives), served again by reads."""
        head = b""
        while len(head) < SNIFF_BYTES and (chunk := self._raw.read(SNIFF_BYTES - len(head))):
            head += chunk
        self._head = head
        self._counted(len(head))
        return head

    def limit(self, limit: int) -> None:
        """The cap, once the type (and so the default cap for its media) is known."""
        self._limit = limit
        self._counted(0)

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size], self._head = self._head[:size], self._head[size:]
            return size
        # At most one chunk per call: a large read() above must not pull a whole part through a copy.
        data = self._raw.read(min(len(buffer), CHUNK_BYTES))
        self._counted(len(data))
        buffer[: len(data)] = data
        return len(data)

    def _counted(self, size: int) -> None:
        self.count += size
        if self._limit is not None and self.count > self._limit:
            raise OutputTooLargeError(
                f"output {self._source} is larger than max_output_bytes={self._limit}; the copy was stopped"
            )


def describe(output: str) -> str:
    """A short, log-safe name for an output (base64 and text are not printed)."""
    return output if is_output_url(output) else f"<inline output, {len(output)} chars>"


def output_cap(media: str, max_output_bytes: int | None) -> int:
    """The size a copy stops at: the caller's, or the default for the output's media."""
    return max_output_bytes if max_output_bytes is not None else MAX_OUTPUT_BYTES_BY_MEDIA[media]


@contextmanager
def open_output(
    output: str, *, download: Download, max_output_bytes: int | None, prediction_id: str, text: bool = False
) -> Iterator[_Opened]:
    """Open one output as a stream of an accepted type: an http(s) URL is downloaded, anything else is
    decoded as base64, or (``text``: the model makes text) taken as text when it is not base64 of a media
    file. Content of no accepted type is refused, naming the prediction and what the bytes looked like.
    Text is accepted only from a model that makes text: an image model answering a script is refused."""
    allowed = (*FILE_MEDIA, "text") if text else FILE_MEDIA
    if is_output_url(output):
        with download(output) as (raw, length):
            capped = _CappedReader(raw, max_output_bytes, output)
            kind = _accepted(capped.read_head(), output, prediction_id, allowed)
            cap = output_cap(kind.media, max_output_bytes)
            if length is not None and length > cap:
                raise OutputTooLargeError(f"output {output} is {length} bytes, over max_output_bytes={cap}")
            capped.limit(cap)
            yield _Opened(io.BufferedReader(capped, CHUNK_BYTES), kind, lambda: capped.count)
        return
    if "://" in output[:16]:
        raise WaveSpeedOutputRefusedError(f"only http(s) outputs can be copied, got {output[:80]!r}")
    data, kind = _inline(output, max_output_bytes, prediction_id, text=text)
    yield _Opened(io.BytesIO(data), kind, lambda: len(data))


def _accepted(head: bytes, output: str, prediction_id: str, allowed: tuple[str, ...]) -> MediaType:
    problem = refusal(head, allowed=allowed)
    found = sniff(head)
    if problem is not None or found is None:
        raise WaveSpeedOutputRefusedError(
            f"output {describe(output)} of prediction {prediction_id} is not {kinds_in_words(allowed)} (judged by "
            f"its bytes, {problem}); nothing of it was stored"
        )
    return found


def _inline(output: str, max_output_bytes: int | None, prediction_id: str, *, text: bool) -> tuple[bytes, MediaType]:
    """An output that is not a URL: base64 of a media file (a ``data:`` URI or bare), else text (``text``)."""
    data = _decode_base64(output, max_output_bytes)
    if data is not None:
        found = sniff(data[:SNIFF_BYTES])
        if found is not None and found.media != "text":
            if len(data) > output_cap(found.media, max_output_bytes):
                raise OutputTooLargeError(
                    f"a base64 output is larger than max_output_bytes={output_cap(found.media, max_output_bytes)}"
                )
            return data, found
        if not text:
            _accepted(data[:SNIFF_BYTES], output, prediction_id, FILE_MEDIA)
    if not text:
        raise WaveSpeedOutputRefusedError(f"output {describe(output)} is neither an http(s) URL nor valid base64")
    if output.startswith("data:"):
        raise WaveSpeedOutputRefusedError(f"output {describe(output)} is a data: URI that is not base64 media")
    encoded = output.encode("utf-8", "replace")
    if len(encoded) > output_cap("text", max_output_bytes):
        raise OutputTooLargeError(f"a text output is larger than max_output_bytes={output_cap('text', max_output_bytes)}")
    return encoded, ACCEPTED["txt"]


def store_outputs(outputs: list[str], destination: str, **kwargs: Any) -> list[str]:
    """Copy every output to ``destination`` and return where each went (paths or ``s3://`` URIs); the
    keyword arguments are :func:`store_media`'s."""
    return [stored.location for stored in store_media(outputs, destination, **kwargs)]


def store_media(
    outputs: list[str],
    destination: str,
    *,
    download: Download,
    names: Mapping[str, Any],
    name_template: str | None = None,
    replace: bool = True,
    max_output_bytes: int | None = None,
    aws_conn_id: str | None = "aws_default",
    text: bool = False,
) -> list[StoredOutput]:
    """
    Copy every output to ``destination``; returns where each went and what it is.

    :param destination: a local directory (plain or ``file://``) or ``s3://bucket/prefix``.
    :param download: opens an output URL (the hook's ``output_downloader().open``).
    :param names: values for the name template: dag_id, run_id, task_id, map_index, prediction_id.
    :param name_template: ``str.format`` template of the file name / object key under the destination;
        fields dag_id, run_id, task_id, map_index, prediction_id, n, ext.
    :param replace: overwrite an existing object; when False an existing one is an error.
    :param max_output_bytes: stop (and keep nothing of) an output larger than this; None for the default
        of the output's media (:data:`~airflow_wavespeed.utils.validation.MAX_OUTPUT_BYTES_BY_MEDIA`).
    :param aws_conn_id: the Amazon connection, for S3 destinations.
    :param text: the model makes text: text outputs (and downloaded text files) are stored as ``.txt``.
    """
    is_s3 = destination.startswith("s3://")
    template = name_template or (DEFAULT_S3_KEY_TEMPLATE if is_s3 else DEFAULT_FILE_TEMPLATE)
    check_name_template(template)
    _check_distinct_names(template, names, len(outputs))
    prediction_id = str(names.get("prediction_id", ""))
    stored: list[StoredOutput] = []
    created: list[str] = []
    try:
        for n, output in enumerate(outputs):
            opening = open_output(
                output, download=download, max_output_bytes=max_output_bytes, prediction_id=prediction_id, text=text
            )
            with opening as opened:
                name = render_name(template, {**names, "n": n, "ext": opened.type.ext})
                if is_s3:
                    location, new = _put_s3(opened, destination, name, replace=replace, aws_conn_id=aws_conn_id)
                else:
                    location, new = _put_local(opened, destination, name, replace=replace)
                stored.append(StoredOutput(location, opened.type.media, opened.type.content_type, opened.count()))
                if new:
                    created.append(location)
    except BaseException as error:
        # All or nothing for what this call created, so a retry with replace=False starts clean. A key
        # that existed before (replace=True) is left with its new copy, never deleted.
        _remove(created, aws_conn_id=aws_conn_id)
        if isinstance(error, Exception) and not isinstance(error, WaveSpeedError):  # a full disk, S3 refusing
            raise WaveSpeedOutputError(
                f"storing the outputs of prediction {prediction_id} in {destination} failed: "
                f"{type(error).__name__}: {error}"
            ) from error
        raise
    return stored


def _check_distinct_names(template: str, names: Mapping[str, Any], count: int) -> None:
    """Refuse, before any download, a template that gives two outputs of one prediction the same name."""
    if count < 2:
        return
    rendered = [render_name(template, {**names, "n": n, "ext": "png"}) for n in range(count)]
    if len(set(rendered)) < count:
        raise WaveSpeedInputError(
            f"key_template {template!r} gives the {count} outputs of one prediction the same name "
            f"({rendered[0]!r}): they would overwrite each other; use {{n}} in it"
        )


def _remove(created: list[str], *, aws_conn_id: str | None) -> None:
    """Best-effort removal of what one failed call created; the original error is what the user sees."""
    for location in created:
        try:
            if location.startswith("s3://"):
                from airflow.providers.amazon.aws.hooks.s3 import S3Hook

                bucket, key = parse_s3_uri(location)
                S3Hook(aws_conn_id=aws_conn_id).get_conn().delete_object(Bucket=bucket, Key=key)
            else:
                Path(location).unlink(missing_ok=True)
        except Exception as error:
            log.warning("Could not remove %s after a failed copy: %s", location, error)


def render_name(template: str, values: Mapping[str, Any]) -> str:
    """Fill the template with values that cannot climb out of the destination ('/' and '..' removed).

    ``n`` and ``map_index`` stay ints, so a format spec such as ``{n:03d}`` works.
    """
    safe = {
        key: value if key in ("n", "map_index") and isinstance(value, int) else _UNSAFE.sub("_", str(value)).replace("..", "_")
        for key, value in values.items()
    }
    name = template.format(**safe)
    parts = [part for part in name.split("/") if part not in ("", ".", "..")]
    if not parts:
        raise WaveSpeedInputError(f"the name template {template!r} produced an empty name")
    return "/".join(parts)


def _put_local(opened: _Opened, destination: str, name: str, *, replace: bool) -> tuple[str, bool]:
    """Write one output under a local directory; return its path and whether it is a new file."""
    root = Path(destination.removeprefix("file://")).expanduser().resolve()
    target = (root / name).resolve()
    if root not in target.parents:
        raise WaveSpeedInputError(f"output name {name!r} would leave the directory {str(root)!r}")
    existed = target.exists()
    if existed and not replace:
        raise OutputExistsError(f"{target} already exists and replace=False")
    target.parent.mkdir(parents=True, exist_ok=True)
    # A fresh file (O_EXCL), so a planted symlink cannot redirect the bytes; renamed into place whole.
    handle, partial_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    partial = Path(partial_name)
    try:
        with os.fdopen(handle, "wb") as sink:
            shutil.copyfileobj(opened.stream, sink, CHUNK_BYTES)
        partial.chmod(0o644)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return str(target), not existed


def _put_s3(
    opened: _Opened, destination: str, name: str, *, replace: bool, aws_conn_id: str | None
) -> tuple[str, bool]:
    """Stream one output into S3; return its URI and whether the key is new (a HEAD first tells)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from boto3.s3.transfer import TransferConfig

    bucket, prefix = parse_s3_uri(destination)
    key = "/".join(part for part in (prefix.strip("/"), name) if part)
    hook = S3Hook(aws_conn_id=aws_conn_id)
    try:
        existed = hook.check_for_key(key, bucket_name=bucket)
    except Exception:
        if not replace:
            raise
        existed = True  # a write-only role cannot HEAD: count the key as not ours to remove
    if existed and not replace:
        raise OutputExistsError(f"s3://{bucket}/{key} already exists and replace=False")
    config = TransferConfig(
        multipart_threshold=S3_PART_BYTES, multipart_chunksize=S3_PART_BYTES, max_concurrency=1, use_threads=False
    )
    hook.get_conn().upload_fileobj(
        opened.stream, bucket, key, ExtraArgs={"ContentType": opened.type.content_type}, Config=config
    )
    return f"s3://{bucket}/{key}", not existed


def _decode_base64(output: str, max_output_bytes: int | None) -> bytes | None:
    """The bytes of a base64 output (bare or a ``data:`` URI), or None when it is not base64."""
    payload = output.split(",", 1)[1] if output.startswith("data:") and "," in output else output
    if max_output_bytes is not None and len(payload) * 3 // 4 > max_output_bytes:
        raise OutputTooLargeError(f"a base64 output is larger than max_output_bytes={max_output_bytes}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None


def output_names(context: Context, prediction_id: str) -> dict[str, Any]:
    """The values a stored output's name is built from, for the task instance running now."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": map_index if map_index is not None and map_index >= 0 else 0,
        "prediction_id": prediction_id,
    }
