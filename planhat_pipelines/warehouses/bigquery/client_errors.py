"""How google-cloud-bigquery's exceptions read to a user: credentials problems, server messages, transience."""

from __future__ import annotations

import google.auth.exceptions
import requests
from google.api_core import exceptions as api_exceptions

#: What the client raises for a refused request, a failed token refresh or an unreachable host.
CLIENT_ERRORS = (api_exceptions.GoogleAPIError, google.auth.exceptions.GoogleAuthError, requests.RequestException)
#: Client errors a later attempt can get past: 5xx, rate limits, dropped connections and timeouts.
_TRANSIENT = (
    api_exceptions.ServerError,
    api_exceptions.TooManyRequests,
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether a later attempt may succeed where ``exc`` failed (5xx, rate limit, dropped connection, timeout)."""
    return isinstance(exc, _TRANSIENT)


def error_text(exc: BaseException) -> str:
    """The server's own error messages, without the client's job-id and location trailer.

    Args:
        exc: What the client raised.

    Returns:
        The distinct server messages joined by ``; ``, else the first line of the exception's text.
    """
    errors = getattr(exc, "errors", None) or []
    messages = list(dict.fromkeys(e["message"] for e in errors if isinstance(e, dict) and e.get("message")))
    if messages:
        return "; ".join(messages)
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def credentials_problem(exc: BaseException) -> tuple[str, str] | None:
    """(problem, fix) when ``exc`` means the credentials or the endpoint do not work, else None.

    Args:
        exc: What the client (or google.auth) raised.

    Returns:
        The problem and its fix for missing, refused or rejected credentials, denied access or an
        unreachable or unavailable endpoint; None for any other error.
    """
    if isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
        return (
            f"no application default credentials ({exc})",
            "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a key file, "
            "or use auth: service_account",
        )
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return (
            f"the token refresh was refused ({exc})",
            "re-authorise (a new OAuth refresh token) or rotate the service-account key, then update its env var",
        )
    if isinstance(exc, api_exceptions.Unauthorized):
        return (f"the credentials were rejected ({exc.message})", "re-authorise or rotate the key")
    if isinstance(exc, api_exceptions.Forbidden):
        return (
            f"access was denied ({exc.message})",
            "grant the account BigQuery Job User and Data Editor on the project/dataset",
        )
    if isinstance(exc, google.auth.exceptions.TransportError | requests.ConnectionError | api_exceptions.RetryError):
        return (f"BigQuery cannot be reached ({exc})", "check the endpoint setting and the network")
    if isinstance(exc, api_exceptions.ServiceUnavailable):
        return (f"BigQuery is unavailable ({exc.message})", "check the endpoint (or storage_grpc_endpoint) and retry")
    return None


def last_error_text(exc: BaseException) -> str:
    """What the last attempt under a ``RetryError`` got: ``HTTP 503: <server message>`` or the error's text."""
    while isinstance(exc, api_exceptions.RetryError) and exc.cause is not None:
        exc = exc.cause
    code = getattr(exc, "code", None)
    return f"HTTP {code}: {error_text(exc)}" if isinstance(code, int) else f"{type(exc).__name__}: {error_text(exc)}"
