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

from planhat_pipelines.alerts import send_alert
from planhat_pipelines.config import AlertsConfig, Config, parse_config
from planhat_pipelines.defs.alerts import build_failure_alert_sensor, build_rejected_share_sensor
from planhat_pipelines.errors import CredentialsError

#: The receiver stops itself after this long even if a test forgets it.
RECEIVER_LIFETIME_SECONDS = 60.0


class Receiver:
    """A webhook on 127.0.0.1 that stores each POSTed JSON body and answers with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), 1_000_000)
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
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


def _config(tmp_path: Path, webhook_url: str | None, threshold: float = 0.05) -> Config:
    raw: dict[str, Any] = {
        "store": {"path": str(tmp_path / "store.duckdb")},
        "connections": {"wh": {"type": "duckdb", "path": str(tmp_path / "wh.duckdb")}},
        "crm": [
            {
                "name": "companies",
                "model": "company",
                "connection": "wh",
                "table": "crm_companies",
                "direction": "receive",
                "keys": {"planhat": "externalId", "warehouse": "company_key"},
                "fields": [{"planhat": "name", "warehouse": "name"}],
            }
        ],
        "usage": [
            {
                "name": "events",
                "kind": "activities",
                "model": "enduser",
                "connection": "wh",
                "table": "events",
                "key": "event_id",
                "fields": {"record": "user_email", "action": "action", "date": "occurred_at"},
                "cadence": {"every_minutes": 5},
            }
        ],
        "alerts": {"rejected_share_threshold": threshold},
    }
    if webhook_url:
        raw["alerts"]["webhook_url"] = webhook_url
    return parse_config(raw, tmp_path / "config.yaml")


# --- send_alert ------------------------------------------------------------------------------------------
def test_send_alert_posts_json_to_the_webhook(receiver: Receiver) -> None:
    assert send_alert(AlertsConfig(webhook_url=receiver.url), "Sync failed", "run 123: boom")
    (body,) = receiver.bodies
    assert body == {"title": "Sync failed", "body": "run 123: boom", "text": "Sync failed\nrun 123: boom"}


def test_send_alert_without_webhook_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="planhat_pipelines.alerts"):
        assert not send_alert(AlertsConfig(), "Sync failed", "run 123: boom")
    assert "ALERT Sync failed: run 123: boom" in caplog.text


def test_webhook_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    refusing = Receiver(status=500)
    refusing.thread.start()
    try:
        with caplog.at_level(logging.ERROR, logger="planhat_pipelines.alerts"):
            assert not send_alert(AlertsConfig(webhook_url=refusing.url), "t", "x")
        assert "HTTP 500" in caplog.text
    finally:
        refusing.stop()
    # Nobody listens there any more: connection refused, still no exception.
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="planhat_pipelines.alerts"):
        assert not send_alert(AlertsConfig(webhook_url=refusing.url), "t", "x")
    assert "alert webhook failed" in caplog.text and "/hook" not in caplog.text


# --- failed runs ----------------------------------------------------------------------------------------
def test_failure_sensor_names_run_assets_and_error(tmp_path: Path, receiver: Receiver) -> None:
    config = _config(tmp_path, receiver.url)

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


def test_rejected_share_sensor_judges_each_materialization_once(tmp_path: Path, receiver: Receiver) -> None:
    config = _config(tmp_path, receiver.url, threshold=0.1)
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
