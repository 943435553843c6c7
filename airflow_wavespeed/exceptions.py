"""Errors raised by the WaveSpeed provider.

Every error derives from :class:`WaveSpeedError` (an ``AirflowException``), so a DAG author can catch
the whole family in one place. Messages never contain the API key: they are built from the prediction
id, the HTTP status and the API's own message only.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class WaveSpeedError(AirflowException):
    """Base class of every error this provider raises."""


class WaveSpeedInputError(WaveSpeedError, ValueError):
    """An argument was rejected before any request was sent (nothing was billed)."""


class WaveSpeedConnectionConfigError(WaveSpeedError):
    """The Airflow connection is missing or unusable (no API key, a base URL without a scheme)."""


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


class WaveSpeedBadRequestError(WaveSpeedAPIError):
    """400 (or another 4xx): the API rejected the request; ``api_message`` says why."""


class WaveSpeedNotFoundError(WaveSpeedAPIError):
    """404: the prediction (or route) does not exist, e.g. it was deleted after 7 days."""


class WaveSpeedRateLimitError(WaveSpeedAPIError):
    """429: too many requests. Nothing was created; ``retry_after`` is the server's hint in seconds."""


class WaveSpeedServerError(WaveSpeedAPIError):
    """5xx: the API or a gateway in front of it failed."""


class WaveSpeedMalformedResponseError(WaveSpeedError):
    """The body was not the JSON envelope the API documents.

    The message quotes the HTTP status and the first 200 characters of the body, never the request.
    """

    def __init__(self, reason: str, *, http_status: int, body: str) -> None:
        super().__init__(f"Malformed response from WaveSpeed (HTTP {http_status}): {reason}; body: {body[:200]!r}")
        self.http_status = http_status


class WaveSpeedTransportError(WaveSpeedError):
    """The request failed below HTTP: connection refused or reset, or no answer within the read timeout.

    ``request_sent`` is False only when the request provably never left this machine (the connection
    could not be opened), which is what makes a retried submit safe.
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class WaveSpeedSubmitUncertainError(WaveSpeedError, AirflowFailException):
    """A submit failed in a way that may still have created (and billed) a prediction.

    It is never retried automatically: a second POST could bill a second prediction. It is an
    ``AirflowFailException`` so the task fails without using its ``retries``, which would submit again.
    """


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
