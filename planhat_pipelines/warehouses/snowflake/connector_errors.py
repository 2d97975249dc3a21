"""What snowflake-connector-python's errors mean: refused credentials, an unreachable account, timeouts."""

from __future__ import annotations

import re

import snowflake.connector

from planhat_pipelines.errors import CredentialsError
from planhat_pipelines.warehouses.retries import RetriesExhausted, RetryBounds

# Snowflake error numbers the server or the connector uses when it refuses credentials.
AUTH_ERRNOS = {
    390100,  # incorrect username or password
    390101,  # user temporarily locked
    390102,  # user disabled
    390144,  # JWT token invalid (key pair does not match the registered public key)
    390190,  # integration/authenticator refused
    390318,  # OAuth token expired
    390302,  # invalid connection (e.g. MFA)
    251006,  # password is empty (connector, before any request)
    251008,  # invalid private key (connector)
}
# ... and when the account cannot be reached at all.
UNREACHABLE_ERRNOS = {250001, 250003, 250005, 251009, 251011, 251012}
#: What the connector raises once its own retries of a statement's request ran out of ``network_timeout``: the
#: last retryable HTTP answer (matched by class: re-raising it doubles its errno), or errno 250003 for a
#: connection that kept dropping.
EXHAUSTED_CLASSES = (
    snowflake.connector.errors.TooManyRequests,
    snowflake.connector.errors.InternalServerError,
    snowflake.connector.errors.BadGatewayError,
    snowflake.connector.errors.ServiceUnavailableError,
    snowflake.connector.errors.GatewayTimeoutError,
    snowflake.connector.errors.RequestTimeoutError,
    snowflake.connector.errors.OtherHTTPRetryableError,
)
EXHAUSTED_ERRNOS = {250003}
#: A statement cancelled by its timeout.
CANCELLED_ERRNOS = {604, 630}
#: Why Snowflake cannot report changes: tracking off, or the point is beyond time travel.
CHANGES_UNAVAILABLE = re.compile(
    r"change tracking is not enabled|before the table's change tracking|retention|time travel data is not available"
    r"|not available for time travel",
    re.IGNORECASE,
)


def connect_error(
    connection: str, target: str, credentials_fix: str, exc: snowflake.connector.errors.Error
) -> CredentialsError:
    """The CredentialsError for a failed connect (or a statement refused for credential reasons).

    Args:
        connection: The connection's name, used in the message.
        target: Where the connection points (``account 'x' as user 'y'``).
        credentials_fix: What to do when Snowflake refuses the credentials.
        exc: What the connector raised.

    Returns:
        Refused credentials, an unreachable account, or another connect failure, with its fix.
    """
    errno = getattr(exc, "errno", None)
    message = str(getattr(exc, "msg", None) or exc)
    if errno in AUTH_ERRNOS:
        return CredentialsError(connection, target, f"Snowflake refused the credentials ({message})", credentials_fix)
    if errno in UNREACHABLE_ERRNOS or isinstance(exc, snowflake.connector.errors.OperationalError):
        return CredentialsError(
            connection,
            target,
            f"cannot reach Snowflake ({message})",
            "check the account identifier (and host/port if set) and that this machine can reach it",
        )
    return CredentialsError(connection, target, f"cannot connect ({message})", credentials_fix)


def retries_exhausted(
    connection: str, obj: str, action: str, bounds: RetryBounds, exc: snowflake.connector.errors.Error
) -> RetriesExhausted | None:
    """The transient error for a statement whose requests the connector retried until its bound, else None.

    Only for statements of an open session: a login that keeps failing is :func:`connect_error`'s.
    """
    if not isinstance(exc, EXHAUSTED_CLASSES) and getattr(exc, "errno", None) not in EXHAUSTED_ERRNOS:
        return None
    return RetriesExhausted(connection, obj, action, bounds, str(getattr(exc, "msg", None) or exc))
