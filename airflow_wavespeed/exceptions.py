"""Errors raised by the WaveSpeed provider, and the one retry table every request reads.

Every error derives from :class:`WaveSpeedError` (an ``AirflowException``), so a DAG author can catch
the whole family in one place. Two class attributes say what an error means for a retry:

- ``retryable``: one more try of the same request may cure it (a 429, a 503, a dropped connection);
- ``created_nothing``: it proves WaveSpeed created nothing, so a submit that met it billed nothing.

:func:`may_retry` reads them for the sync and async transports alike, and the hook's submit reads
``created_nothing`` to tell "refused" from "maybe billed". Messages never contain the API key: the
transport scrubs it from every server answer before an error is built from one.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

#: HTTP statuses a retry may cure: the 5xx answers of a busy or restarting service.
RETRYABLE_HTTP_STATUSES = frozenset({500, 502, 503, 504})
#: Envelope ``code`` values over HTTP 200 that mean the same as a 500 or 503: internal, unavailable.
RETRYABLE_API_CODES = frozenset({5000, 5003})


class WaveSpeedError(AirflowException):
    """Base class of every error this provider raises."""

    #: One more try of the same request may cure this error.
    retryable: bool = False
    #: The error proves no prediction was created (nothing was sent, or the API refused the request).
    created_nothing: bool = False


def may_retry(error: BaseException, *, billable: bool) -> bool:
    """Whether to send the same request again after ``error``: the one retry rule.

    A request that creates billable work (a submit) is retried only when the error also proves that
    nothing was created: a 429, or a connection that never opened.
    """
    if not isinstance(error, WaveSpeedError) or not error.retryable:
        return False
    return error.created_nothing or not billable


class WaveSpeedInputError(WaveSpeedError, ValueError):
    """An argument was rejected before any request was sent (nothing was billed)."""

    created_nothing = True


class WaveSpeedConnectionConfigError(WaveSpeedError):
    """The Airflow connection is missing or unusable (no API key, a base URL without a scheme)."""

    created_nothing = True


class WaveSpeedAPIError(WaveSpeedError):
    """The API answered with an error status.

    :param message: the text shown to the user.
    :param http_status: the HTTP status, or the envelope's ``code`` when HTTP said 200.
    :param api_message: the API's own ``message``, when the body had one.
    :param retry_after: the server's ``Retry-After`` in seconds (a 429, or a 503 during maintenance).
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        api_message: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.api_message = api_message
        self.retry_after = retry_after


class WaveSpeedAuthError(WaveSpeedAPIError):
    """401 or 403: the API key was refused or the account is suspended."""

    created_nothing = True


class WaveSpeedBadRequestError(WaveSpeedAPIError):
    """400 (or another 4xx): the API rejected the request; ``api_message`` says why."""

    created_nothing = True


class WaveSpeedNotFoundError(WaveSpeedAPIError):
    """404: the prediction (or route) does not exist, e.g. it was deleted after 7 days."""

    created_nothing = True


class WaveSpeedRateLimitError(WaveSpeedAPIError):
    """429: too many requests. Nothing was created; ``retry_after`` is the server's hint in seconds."""

    retryable = True
    created_nothing = True


class WaveSpeedServerError(WaveSpeedAPIError):
    """5xx: the API or a gateway in front of it failed. A submit that met one may have created work."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retryable = self.http_status in RETRYABLE_HTTP_STATUSES or self.http_status in RETRYABLE_API_CODES


class WaveSpeedMalformedResponseError(WaveSpeedError):
    """The body was not the JSON envelope the API documents.

    The message quotes the HTTP status and the first 200 characters of the body, never the request.
    """

    retryable = True

    def __init__(self, reason: str, *, http_status: int, body: str) -> None:
        super().__init__(f"Malformed response from WaveSpeed (HTTP {http_status}): {reason}; body: {body[:200]!r}")
        self.http_status = http_status


class WaveSpeedTransportError(WaveSpeedError):
    """The request failed below HTTP: connection refused or reset, or no answer within the read timeout.

    ``request_sent`` is False only when the request provably never left this machine (the connection
    could not be opened), which is what makes a retried submit safe.
    """

    retryable = True

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent
        self.created_nothing = not request_sent


class WaveSpeedSubmitUncertainError(WaveSpeedError, AirflowFailException):
    """A submit failed in a way that may still have created (and billed) a prediction.

    It is never retried automatically: a second POST could bill a second prediction. It is an
    ``AirflowFailException`` so the task fails without using its ``retries``, which would submit again.
    """


class WaveSpeedSpendLimitError(WaveSpeedError, AirflowFailException):
    """A spend guard refused to submit: the quote is above ``max_cost_usd`` or unknown, or the balance is
    below ``min_balance_usd``. Nothing was submitted, and the task fails without its retries (a retry would
    meet the same limit)."""

    created_nothing = True


class WaveSpeedPredictionFailedError(WaveSpeedError):
    """WaveSpeed reported the prediction as failed (or cancelled, timed out, deleted)."""

    def __init__(self, prediction_id: str, status: str, error: str) -> None:
        super().__init__(f"WaveSpeed prediction {prediction_id} {status}: {error or 'no error message given'}")
        self.prediction_id = prediction_id
        self.status = status
        self.error = error


class WaveSpeedNSFWError(WaveSpeedPredictionFailedError):
    """The prediction's outputs were flagged NSFW and the task's ``nsfw_policy`` does not allow them."""


class WaveSpeedTimeoutError(WaveSpeedError):
    """The wait for a prediction passed its deadline; the prediction may still finish on WaveSpeed."""

    def __init__(self, prediction_id: str, message: str) -> None:
        super().__init__(message)
        self.prediction_id = prediction_id


class WaveSpeedResponseTooLargeError(WaveSpeedError):
    """An answer was larger than the hook's cap for it. Never retried: the next answer would be as large.

    After a submit it is reported as uncertain (the answer may describe a billed prediction).
    """


class WaveSpeedResumeError(WaveSpeedError, AirflowFailException):
    """A submitted prediction cannot be resumed or recorded safely, so the task fails without retries.

    A retry would submit (and bill) a new prediction while the first may still exist. The message names
    the prediction id and how to start over deliberately.
    """

    def __init__(self, prediction_id: str, message: str) -> None:
        super().__init__(message)
        self.prediction_id = prediction_id


class WaveSpeedOutputError(WaveSpeedError):
    """Copying an output failed: a download, a decode or a write. Every failure on that path is one."""


class OutputTooLargeError(WaveSpeedOutputError):
    """An output passed ``max_output_bytes``; the copy was stopped and nothing was kept."""


class OutputExistsError(WaveSpeedOutputError):
    """The destination already holds an object and ``replace`` is False."""


class WaveSpeedOutputRefusedError(WaveSpeedOutputError):
    """An output was not fetched or not stored: a URL with credentials, a host the rules refuse (a
    private or internal address, at any redirect hop), or content that is not an image."""
