"""How long a request may take and how often it is tried: the hook's keyword arguments.

A light module (no HTTP client imported), so an operator can check ``hook_params`` when its DAG is
parsed, with the same rules the hook applies when the task runs.
"""

from __future__ import annotations

from typing import Any

from airflow_wavespeed.exceptions import WaveSpeedInputError
from airflow_wavespeed.utils.validation import (
    MAX_OUTPUT_BYTES_BY_MEDIA,
    check_dict,
    check_positive,
    check_positive_int,
)

MiB = 1024 * 1024


class RequestLimits:
    """How long a request may take and how often it is tried; the hook's keyword arguments.

    A plain class rather than a dataclass: it is built when a DAG is parsed, where every millisecond
    of class creation is paid by every parse.

    :param connect_timeout: seconds to open a connection.
    :param read_timeout: seconds to wait for an answer (submit, poll, balance).
    :param sync_read_timeout: seconds a sync-mode submit may wait for the model to finish.
    :param upload_read_timeout: seconds to wait for the answer to a media upload.
    :param max_attempts: tries per request for the faults a retry may cure.
    :param retry_min_wait: first backoff in seconds (doubling, with jitter) when no Retry-After is given.
    :param retry_max_wait: longest single backoff when the server gives no Retry-After.
    :param retry_max_seconds: the whole retry sequence of one request never runs longer than this
        (and a server's Retry-After is honoured up to this long).
    :param request_timeout: the most one try of an API call may take in all, from connecting to the
        last byte of the answer, however the server paces it (a sync-mode submit may take
        ``sync_read_timeout`` more).
    :param transfer_timeout: the same for one upload or one output download.
    :param transfer_min_rate: bytes per second an output download is given time for: one that announces
        its length may take ``length / transfer_min_rate`` seconds when that is longer than
        ``transfer_timeout`` (a 4 GiB video at the 1 MiB/s default: 68 min), up to what the largest
        per-media cap needs; a body without a length keeps ``transfer_timeout``.
    :param max_response_bytes: the largest answer read (decompressed); a larger one is an error, not retried.
    :param max_base64_response_bytes: the same for answers that carry base64 images
        (``enable_base64_output``).
    """

    #: The keyword arguments, in order: what ``hook_params`` may set.
    NAMES = (
        "connect_timeout",
        "read_timeout",
        "sync_read_timeout",
        "upload_read_timeout",
        "max_attempts",
        "retry_min_wait",
        "retry_max_wait",
        "retry_max_seconds",
        "request_timeout",
        "transfer_timeout",
        "transfer_min_rate",
        "max_response_bytes",
        "max_base64_response_bytes",
    )
    __slots__ = NAMES

    def __init__(
        self,
        *,
        connect_timeout: Any = 10.0,
        read_timeout: Any = 60.0,
        sync_read_timeout: Any = 300.0,
        upload_read_timeout: Any = 300.0,
        max_attempts: int = 5,
        retry_min_wait: Any = 1.0,
        retry_max_wait: Any = 30.0,
        retry_max_seconds: Any = 120.0,
        request_timeout: Any = 120.0,
        transfer_timeout: Any = 900.0,
        transfer_min_rate: int = MiB,
        max_response_bytes: int = 8 * MiB,
        max_base64_response_bytes: int = 64 * MiB,
    ) -> None:
        # Seconds as floats, whatever was given (a timedelta too): requests takes only numbers.
        self.connect_timeout = check_positive(connect_timeout, argument="connect_timeout")
        self.read_timeout = check_positive(read_timeout, argument="read_timeout")
        self.sync_read_timeout = check_positive(sync_read_timeout, argument="sync_read_timeout")
        self.upload_read_timeout = check_positive(upload_read_timeout, argument="upload_read_timeout")
        self.max_attempts = check_positive_int(max_attempts, argument="max_attempts")
        self.retry_min_wait = check_positive(retry_min_wait, argument="retry_min_wait")
        self.retry_max_wait = check_positive(retry_max_wait, argument="retry_max_wait")
        self.retry_max_seconds = check_positive(retry_max_seconds, argument="retry_max_seconds")
        self.request_timeout = check_positive(request_timeout, argument="request_timeout")
        self.transfer_timeout = check_positive(transfer_timeout, argument="transfer_timeout")
        self.transfer_min_rate = check_positive_int(transfer_min_rate, argument="transfer_min_rate")
        self.max_response_bytes = check_positive_int(max_response_bytes, argument="max_response_bytes")
        self.max_base64_response_bytes = check_positive_int(
            max_base64_response_bytes, argument="max_base64_response_bytes"
        )

    def download_seconds(self, length: int | None) -> float:
        """How long an output download of ``length`` announced bytes may take (see ``transfer_min_rate``)."""
        if length is None:
            return self.transfer_timeout
        return max(self.transfer_timeout, min(length, max(MAX_OUTPUT_BYTES_BY_MEDIA.values())) / self.transfer_min_rate)

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.NAMES)
        return f"RequestLimits({values})"

    @classmethod
    def from_params(cls, params: Any, *, argument: str = "hook_params") -> RequestLimits:
        """Build from a dict, naming ``argument`` and what is allowed when a key is unknown."""
        params = check_dict(params, argument=argument)
        unknown = sorted(set(params) - set(cls.NAMES))
        if unknown:
            raise WaveSpeedInputError(
                f"{argument} may not set {', '.join(unknown)}; allowed: {', '.join(cls.NAMES)} (the API key "
                "belongs in the Airflow connection)"
            )
        return cls(**params)
