"""Connection health against the real clients: google-auth refreshing at a local token endpoint, real key files,
real DuckDB, and the credentials sensor writing (or, under another process's lock, not writing) the store."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from planhat_pipelines.config import Config, ConnectionConfig
from planhat_pipelines.defs.health import CHECK_NAME, build_health_check, build_health_defs, health_asset_key
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.health import check_connection, record_health, skip_reason_if_unhealthy
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.builders import config_doc, duckdb_connection, parse
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class _TokenEndpoint(BaseHTTPRequestHandler):
    """Google's token endpoint refusing a revoked refresh token, as it does: HTTP 400 invalid_grant."""

    requests: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.server.requests.append(body)  # type: ignore[attr-defined]
        payload = json.dumps({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def token_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _connection(tmp_path: Path, settings: dict[str, Any]) -> ConnectionConfig:
    return parse(config_doc(tmp_path, connections={"wh": settings}), tmp_path).connection("wh")


def _bigquery(extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": "bigquery", "project": "planhat-test", "dataset": "planhat", **extra}


def _snowflake(extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "snowflake",
        "account": "acme-test",
        "user": "PLANHAT_SYNC",
        "database": "ANALYTICS",
        "schema": "PLANHAT",
        "auth": "key_pair",
        "private_key_path": {"env": "TEST_SF_KEY_PATH"},
        # Nothing below may reach a network: every case fails while the key is loaded.
        "host": "127.0.0.1",
        "port": 9,
        "protocol": "http",
        **extra,
    }


# --- BigQuery ------------------------------------------------------------------------------------------
def test_revoked_oauth_refresh_token_is_failing_with_invalid_grant_and_reauthorise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token_server: ThreadingHTTPServer
) -> None:
    monkeypatch.setenv("TEST_BQ_CLIENT_ID", "client-id.apps.googleusercontent.com")
    monkeypatch.setenv("TEST_BQ_CLIENT_SECRET", "client-secret")
    monkeypatch.setenv("TEST_BQ_REFRESH_TOKEN", "1//revoked-refresh-token")
    port = token_server.server_address[1]
    connection = _connection(
        tmp_path,
        _bigquery(
            {
                "auth": "oauth",
                "oauth_client_id": {"env": "TEST_BQ_CLIENT_ID"},
                "oauth_client_secret": {"env": "TEST_BQ_CLIENT_SECRET"},
                "oauth_refresh_token": {"env": "TEST_BQ_REFRESH_TOKEN"},
                "oauth_token_uri": f"http://127.0.0.1:{port}/token",
                # The refresh fails before any BigQuery request; keep even that one local.
                "endpoint": f"http://127.0.0.1:{port}",
            }
        ),
    )
    status = check_connection(connection, NOW)
    assert status.status == "failing"
    assert "invalid_grant" in (status.error or "")
    assert "Token has been expired or revoked" in (status.error or "")
    assert "re-authorise" in (status.fix or "") and "TEST_BQ_REFRESH_TOKEN" in (status.fix or "")
    assert status.checked_at == NOW
    # The real client really asked the local endpoint to refresh this token.
    assert any("grant_type=refresh_token" in r and "revoked-refresh-token" in r for r in token_server.requests)  # type: ignore[attr-defined]
    reason = skip_reason_if_unhealthy(connection, NOW)
    assert reason is not None and "'wh'" in reason and "invalid_grant" in reason and "re-authorise" in reason


def test_missing_service_account_key_file_is_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BQ_KEY", str(tmp_path / "gone" / "key.json"))
    connection = _connection(
        tmp_path, _bigquery({"auth": "service_account", "service_account_key": {"env": "TEST_BQ_KEY"}})
    )
    status = check_connection(connection, NOW)
    assert status.status == "failing"
    assert "key.json" in (status.error or "") and "does not exist" in (status.error or "")
    assert "TEST_BQ_KEY" in (status.fix or "")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"type": "service_account", "private_key": ', "is not JSON"),
        (
            '{"type": "service_account", "client_email": "x@p.iam.gserviceaccount.com"}',
            "not a usable service-account key",
        ),
    ],
    ids=["truncated_json", "missing_fields"],
)
def test_malformed_service_account_key_file_is_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, expected: str
) -> None:
    key = tmp_path / "key.json"
    key.write_text(content)
    monkeypatch.setenv("TEST_BQ_KEY", str(key))
    connection = _connection(
        tmp_path, _bigquery({"auth": "service_account", "service_account_key": {"env": "TEST_BQ_KEY"}})
    )
    status = check_connection(connection, NOW)
    assert status.status == "failing"
    assert expected in (status.error or "") and str(key) in (status.error or "")
    assert "rotate the key" in (status.fix or "")


# --- Snowflake key pair -------------------------------------------------------------------------------
def _encrypted_key(path: Path, passphrase: bytes) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
    )


def test_snowflake_missing_key_file_is_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SF_KEY_PATH", str(tmp_path / "rsa_key.p8"))
    status = check_connection(_connection(tmp_path, _snowflake({})), NOW)
    assert status.status == "failing"
    assert "rsa_key.p8" in (status.error or "") and "does not exist" in (status.error or "")
    assert "TEST_SF_KEY_PATH" in (status.fix or "")


