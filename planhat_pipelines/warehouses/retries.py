"""Transient warehouse errors are retried by the clients' own machinery, within a bound, one log line per retry.

Why the clients' own retries and not a loop of ours: they know which requests are safe to repeat (a query job is
inserted under a client-chosen job id, so a retried insert finds the job instead of running it twice; the Snowflake
connector repeats a statement with the same request id). What this module adds is the bound and the visibility:

* BigQuery: :func:`bigquery_retries` builds, from google-cloud-bigquery's own ``DEFAULT_RETRY`` and
  ``DEFAULT_JOB_RETRY``, a :class:`LoggedRetry` for every API call (bounded by ``max_seconds``; rate limits,
  5xx and dropped connections) and one for query jobs (the library's job-restart semantics, same bound).
* Snowflake: the connector retries HTTP 429/5xx and dropped connections in its network layer by itself, until
  ``network_timeout``; :func:`snowflake_retry_args` sets that bound and its backoff, and
  :func:`forward_connector_retries` turns the connector's DEBUG "retrying" lines into our log lines.

When the bound is reached the adapters raise :class:`RetriesExhausted`: a transient error (Dagster's step retry
policy tries the step again later) that names the connection, the last error and the fix.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry, exponential_sleep_generator, retry_target

from planhat_pipelines.errors import TransientError, WarehouseError

#: Where every retry line goes.
LOGGER = logging.getLogger("planhat_pipelines.warehouses")


@dataclass(frozen=True)
class RetryBounds:
    """How long the clients keep retrying one call, and how they back off in between.

    Attributes:
        max_seconds: No retry starts later than this after the call's first attempt.
        initial_seconds: The first wait's upper bound (waits are jittered: uniform between 0 and the bound).
        maximum_seconds: The cap on any single wait.
        multiplier: How the wait's bound grows after each failed attempt.
    """

    max_seconds: float = 120.0
    initial_seconds: float = 1.0
    maximum_seconds: float = 16.0
    multiplier: float = 2.0


#: The bounds every connection uses (tests pass their own to ``open_bigquery`` / ``open_snowflake``).
DEFAULT_BOUNDS = RetryBounds()

#: What to tell the user when a warehouse stayed overloaded or unreachable for the whole bound.
EXHAUSTED_FIX = (
    "nothing to change if it passes: the step is retried later by itself; if it persists, check the warehouse's "
    "status page, the project's quotas and the network to it"
)


class RetriesExhausted(WarehouseError, TransientError):
    """A warehouse stayed overloaded or unreachable for the whole retry bound: a later attempt may succeed."""

    def __init__(self, connection: str, obj: str, action: str, bounds: RetryBounds, last_error: str) -> None:
        problem = f"{action} still failed after retrying for {bounds.max_seconds:g} s (last error: {last_error})"
        super().__init__(connection, obj, problem, EXHAUSTED_FIX, transient=True)


# --- BigQuery: google-api-core Retry objects ---------------------------------------------------------
_RATE_QUOTA = re.compile(r"rate limit|too many|per (second|minute)", re.IGNORECASE)


def _reason(exc: BaseException) -> str | None:
    errors = getattr(exc, "errors", None)
    first = errors[0] if isinstance(errors, list) and errors else None
    return first.get("reason") if isinstance(first, dict) else None


def is_rate_or_server_error(exc: BaseException) -> bool:
    """429 (and BigQuery's rateLimitExceeded, whatever the status), 500/502/503/504, a quotaExceeded that is a rate.

    google-cloud-bigquery's own predicate trusts the structured reason first, so a bare 503 or 504 from a proxy
    or load balancer, whose body has another reason or none, would not be retried by it alone.
    """
    if isinstance(
        exc,
        api_exceptions.TooManyRequests
        | api_exceptions.InternalServerError
        | api_exceptions.BadGateway
        | api_exceptions.ServiceUnavailable
        | api_exceptions.GatewayTimeout,
    ):
        return True
    reason = _reason(exc)
    if reason == "rateLimitExceeded":
        return True
    return reason == "quotaExceeded" and bool(_RATE_QUOTA.search(str(exc)))


def extend_predicate(base: Callable[[Exception], bool]) -> Callable[[Exception], bool]:
    """``base`` (a google-cloud-bigquery predicate: its reasons, dropped connections, timeouts) or a rate/5xx."""

    def predicate(exc: Exception) -> bool:
        return base(exc) or is_rate_or_server_error(exc)

    return predicate


class RetryLog:
    """The ``on_error`` callback: one line per retry naming the connection, the error, the attempt and the wait."""

    def __init__(self, connection: str) -> None:
        self.connection = connection

    def __call__(
        self, exc: Exception, attempt: int | None = None, wait: float | None = None, *, giving_up: bool = False
    ) -> None:
        retry_line(self.connection, exc, attempt, wait, giving_up=giving_up)

    def __repr__(self) -> str:
        return f"RetryLog({self.connection!r})"


def retry_line(
    connection: str, error: object, attempt: int | None, wait: float | None, *, giving_up: bool = False
) -> None:
    """Log one retry: ``connection 'x': attempt 2 failed (503 ...); retrying in 1.30 s`` (or ``giving up``)."""
    text = " ".join(str(error).split())[:300] or type(error).__name__
    then = "giving up" if giving_up else "retrying" if wait is None else f"retrying in {wait:.2f} s"
    LOGGER.warning("connection '%s': attempt %s failed (%s); %s", connection, attempt or "?", text, then)


class LoggedRetry(Retry):
    """A google-api-core ``Retry`` whose ``on_error`` (a :class:`RetryLog`) learns the attempt and the next wait.

    google-api-core calls ``on_error(exc)`` before drawing the next wait, and keeps no attempt count. This class
    draws the wait in ``on_error`` instead (from the same exponential generator) and hands it back to
    ``retry_target`` as the sleep, so the logged wait is the slept one. The ``with_*`` copies keep the class and
    the callback (google-api-core copies with ``type(self)(..., on_error=...)``).
    """

    def __call__(self, func: Callable[..., Any], on_error: Callable[[Exception], Any] | None = None) -> Any:
        log = self._on_error or on_error
        if not isinstance(log, RetryLog):
            return super().__call__(func, on_error=on_error)

        @functools.wraps(func)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            sleeps = exponential_sleep_generator(self._initial, self._maximum, multiplier=self._multiplier)
            state = {"attempt": 0, "wait": 0.0}

            def on_failure(exc: Exception) -> None:
                state["attempt"] += 1
                state["wait"] = next(sleeps)
                late = self._timeout is not None and time.monotonic() + state["wait"] > started + self._timeout
                log(exc, int(state["attempt"]), state["wait"], giving_up=late)

            def drawn() -> Iterator[float]:
                while True:
                    yield state["wait"]

            return retry_target(
                functools.partial(func, *args, **kwargs),
                self._predicate,
                drawn(),
                timeout=self._timeout,
                on_error=on_failure,
            )

        return wrapped


@dataclass(frozen=True)
class BigQueryRetries:
    """The two retries a BigQuery adapter passes: ``api`` to every client call, ``job`` to query jobs."""

    api: LoggedRetry
    job: LoggedRetry
    bounds: RetryBounds


def bigquery_retries(connection: str, bounds: RetryBounds = DEFAULT_BOUNDS) -> BigQueryRetries:
    """Bounded, logged copies of google-cloud-bigquery's ``DEFAULT_RETRY`` and ``DEFAULT_JOB_RETRY``.

    The predicates are the library's, widened by :func:`is_rate_or_server_error`; the job retry keeps the
    library's semantics (it restarts a query whose job failed with a retryable reason, under a new job id).
    """
    from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY

    def build(base: Retry) -> LoggedRetry:
        return LoggedRetry(
            predicate=extend_predicate(base._predicate),
            initial=bounds.initial_seconds,
            maximum=bounds.maximum_seconds,
            multiplier=bounds.multiplier,
            timeout=bounds.max_seconds,
            on_error=RetryLog(connection),
        )

    return BigQueryRetries(api=build(DEFAULT_RETRY), job=build(DEFAULT_JOB_RETRY), bounds=bounds)


# --- Snowflake: the connector's network-layer retries -------------------------------------------------
def snowflake_backoff(bounds: RetryBounds) -> Callable[[], Iterator[int]]:
    """A connector ``backoff_policy`` (whole seconds: the connector truncates waits to ints), full jitter."""

    def policy() -> Iterator[int]:
        bound = bounds.initial_seconds
        while True:
            yield int(random.uniform(0, bound) + 0.5) if bound >= 1 else 0
            bound = min(bound * bounds.multiplier, bounds.maximum_seconds)

    return policy


def snowflake_retry_args(bounds: RetryBounds = DEFAULT_BOUNDS) -> dict[str, Any]:
    """Connect arguments that bound the connector's own retries (statements, result polls) and set its backoff.

    ``network_timeout`` is how long the connector keeps retrying one request (429, 5xx, a dropped connection);
    a login is retried once (the connector's ``MAX_CON_RETRY_ATTEMPTS`` env default), within ``login_timeout``
    (set in :mod:`.snowflake.auth`).
    """
    forward_connector_retries()
    return {"network_timeout": max(1, round(bounds.max_seconds)), "backoff_policy": snowflake_backoff(bounds)}


#: The connection whose statement is running in this thread or task (the connector's log lines do not say).
_CONNECTION: contextvars.ContextVar[str] = contextvars.ContextVar("planhat_warehouse_connection", default="?")


@contextlib.contextmanager
def connection_scope(name: str) -> Iterator[None]:
    """Name the connection that the connector's retry lines logged inside belong to."""
    token = _CONNECTION.set(name)
    try:
        yield
    finally:
        _CONNECTION.reset(token)


#: The connector's line before each retry of a request (snowflake/connector/network.py, 4.x).
_NETWORK_RETRY = re.compile(r"^retrying: errorclass=.*?, error=(.*), counter=(\d+), sleeping=([\d.]+)\(s\)$", re.DOTALL)
#: The authenticator's line before each retry of a login (snowflake/connector/auth/by_plugin.py, 4.x).
_LOGIN_RETRY = "Hit connection timeout, attempt number"
_CONNECTOR_LOGGERS = ("snowflake.connector.network", "snowflake.connector.auth.by_plugin")


class _ForwardRetries(logging.Filter):
    """On a connector logger set to DEBUG: forward its retry lines, pass others only as its own level would."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        super().__init__()
        self.logger = logger
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.DEBUG and isinstance(record.msg, str):
            if record.msg.startswith("retrying: ") and (found := _NETWORK_RETRY.match(record.getMessage())):
                retry_line(_CONNECTION.get(), found.group(1), int(found.group(2)), float(found.group(3)))
            elif record.msg.startswith(_LOGIN_RETRY):
                attempt = re.search(r"attempt number (\d+)", record.msg)
                retry_line(_CONNECTION.get(), "login request", int(attempt.group(1)) if attempt else None, None)
        threshold = self.level or (self.logger.parent.getEffectiveLevel() if self.logger.parent else logging.WARNING)
        return record.levelno >= threshold


def forward_connector_retries() -> None:
    """Make the connector's DEBUG retry lines reach our logger, once per process, without its other DEBUG lines."""
    for name in _CONNECTOR_LOGGERS:
        logger = logging.getLogger(name)
        if any(isinstance(f, _ForwardRetries) for f in logger.filters):
            continue
        # First in line: the connector's secret-masking filter then never spends time on dropped DEBUG lines.
        logger.filters.insert(0, _ForwardRetries(logger, logger.level))
        logger.setLevel(logging.DEBUG)
