"""Transient warehouse errors are retried by the clients themselves, bounded and logged.

A small HTTP proxy on 127.0.0.1 sits between the adapter and the real emulator (local-bigquery's REST endpoint,
the fakesnow server): it answers the first matching requests with 429/503 (or drops the connection) and then
forwards everything. The tests point the connection's endpoint (host:port) at the proxy.
"""

from __future__ import annotations

import http.client
import logging
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pytest
from google.api_core import exceptions as api_exceptions

from planhat_pipelines.errors import TransientError
from planhat_pipelines.warehouses.bigquery import open_bigquery
from planhat_pipelines.warehouses.retries import RetriesExhausted, RetryBounds, is_rate_or_server_error
from planhat_pipelines.warehouses.snowflake import open_snowflake
from planhat_pipelines_tests.emulators.bigquery import BigQueryHarness
from planhat_pipelines_tests.emulators.snowflake import EMULATOR_CONNECT_ARGS, SnowflakeHarness

#: Fast bounds: waits of a few milliseconds, and a bound of 2 s for the proxy that never recovers.
FAST = RetryBounds(max_seconds=2, initial_seconds=0.01, maximum_seconds=0.05, multiplier=2)
#: Snowflake's connector sleeps whole seconds: an initial wait below 1 s means no wait at all.
SNOWFLAKE_FAST = RetryBounds(max_seconds=2, initial_seconds=0, maximum_seconds=0, multiplier=2)
#: The sentinel status for "close the connection without answering".
DROP = 0
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class FlakyProxy:
    """Forwards HTTP to ``target`` (host, port), first answering matching requests with ``failures`` in order.

    Args:
        target: The emulator's host and port.
        path: A regex; only requests whose path matches it fail.
        failures: Statuses for the first matching requests (``DROP`` closes the socket without an answer).
        forever: A status every matching request gets once ``failures`` are used up (None: forward them).
    """

    def __init__(self, target: tuple[str, int], path: str, failures: list[int], forever: int | None = None) -> None:
        self.target = target
        self.path = re.compile(path)
        self.failures = list(failures)
        self.forever = forever
        self.failed: list[tuple[str, str, int]] = []
        self.forwarded = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = proxy._failure(self.command, self.path)
                if status == DROP:
                    self.close_connection = True
                    self.connection.close()
                    return
                if status is not None:
                    text = b'{"error": {"code": %d, "message": "proxy says no"}}' % status
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                    return
                proxy._forward(self, body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _failure(self, method: str, path: str) -> int | None:
        if not self.path.search(path):
            return None
        with self._lock:
            status = self.failures.pop(0) if self.failures else self.forever
            if status is not None:
                self.failed.append((method, path, status))
            return status

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        upstream = http.client.HTTPConnection(*self.target, timeout=60)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_HEADERS}
        upstream.request(handler.command, handler.path, body=body or None, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        handler.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_HEADERS:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        upstream.close()
        with self._lock:
            self.forwarded += 1

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _retry_lines(caplog: pytest.LogCaptureFixture, connection: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "planhat_pipelines.warehouses" and r.getMessage().startswith(f"connection '{connection}'")
    ]


@pytest.fixture
def bq_proxy_target(bigquery_harness: BigQueryHarness) -> Iterator[tuple[str, int]]:
    host, port = bigquery_harness.emulator.endpoint.removeprefix("http://").rsplit(":", 1)
    yield host, int(port)


def test_bigquery_query_survives_429_a_dropped_connection_and_503(
    bigquery_harness: BigQueryHarness, bq_proxy_target: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="planhat_pipelines.warehouses")
    with FlakyProxy(bq_proxy_target, r"/bigquery/v2/", [429, DROP, 503]) as proxy:
        settings = bigquery_harness.settings(endpoint=f"http://127.0.0.1:{proxy.port}", storage_api=False)
        wh = open_bigquery("bq_flaky", settings, retry_bounds=FAST)
        try:
            result = wh.query("SELECT 41 + 1 AS answer")
        finally:
            wh.close()
    assert result.column("answer").to_pylist() == [42]
    assert [status for _, _, status in proxy.failed] == [429, DROP, 503]
    assert proxy.forwarded > 0
    lines = _retry_lines(caplog, "bq_flaky")
    assert len(lines) == 3, lines
    assert [re.search(r"attempt (\d+)", line).group(1) for line in lines] == ["1", "2", "3"]  # type: ignore[union-attr]
    assert "429" in lines[0] and "503" in lines[2] and all(re.search(r"retrying in \d", ln) for ln in lines)


def test_bigquery_merge_retries_the_staging_upload(
    bigquery_harness: BigQueryHarness, bq_proxy_target: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="planhat_pipelines.warehouses")
    bigquery_harness.create_table("accounts", pa.table({"id": pa.array([1], pa.int64()), "name": ["old"]}))
    with FlakyProxy(bq_proxy_target, r"^/upload/", [503, 429]) as proxy:
        settings = bigquery_harness.settings(endpoint=f"http://127.0.0.1:{proxy.port}", storage_api=False)
        wh = open_bigquery("bq_upload", settings, retry_bounds=FAST)
        try:
            result = wh.merge("accounts", pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["new", "two"]}), "id")
        finally:
            wh.close()
    assert (result.inserted, result.updated) == (1, 1)
    assert sorted(bigquery_harness.fetch("SELECT id, name FROM accounts")) == [(1, "new"), (2, "two")]
    assert [status for _, _, status in proxy.failed] == [503, 429]
    assert len(_retry_lines(caplog, "bq_upload")) == 2