def test_snowflake_unreadable_pem_is_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "rsa_key.p8"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot really a key\n-----END PRIVATE KEY-----\n")
    monkeypatch.setenv("TEST_SF_KEY_PATH", str(key))
    status = check_connection(_connection(tmp_path, _snowflake({})), NOW)
    assert status.status == "failing"
    assert "not a readable PEM private key" in (status.error or "")
    assert ".p8" in (status.fix or "")


def test_snowflake_wrong_passphrase_is_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "rsa_key.p8"
    _encrypted_key(key, b"the right one")
    monkeypatch.setenv("TEST_SF_KEY_PATH", str(key))
    monkeypatch.setenv("TEST_SF_PASSPHRASE", "a wrong one")
    connection = _connection(tmp_path, _snowflake({"private_key_passphrase": {"env": "TEST_SF_PASSPHRASE"}}))
    status = check_connection(connection, NOW)
    assert status.status == "failing"
    assert "cannot be decrypted with the passphrase" in (status.error or "")
    assert "TEST_SF_PASSPHRASE" in (status.fix or "")
    assert skip_reason_if_unhealthy(connection, NOW) is not None


# --- DuckDB and expiry ------------------------------------------------------------------------------------
def test_healthy_duckdb_is_ok(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    duckdb_harness.execute("CREATE TABLE t AS SELECT 1 AS x")
    connection = _connection(tmp_path, duckdb_harness.connection_config())
    status = check_connection(connection, NOW)
    assert (status.status, status.error, status.fix, status.expires_at) == ("ok", None, None, None)
    assert skip_reason_if_unhealthy(connection, NOW) is None


_HOLD_DUCKDB = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()"
_HOLD_SQLITE = (
    "import sqlite3, sys; con = sqlite3.connect(sys.argv[1], isolation_level=None); "
    "con.execute('BEGIN EXCLUSIVE'); print('ready', flush=True); sys.stdin.read()"
)


def _hold(path: Path | None, program: str = _HOLD_DUCKDB) -> subprocess.Popen[str]:
    """Another process holding a DuckDB file read-write (as a running sync does), or with ``_HOLD_SQLITE`` a
    SQLite catalog's write lock (as a writer mid-commit does), until its stdin closes."""
    assert path is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", program, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    return holder


def test_duckdb_warehouse_held_by_a_writing_run_is_ok(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    duckdb_harness.execute("CREATE TABLE t AS SELECT 1 AS x")
    connection = _connection(tmp_path, duckdb_harness.connection_config())
    holder = _hold(duckdb_harness.path)
    try:
        assert check_connection(connection, NOW).status == "ok"
        assert skip_reason_if_unhealthy(connection, NOW) is None
    finally:
        holder.communicate(input="", timeout=30)


def test_missing_duckdb_file_is_failing(tmp_path: Path) -> None:
    status = check_connection(_connection(tmp_path, duckdb_connection(tmp_path / "nope.duckdb")), NOW)
    assert status.status == "failing" and "does not exist" in (status.error or "")


def test_key_rotation_three_days_away_is_expiring(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    duckdb_harness.execute("CREATE TABLE t AS SELECT 1 AS x")
    rotation = (NOW + timedelta(days=3)).date()
    settings = {
        **duckdb_harness.connection_config(),
        "health": {"key_rotation_date": rotation.isoformat(), "warn_days": 14},
    }
    connection = _connection(tmp_path, settings)
    status = check_connection(connection, NOW)
    assert status.status == "expiring"
    assert status.expires_at == datetime(rotation.year, rotation.month, rotation.day, tzinfo=UTC)
    assert "in 2.5 days" in (status.error or "") and "rotate the key" in (status.fix or "")
    # Still working, so runs may start.
    assert skip_reason_if_unhealthy(connection, NOW) is None
    # Far enough away: ok.
    later = _connection(tmp_path, {**settings, "health": {"key_rotation_date": date(2027, 6, 1).isoformat()}})
    assert check_connection(later, NOW).status == "ok"


def test_record_health_appends_rows(tmp_path: Path) -> None:
    connection = _connection(tmp_path, duckdb_connection(tmp_path / "nope.duckdb"))
    with ModelStore(tmp_path / "store.sqlite") as store:
        record_health(store, check_connection(connection, NOW))
        record_health(store, check_connection(connection, NOW + timedelta(minutes=15)))
        rows = store.con.execute(
            "SELECT connection, checked_at, status, error IS NOT NULL, fix FROM connection_health ORDER BY checked_at"
        ).fetchall()
    assert [r[:4] for r in rows] == [
        ("wh", datetime(2026, 11, 23, 12, 0), "failing", True),
        ("wh", datetime(2026, 11, 23, 12, 15), "failing", True),
    ]
    assert "make demo" in rows[0][4]


# --- the credentials sensor ------------------------------------------------------------------------------
def _config(tmp_path: Path, connections: dict[str, Any]) -> Config:
    return parse(config_doc(tmp_path, connections=connections), tmp_path)


def _tick(config: Config, name: str, instance: dg.DagsterInstance) -> Any:
    defs = build_health_defs(config)
    sensor = defs.resolve_sensor_def(f"credentials_{name}_sensor")
    ctx = dg.build_sensor_context(instance=instance, definitions=defs, resources=build_resources(config))
    return sensor.evaluate_tick(ctx)


def test_credentials_sensor_reports_check_and_writes_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "rsa_key.p8"
    _encrypted_key(key, b"right")
    monkeypatch.setenv("TEST_SF_KEY_PATH", str(key))
    monkeypatch.setenv("TEST_SF_PASSPHRASE", "wrong")
    config = _config(tmp_path, {"sf": _snowflake({"private_key_passphrase": {"env": "TEST_SF_PASSPHRASE"}})})
    sensor = build_health_defs(config).resolve_sensor_def("credentials_sf_sensor")
    assert sensor.minimum_interval_seconds == 15 * 60
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        result = _tick(config, "sf", instance)
        assert not result.run_requests
        message = result.skip_message or ""
        assert "'sf' is failing" in message and "cannot be decrypted with the passphrase" in message
        assert "Fix: check the passphrase in TEST_SF_PASSPHRASE" in message
        assert "recorded in connection_health" in message
        events = list(result.asset_events)
        check = next(e for e in events if isinstance(e, dg.AssetCheckEvaluation))
        assert check.asset_key == health_asset_key("sf") and check.check_name == CHECK_NAME
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        assert "cannot be decrypted" in str(check.metadata["error"].value)
        assert "TEST_SF_PASSPHRASE" in str(check.metadata["fix"].value)
        assert any(isinstance(e, dg.AssetObservation) for e in events)
    with ModelStore(config.store) as store:
        rows = store.con.execute("SELECT connection, status, error, fix FROM connection_health").fetchall()
    assert len(rows) == 1 and rows[0][:2] == ("sf", "failing") and "passphrase" in rows[0][3]


def test_credentials_sensor_skips_the_row_when_another_process_holds_the_store(
    tmp_path: Path, duckdb_harness: DuckDBHarness
) -> None:
    duckdb_harness.execute("CREATE TABLE t AS SELECT 1 AS x")
    config = _config(tmp_path, {"wh": duckdb_harness.connection_config()})
    ModelStore(config.store).close()
    holder = _hold(config.store.catalog, _HOLD_SQLITE)
    try:
        with dg.instance_for_test() as instance:
            result = _tick(config, "wh", instance)
        message = result.skip_message or ""
        assert "'wh' is ok" in message and "connection_health row skipped: the store is busy" in message
        check = next(e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation))
        assert check.passed
    finally:
        holder.communicate(input="", timeout=30)
    with ModelStore(config.store) as store:
        assert store.con.execute("SELECT count(*) FROM connection_health").fetchall()[0][0] == 0


def test_a_dead_run_left_started_does_not_stop_the_health_row(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    """A run whose worker died stays STARTED until run monitoring fails it: the sensor does not wait on it."""
    duckdb_harness.execute("CREATE TABLE t AS SELECT 1 AS x")
    config = _config(tmp_path, {"wh": duckdb_harness.connection_config()})

    @dg.asset
    def anything() -> None:
        pass

    with dg.instance_for_test() as instance:
        run = dg.materialize([anything], instance=instance).dagster_run
        instance.add_run(run.with_status(dg.DagsterRunStatus.STARTED)._replace(run_id="dead-worker-run"))
        assert instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        result = _tick(config, "wh", instance)
    assert "recorded in connection_health" in (result.skip_message or "")
    with ModelStore(config.store) as store:
        assert store.con.execute("SELECT count(*) FROM connection_health").fetchall()[0][0] == 1


def test_credentials_sensor_events_show_on_the_health_asset(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    duckdb_harness.execute("CREATE TABLE t AS SELECT 1 AS x")
    rotation = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    settings = {**duckdb_harness.connection_config(), "health": {"key_rotation_date": rotation, "every_minutes": 5}}
    config = _config(tmp_path, {"wh": settings})
    with dg.instance_for_test() as instance:
        result = _tick(config, "wh", instance)
        assert "'wh' is expiring" in (result.skip_message or "")
        check = next(e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation))
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    # The check executed by hand (from the UI) probes the same way.
    check_def = build_health_check(config.connection("wh"))
    run = dg.materialize([check_def], selection=dg.AssetSelection.all_asset_checks())
    (evaluation,) = run.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "key_rotation_date" in str(evaluation.metadata["error"].value)


def test_a_bug_in_the_probe_is_raised_not_reported_as_a_failing_connection() -> None:
    """Settings no adapter knows are a programming error (TypeError), not bad credentials."""
    from planhat_pipelines.config import ConnectionConfig

    broken = ConnectionConfig("wh", "duckdb", object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown connection settings"):
        check_connection(broken, NOW)
