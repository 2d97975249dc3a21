"""Connection health: one cheap probe per connection, its status, and the log of statuses in the store.

Pure core (no Dagster): :func:`check_connection` opens a connection's adapter and calls
:meth:`~planhat_pipelines.warehouses.base.Warehouse.probe` (a token refresh and ``SELECT 1``);
:func:`record_health` appends the result to the store's ``connection_health`` table;
:func:`skip_reason_if_unhealthy` is what schedules and sensors call before they request runs.

A connection is

- ``failing`` when opening or probing raised: the error text is the client's own (e.g. Google's
  ``invalid_grant``, the key loader's "bad decrypt"), the fix says what to do;
- ``expiring`` when it works but a known expiry is within ``health.warn_days`` (the configured
  ``key_rotation_date``, or a Snowflake OAuth connection's ``oauth_refresh_token_expires``; an overdue date
  stays ``expiring`` while the old credentials still work);
- ``ok`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from planhat_pipelines.config import BigQuerySettings, ConnectionConfig, DuckDBSettings, SnowflakeSettings
from planhat_pipelines.errors import ConfigError, PlanhatPipelinesError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.warehouses.factory import open_warehouse

Status = Literal["ok", "expiring", "failing"]

#: Exceptions that mean the probe's code is wrong, not the connection: never reported as a failing connection.
_BUGS = (TypeError, AttributeError, NameError, KeyError, IndexError, AssertionError, ImportError, SyntaxError)

#: The fix given when an error carries none (an unexpected client exception).
GENERIC_FIX = "check the connection's endpoint, network and credentials settings"


@dataclass(frozen=True)
class HealthStatus:
    """The outcome of one probe of a connection.

    Attributes:
        connection: The connection's name in the config.
        status: ``ok``, ``expiring`` or ``failing``.
        error: What went wrong, in the client's own words (None when ok).
        fix: What to do about it (re-authorise, rotate the key, fix the env var, check the endpoint).
        expires_at: The known expiry of the credentials (UTC), if any.
        checked_at: When the probe ran (UTC).
    """

    connection: str
    status: Status
    error: str | None
    fix: str | None
    expires_at: datetime | None
    checked_at: datetime

    @property
    def healthy(self) -> bool:
        """Whether syncs can run (``ok`` or ``expiring``)."""
        return self.status != "failing"

    def describe(self) -> str:
        """One line for a sensor tick, a log or an alert: status, error and fix."""
        text = f"connection '{self.connection}' is {self.status}"
        if self.error:
            text += f": {self.error}"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


def _split_fix(connection: ConnectionConfig, exc: BaseException) -> tuple[str, str]:
    """(error, fix) of a failed probe: the fields of one of our typed errors, else the exception and a generic fix."""
    if isinstance(exc, ConfigError):
        return f"{exc.path}: {exc.where}: {exc.problem}", exc.fix
    if not (isinstance(exc, PlanhatPipelinesError) and exc.fix):
        return f"{type(exc).__name__}: {str(exc).strip() or type(exc).__name__}", GENERIC_FIX
    error, fix = exc.problem, exc.fix
    # The status already names the connection.
    error = error.removeprefix(f"connection '{connection.name}', ")
    settings = connection.settings
    if (
        isinstance(settings, BigQuerySettings)
        and settings.auth == "oauth"
        and "invalid_grant" in error
        and settings.oauth_refresh_token is not None
    ):
        fix = (
            "re-authorise: run the OAuth consent flow again for this client and set "
            f"{settings.oauth_refresh_token.name} to the new refresh token"
        )
    return error, fix


def _expiry(connection: ConnectionConfig) -> tuple[datetime | None, str, str]:
    """(the earliest known expiry, what expires then, the fix): ``health.key_rotation_date`` or, for a Snowflake
    OAuth connection, ``oauth_refresh_token_expires`` (what ``planhat-pipelines auth snowflake`` printed)."""
    known: list[tuple[date, str, str]] = []
    rotation = connection.health.key_rotation_date
    if rotation is not None:
        fix = (
            "rotate the key (or re-authorise) before that date, update its environment variable, then move "
            f"health.key_rotation_date of connection '{connection.name}' to the new key's expiry"
        )
        known.append((rotation, "the credentials' key_rotation_date", fix))
    settings = connection.settings
    if isinstance(settings, SnowflakeSettings) and settings.auth == "oauth" and settings.oauth_refresh_token_expires:
        var = settings.oauth_refresh_token.name if settings.oauth_refresh_token else "oauth_refresh_token's variable"
        fix = (
            "re-authorise before that date: run `planhat-pipelines auth snowflake`, set "
            f"{var} to the new refresh token and oauth_refresh_token_expires of connection '{connection.name}' "
            "to the date it prints"
        )
        known.append((settings.oauth_refresh_token_expires, "the OAuth refresh token's expiry", fix))
    if not known:
        return None, "", ""
    day, what, fix = min(known, key=lambda item: item[0])
    return datetime.combine(day, time.min, tzinfo=UTC), what, fix


def check_connection(connection: ConnectionConfig, now: datetime) -> HealthStatus:
    """Open ``connection``'s adapter, probe it once and say how healthy it is.

    Never raises for a broken connection: every failure (missing env var, unreadable key, refused
    token, unreachable endpoint) becomes a ``failing`` status with the client's message and the fix.

    Args:
        connection: The connection from the config.
        now: The current time (aware; naive is taken as UTC), used for ``checked_at`` and the expiry.

    Returns:
        The status.
    """
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    expires_at, expiring_what, expiring_fix = _expiry(connection)
    try:
        with open_warehouse(connection) as warehouse:
            warehouse.probe()
    except _BUGS:
        raise  # a bug in the probe is not a broken connection: let it fail the tick with its traceback
    except Exception as exc:  # every failure of the connection (client, network, credentials) is a status
        if isinstance(connection.settings, DuckDBSettings) and "could not set lock" in str(exc).lower():
            # Another process (a sync writing the file) holds it: the file exists and works.
            return HealthStatus(connection.name, "ok", None, None, expires_at, now)
        error, fix = _split_fix(connection, exc)
        return HealthStatus(connection.name, "failing", error, fix, expires_at, now)
    if expires_at is not None and expires_at - now <= timedelta(days=connection.health.warn_days):
        days = (expires_at - now).total_seconds() / 86400
        when = f"in {days:.1f} days" if days >= 0 else f"{-days:.1f} days ago"
        error = f"{expiring_what} {expires_at.date().isoformat()} is {when}"
        return HealthStatus(connection.name, "expiring", error, expiring_fix, expires_at, now)
    return HealthStatus(connection.name, "ok", None, None, expires_at, now)


def record_health(store: ModelStore, status: HealthStatus) -> None:
    """Append ``status`` to the store's ``connection_health`` table (times stored as UTC)."""
    store.record_health(
        status.connection,
        status.checked_at,
        status.status,
        error=status.error,
        fix=status.fix,
        expires_at=status.expires_at,
    )


def skip_reason_if_unhealthy(connection: ConnectionConfig, now: datetime) -> str | None:
    """A skip reason naming the connection, its error and the fix when it is failing; None when runs may start.

    One probe (a token refresh and ``SELECT 1``). ``expiring`` connections still work, so they
    return None: the credentials sensor warns about them.
    """
    status = check_connection(connection, now)
    if status.healthy:
        return None
    return f"not requesting runs: {status.describe()}"