def test_bigquery_that_stays_unavailable_fails_within_the_bound_as_transient(
    bigquery_harness: BigQueryHarness, bq_proxy_target: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="planhat_pipelines.warehouses")
    with FlakyProxy(bq_proxy_target, r"/bigquery/v2/", [], forever=503) as proxy:
        settings = bigquery_harness.settings(endpoint=f"http://127.0.0.1:{proxy.port}", storage_api=False)
        wh = open_bigquery("bq_down", settings, retry_bounds=FAST)
        started = time.monotonic()
        try:
            with pytest.raises(RetriesExhausted) as info:
                wh.query("SELECT 1")
        finally:
            wh.close()
    elapsed = time.monotonic() - started
    err = info.value
    assert isinstance(err, TransientError) and err.transient
    assert "connection 'bq_down'" in str(err) and "after retrying for 2 s" in str(err) and "503" in str(err)
    assert "retried later by itself" in err.fix
    # Bounded: the API retry's 2 s inside the job retry's 2 s, not the library's default 10 minutes.
    assert elapsed < 15, elapsed
    assert len(proxy.failed) >= 3
    assert "giving up" in _retry_lines(caplog, "bq_down")[-1]


@pytest.fixture
def sf_proxy_target(snowflake_harness: SnowflakeHarness) -> Iterator[tuple[str, int]]:
    yield str(snowflake_harness.server["host"]), int(snowflake_harness.server["port"])


def _flaky_snowflake(harness: SnowflakeHarness, name: str, port: int) -> Any:
    args = {k: v for k, v in EMULATOR_CONNECT_ARGS.items() if k != "network_timeout"}
    return open_snowflake(name, harness.settings(port=port), connect_args=args, retry_bounds=SNOWFLAKE_FAST)


def test_snowflake_statement_survives_429_and_503(
    snowflake_harness: SnowflakeHarness, sf_proxy_target: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="planhat_pipelines.warehouses")
    with FlakyProxy(sf_proxy_target, r"^/queries/v1/query-request", [429, 503]) as proxy:
        wh = _flaky_snowflake(snowflake_harness, "sf_flaky", proxy.port)
        try:
            result = wh.query("SELECT 41 + 1 AS answer")
        finally:
            wh.close()
    assert result.column(0).to_pylist() == [42]
    assert [status for _, _, status in proxy.failed] == [429, 503]
    lines = _retry_lines(caplog, "sf_flaky")
    assert len(lines) == 2, lines
    assert "attempt 1" in lines[0] and "429" in lines[0] and "attempt 2" in lines[1] and "503" in lines[1]
    # The connector's other DEBUG lines are not let through by the forwarding.
    assert not [r for r in caplog.records if r.name.startswith("snowflake.connector") and r.levelno < logging.INFO]


def test_snowflake_that_stays_unavailable_fails_within_the_bound_as_transient(
    snowflake_harness: SnowflakeHarness, sf_proxy_target: tuple[str, int]
) -> None:
    with FlakyProxy(sf_proxy_target, r"^/queries/v1/query-request", [], forever=503) as proxy:
        wh = _flaky_snowflake(snowflake_harness, "sf_down", proxy.port)
        started = time.monotonic()
        try:
            with pytest.raises(RetriesExhausted) as info:
                wh.probe()
        finally:
            wh.close()
    elapsed = time.monotonic() - started
    err = info.value
    assert isinstance(err, TransientError) and err.transient
    assert "connection 'sf_down'" in str(err) and "after retrying for 2 s" in str(err) and "503" in str(err)
    assert elapsed < 15, elapsed
    assert len(proxy.failed) >= 2


def test_snowflake_login_survives_a_503(
    snowflake_harness: SnowflakeHarness, sf_proxy_target: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    # The connector retries a login once (its MAX_CON_RETRY_ATTEMPTS default), within login_timeout.
    caplog.set_level(logging.INFO, logger="planhat_pipelines.warehouses")
    with FlakyProxy(sf_proxy_target, r"^/session/v1/login-request", [503]) as proxy:
        wh = _flaky_snowflake(snowflake_harness, "sf_login", proxy.port)
        try:
            wh.probe()
        finally:
            wh.close()
    assert [status for _, _, status in proxy.failed] == [503]
    lines = _retry_lines(caplog, "sf_login")
    assert len(lines) == 1 and "attempt 1 failed (login request); retrying" in lines[0], lines


def _google_error(kind: type[api_exceptions.GoogleAPICallError], reason: str, message: str) -> Exception:
    return kind(message, errors=[{"reason": reason, "message": message}])


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (_google_error(api_exceptions.Forbidden, "rateLimitExceeded", "Exceeded rate limits: api requests"), True),
        (_google_error(api_exceptions.Forbidden, "quotaExceeded", "Exceeded rate limits: table updates"), True),
        (_google_error(api_exceptions.Forbidden, "quotaExceeded", "Quota exceeded: free query bytes scanned"), False),
        (_google_error(api_exceptions.ServiceUnavailable, "unknownReason", "proxy says no"), True),
        (api_exceptions.GatewayTimeout("gateway timeout"), True),
        (_google_error(api_exceptions.BadRequest, "invalidQuery", "Syntax error"), False),
        (_google_error(api_exceptions.Forbidden, "accessDenied", "Access Denied"), False),
    ],
)
def test_bigquery_retries_rates_and_5xx_but_not_daily_quotas_or_refusals(error: Exception, retried: bool) -> None:
    assert is_rate_or_server_error(error) is retried
