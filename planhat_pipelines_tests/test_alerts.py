"""Alerts: the webhook POST (captured by a local receiver), the failed-run and the rejected-share sensors."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from planhat_pipelines.alerts import AlertDeliveryError, send_alert
from planhat_pipelines.config import AlertsConfig, Config, EnvRef, parse_config
from planhat_pipelines.defs.alerts import build_failure_alert_sensor, build_rejected_share_sensor
from planhat_pipelines.errors import ConfigError, CredentialsError
from planhat_pipelines_tests.builders import OMIT, config_doc, crm_section, parse, usage_section

#: The receiver stops itself after this long even if a test forgets it.
RECEIVER_LIFETIME_SECONDS = 60.0
#: The env var the tests' configs name for the webhook URL, and the secret part of the receiver's URL.
WEBHOOK_ENV = "PLANHAT_ALERTS_WEBHOOK"
SECRET_TOKEN = "T0000/B0000/xoxb-secret-token"
#: Retries without waiting, so the tests stay fast.
NO_WAIT = (0.0, 0.0)


class Receiver:
    """A webhook on 127.0.0.1 that stores each POSTed JSON body and answers with ``status``.

    ``first`` are the answers to the first requests (one each), e.g. ``(500, 500)`` then ``status``. The URL
    carries a token-like path, as Slack's does, so tests can check that it is never printed.
    """

    def __init__(self, status: int = 200, first: tuple[int, ...] = ()) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status
        self.first = list(first)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), 1_000_000)
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.first.pop(0) if receiver.first else receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}/services/{SECRET_TOKEN}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        deadline = time.monotonic() + RECEIVER_LIFETIME_SECONDS
        self.server.timeout = 0.1
        while not getattr(self, "stopped", False) and time.monotonic() < deadline:
            self.server.handle_request()

    def stop(self) -> None:
        self.stopped = True
        self.thread.join(timeout=5)
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.stop()


def _config(tmp_path: Path, webhook: str | None, threshold: float = 0.05) -> Config:
    """A config whose ``alerts.webhook_url`` is ``{env: <webhook>}`` (an env var name), or no webhook."""
    raw = config_doc(
        tmp_path,
        crm=[crm_section(warehouse_key="company_key")],
        usage=[usage_section(record_match=OMIT)],
        alerts={"rejected_share_threshold": threshold},
    )
    if webhook:
        raw["alerts"]["webhook_url"] = {"env": webhook}
    return parse(raw, tmp_path)


def _alerts(monkeypatch: pytest.MonkeyPatch, url: str) -> AlertsConfig:
    monkeypatch.setenv(WEBHOOK_ENV, url)
    return AlertsConfig(webhook_url=EnvRef(WEBHOOK_ENV))


# --- config ---------------------------------------------------------------------------------------------
def test_a_plain_text_webhook_url_is_refused(tmp_path: Path) -> None:
    raw = {
        "store": {"catalog": str(tmp_path / "store.sqlite")},
        "connections": {"wh": {"type": "duckdb", "path": str(tmp_path / "wh.duckdb")}},
        "alerts": {"webhook_url": f"https://hooks.example.com/services/{SECRET_TOKEN}"},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw, tmp_path / "config.yaml")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'config.yaml'}: alerts.webhook_url: ")
    assert message.endswith("Fix: write webhook_url: {env: PLANHAT_ALERTS_WEBHOOK} and export the URL")
    assert "\n" not in message and SECRET_TOKEN not in message


def test_the_webhook_env_var_must_be_set_and_is_read_when_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"alerts.webhook_url: environment variable {WEBHOOK_ENV} is not set"):
        _config(tmp_path, WEBHOOK_ENV)
    monkeypatch.setenv(WEBHOOK_ENV, "http://127.0.0.1:9/not-this-one")
    config = _config(tmp_path, WEBHOOK_ENV)
    assert config.alerts.webhook_url == EnvRef(WEBHOOK_ENV)
    # The value at send time counts, not the one at load time (a rotated URL needs no reload).
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    assert send_alert(config.alerts, "t", "x", retry_delays=())
    assert len(receiver.bodies) == 1


# --- send_alert ------------------------------------------------------------------------------------------
def test_send_alert_posts_json_to_the_webhook(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    assert send_alert(_alerts(monkeypatch, receiver.url), "Sync failed", "run 123: boom")
    (body,) = receiver.bodies
    assert body == {"title": "Sync failed", "body": "run 123: boom", "text": "Sync failed\nrun 123: boom"}


def test_send_alert_without_webhook_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="planhat_pipelines.alerts"):
        assert not send_alert(AlertsConfig(), "Sync failed", "run 123: boom")
    assert "ALERT Sync failed: run 123: boom" in caplog.text


def test_a_webhook_answering_500_twice_gets_the_alert_on_the_third_attempt(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Receiver(first=(500, 500))
    flaky.thread.start()
    try:
        with caplog.at_level(logging.WARNING, logger="planhat_pipelines.alerts"):
            assert send_alert(_alerts(monkeypatch, flaky.url), "t", "x", retry_delays=(0.01, 0.01))
    finally:
        flaky.stop()
    assert [b["title"] for b in flaky.bodies] == ["t", "t", "t"]
    assert caplog.text.count("HTTP 500") == 2 and SECRET_TOKEN not in caplog.text


def test_a_webhook_that_keeps_failing_raises_after_the_last_attempt(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Receiver(status=500)
    broken.thread.start()
    try:
        with (
            caplog.at_level(logging.WARNING, logger="planhat_pipelines.alerts"),
            pytest.raises(AlertDeliveryError) as info,
        ):
            send_alert(_alerts(monkeypatch, broken.url), "Sync failed", "x", retry_delays=(0.01, 0.01))
    finally:
        broken.stop()
    assert len(broken.bodies) == 3
    message = str(info.value)
    assert "3 attempt(s)" in message and "HTTP 500" in message and broken.host in message
    assert info.value.transient and SECRET_TOKEN not in message and SECRET_TOKEN not in caplog.text


def test_a_client_error_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = Receiver(status=404)  # a deleted Slack webhook answers 404: retrying cannot help
    gone.thread.start()
    try:
        with pytest.raises(AlertDeliveryError, match="HTTP 404"):
            send_alert(_alerts(monkeypatch, gone.url), "t", "x", retry_delays=(0.01, 0.01))
    finally:
        gone.stop()
    assert len(gone.bodies) == 1


def test_a_refused_connection_is_logged_with_the_host_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    closed = Receiver()
    closed.server.server_close()  # nobody listens on that port any more: connection refused
    with (
        caplog.at_level(logging.WARNING, logger="planhat_pipelines.alerts"),
        pytest.raises(AlertDeliveryError) as info,
    ):
        send_alert(_alerts(monkeypatch, closed.url), "t", "x", retry_delays=(0.01, 0.01))
    assert closed.host in str(info.value) and closed.host in caplog.text
    assert caplog.text.count("alert webhook failed") == 3
    assert SECRET_TOKEN not in str(info.value) and SECRET_TOKEN not in caplog.text and "/services" not in caplog.text


def test_a_malformed_webhook_value_is_refused_without_printing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in (f"hooks.example.com/services/{SECRET_TOKEN}", ""):
        with pytest.raises(AlertDeliveryError) as info:
            send_alert(_alerts(monkeypatch, value), "t", "x", retry_delays=())
        assert WEBHOOK_ENV in str(info.value) and SECRET_TOKEN not in str(info.value)


# --- failed runs ----------------------------------------------------------------------------------------
def test_failure_sensor_names_run_assets_and_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    config = _config(tmp_path, WEBHOOK_ENV)

    @dg.asset(key=["crm", "companies"])
    def companies() -> None:
        raise CredentialsError("wh", "project 'p'", "the token refresh was refused (invalid_grant)", "re-authorise")

    sensor = build_failure_alert_sensor(config)
    assert sensor.name == "sync_failure_alert_sensor"
    with dg.instance_for_test() as instance:
        result = dg.materialize([companies], instance=instance, raise_on_error=False)
        assert not result.success
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        sensor(context)
    (body,) = receiver.bodies
    assert body["title"] == "Sync run failed: crm/companies"
    assert result.run_id in body["text"] and "assets: crm/companies" in body["text"]
    assert "CredentialsError" in body["text"] and "invalid_grant" in body["text"] and "re-authorise" in body["text"]


# --- rejected share --------------------------------------------------------------------------------------
def _materialize(instance: dg.DagsterInstance, key: list[str], rows_read: int, rejected: int) -> str:
    @dg.asset(key=key)
    def section() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows_read": rows_read, "rejected": rejected})

    return dg.materialize([section], instance=instance).run_id


def test_rejected_share_sensor_judges_each_materialization_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    config = _config(tmp_path, WEBHOOK_ENV, threshold=0.1)
    sensor = build_rejected_share_sensor(config)
    assert sensor.name == "rejected_share_alert_sensor" and sensor.minimum_interval_seconds == 300
    with dg.instance_for_test() as instance:

        def tick(cursor: str | None) -> tuple[str | None, str]:
            ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
            result = sensor.evaluate_tick(ctx)
            return result.cursor, result.skip_message or ""

        cursor, message = tick(None)
        assert cursor is None and "judged 0" in message
        _materialize(instance, ["usage", "events"], 1000, 50)  # 5%: older and fine
        bad_run = _materialize(instance, ["usage", "events"], 1000, 300)  # 30%
        _materialize(instance, ["crm", "companies"], 10, 1)  # 10%: not above 10%
        _materialize(instance, ["okrs", "other"], 10, 10)  # not a sync asset
        # First tick: only each asset's latest materialization.
        cursor, message = tick(None)
        assert "judged 2" in message and "1 over 10.0%" in message
        (body,) = receiver.bodies
        assert body["title"] == "usage/events rejected 30.0% of rows"
        assert bad_run in body["text"] and "rejected 300" in body["text"]
        # Nothing new: nothing judged again.
        cursor, message = tick(cursor)
        assert "judged 0" in message and len(receiver.bodies) == 1
        # Two new ones: both judged, once.
        _materialize(instance, ["crm", "companies"], 10, 5)
        _materialize(instance, ["usage", "events"], 100, 11)
        cursor, message = tick(cursor)
        assert "judged 2" in message and "2 over" in message
        assert [b["title"] for b in receiver.bodies[1:]] == [
            "crm/companies rejected 50.0% of rows",
            "usage/events rejected 11.0% of rows",
        ]
        _, message = tick(cursor)
        assert "judged 0" in message and len(receiver.bodies) == 3


def test_a_reject_share_alert_that_fails_keeps_the_cursor_before_it_and_is_sent_next_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Receiver(status=500)
    broken.thread.start()
    monkeypatch.setenv(WEBHOOK_ENV, broken.url)
    config = _config(tmp_path, WEBHOOK_ENV, threshold=0.1)
    sensor = build_rejected_share_sensor(config, retry_delays=NO_WAIT)
    try:
        with dg.instance_for_test() as instance:

            def tick(cursor: str | None) -> tuple[str | None, str]:
                result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
                return result.cursor, result.skip_message or ""

            _materialize(instance, ["crm", "companies"], 10, 0)  # seen by the first tick: the cursor starts here
            start, _ = tick(None)
            assert start is not None
            _materialize(instance, ["usage", "events"], 1000, 0)  # fine: judged, advances
            fine = instance.fetch_materializations(dg.AssetKey(["usage", "events"]), limit=1).records[0]
            _materialize(instance, ["crm", "companies"], 10, 5)  # 50 %: its alert fails
            bad = instance.fetch_materializations(dg.AssetKey(["crm", "companies"]), limit=1).records[0]
            _materialize(instance, ["usage", "events"], 100, 50)  # 50 %, after the failed one: not judged yet
            cursor, message = tick(start)
            assert len(broken.bodies) == 3  # three attempts, then the sensor stops for this tick
            assert cursor is not None and fine.storage_id <= int(cursor) < bad.storage_id
            assert "not delivered" in message and broken.host in message and SECRET_TOKEN not in message
            # Still broken: the same record is tried again, the cursor does not move.
            again, _ = tick(cursor)
            assert again == cursor and len(broken.bodies) == 6
            # The webhook is fixed: both alerts go out, once each, in order.
            broken.status = 200
            cursor, message = tick(cursor)
            titles = [b["title"] for b in broken.bodies[6:]]
            assert titles == ["crm/companies rejected 50.0% of rows", "usage/events rejected 50.0% of rows"]
            assert "2 over" in message
            _, message = tick(cursor)
            assert "judged 0" in message and len(broken.bodies) == 8
    finally:
        broken.stop()


def test_a_failure_alert_that_fails_fails_the_tick_and_is_sent_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Receiver(status=500)
    broken.thread.start()
    monkeypatch.setenv(WEBHOOK_ENV, broken.url)
    config = _config(tmp_path, WEBHOOK_ENV)

    @dg.asset(key=["crm", "companies"])
    def companies() -> None:
        raise RuntimeError("boom")

    sensor = build_failure_alert_sensor(config, retry_delays=NO_WAIT)
    try:
        with dg.instance_for_test() as instance:

            def tick(cursor: str | None) -> str | None:
                return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor)).cursor

            start = tick(None)  # a run-status sensor starts from the newest event
            result = dg.materialize([companies], instance=instance, raise_on_error=False)
            assert not result.success
            # The daemon records a raised tick as failed with this message and keeps the cursor it had.
            with pytest.raises(dg.DagsterError) as info:
                tick(start)
            message = str(info.value)
            assert "not delivered" in message and result.run_id in message and broken.host in message
            assert SECRET_TOKEN not in message and len(broken.bodies) == 3
            broken.status = 200
            cursor = tick(start)
            (body,) = broken.bodies[3:]
            assert body["title"] == "Sync run failed: crm/companies" and result.run_id in body["text"]
            assert cursor != start
            tick(cursor)
            assert len(broken.bodies) == 4
    finally:
        broken.stop()


def test_rejected_share_of_a_usage_run_is_judged_on_the_runs_totals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    """A range partition shows its own counts (10 read, 0 rejected); the run rejected 50 of 100: that alerts."""
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    config = _config(tmp_path, WEBHOOK_ENV, threshold=0.1)
    sensor = build_rejected_share_sensor(config)

    @dg.asset(key=["usage", "events"])
    def events() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows_read": 10, "rejected": 0, "run_rows_read": 100, "run_rejected": 50})

    with dg.instance_for_test() as instance:
        dg.materialize([events], instance=instance)
        sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    (body,) = receiver.bodies
    assert body["title"] == "usage/events rejected 50.0% of rows"
