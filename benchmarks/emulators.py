"""Start the Snowflake and BigQuery emulators for the benchmark and seed them with the usage rows.

The emulators run in their own processes (so a case's peak RSS is the engine's, not the emulator's),
started the way the test fixtures in planhat_pipelines_tests/emulators/ start them, reusing their helpers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from common import USAGE_COLUMNS, WORK

SEED_CHUNK = 20_000


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def usage_rows(warehouse: Path) -> pa.Table:
    """The usage rows of a DuckDB warehouse file, JSON as text (what the emulators are seeded with)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cols = ", ".join("CAST(info AS VARCHAR) AS info" if c == "info" else c for c in USAGE_COLUMNS)
        return con.sql(f"SELECT {cols} FROM usage_events ORDER BY event_id").to_arrow_table()
    finally:
        con.close()


# --- Snowflake: a fakesnow server process -----------------------------------------------------------------
@contextmanager
def snowflake_server() -> Iterator[dict[str, Any]]:
    """``python -m fakesnow -s`` on a free port; yields the connection config (YAML shape) for a fresh schema."""
    port = _free_port()
    log = (WORK / "logs" / "fakesnow.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakesnow", "-s", "-p", str(port), "--host", "127.0.0.1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"fakesnow exited with {proc.returncode}; see {log.name}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield {
            "type": "snowflake",
            "account": "fakesnow",
            "user": "fake",
            "password": {"env": "PLANHAT_BENCH_SNOWFLAKE_PASSWORD"},
            "database": "PLANHAT_BENCH",
            "schema": f"B_{uuid.uuid4().hex[:10].upper()}",
            "host": "127.0.0.1",
            "port": port,
            "protocol": "http",
        }
    finally:
        _stop_group(proc, signal.SIGINT)
        log.close()


SNOWFLAKE_ENV = {"PLANHAT_BENCH_SNOWFLAKE_PASSWORD": "snow"}


def seed_snowflake(connection: dict[str, Any], data: pa.Table) -> float:
    """Create usage_events in the emulator and insert ``data`` as JSON arrays unpacked in SQL; returns seconds."""
    import snowflake.connector

    from planhat_pipelines_tests.emulators.snowflake import EMULATOR_CONNECT_ARGS, snowflake_type

    started = time.perf_counter()
    con = snowflake.connector.connect(
        account=connection["account"],
        user=connection["user"],
        password=SNOWFLAKE_ENV["PLANHAT_BENCH_SNOWFLAKE_PASSWORD"],
        host=connection["host"],
        port=connection["port"],
        protocol=connection["protocol"],
        paramstyle="qmark",
        **EMULATOR_CONNECT_ARGS,
    )
    try:
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {connection['database']}")
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {connection['database']}.{connection['schema']}")
            cur.execute(f"USE SCHEMA {connection['database']}.{connection['schema']}")
            fields = list(zip(data.column_names, data.schema, strict=True))
            cols = ", ".join(f"{n} {'VARIANT' if n == 'info' else snowflake_type(f.type)}" for n, f in fields)
            cur.execute(f"CREATE OR REPLACE TABLE usage_events ({cols})")
            exprs = ", ".join(
                f"PARSE_JSON(f.value[{i}]::VARCHAR)" if n == "info" else f"f.value[{i}]::{snowflake_type(f.type)}"
                for i, (n, f) in enumerate(fields)
            )
            for start in range(0, data.num_rows, SEED_CHUNK):
                chunk = data.slice(start, SEED_CHUNK)
                rows = json.dumps([list(r.values()) for r in chunk.to_pylist()], default=str)
                cur.execute(
                    f"INSERT INTO usage_events SELECT {exprs} FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?))) f", [rows]
                )
    finally:
        con.close()
    return time.perf_counter() - started


# --- BigQuery: local-bigquery from .emulators/bigquery (make emulators) ----------------------------------
@contextmanager
def bigquery_server() -> Iterator[Any]:
    """Start local-bigquery like the test fixture does; yields a BigQueryEmulator."""
    from planhat_pipelines_tests.emulators import bigquery as bq

    if not bq.EMULATOR_BIN.exists() or not (bq.EMULATOR_VENV / ".setup-done").exists():
        raise RuntimeError(f"the BigQuery emulator is not installed ({bq.EMULATOR_BIN}); run `make emulators`")
    workdir = WORK / "bigquery"
    workdir.mkdir(parents=True, exist_ok=True)
    port, grpc_port = _free_port(), _free_port()
    log = workdir / "server.log"
    env = {**os.environ, "HOME": str(bq.EMULATOR_HOME)}
    env.pop("BIGQUERY_EMULATOR_HOST", None)
    started = time.monotonic()
    data_dir = workdir / f"data-{uuid.uuid4().hex[:8]}"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                str(bq.EMULATOR_BIN),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--grpc-port",
                str(grpc_port),
                "--project",
                bq.PROJECT,
                "--data-dir",
                str(data_dir),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        bq._wait_until_ready(f"{endpoint}/bigquery/v2/projects/{bq.PROJECT}/datasets", proc, log)
        yield bq.BigQueryEmulator(bq.PROJECT, endpoint, f"127.0.0.1:{grpc_port}", time.monotonic() - started)
    finally:
        bq._stop(proc)


def seed_bigquery(emulator: Any, data: pa.Table) -> tuple[dict[str, Any], float]:
    """Load ``data`` into usage_events of a fresh dataset (Parquet load, then JSON); returns (connection, seconds)."""
    from planhat_pipelines_tests.emulators.bigquery import BigQueryHarness

    started = time.perf_counter()
    harness = BigQueryHarness(emulator)
    harness.create_table("usage_events", data, json_columns=["info"])
    harness.client.close()
    return harness.connection_config(), time.perf_counter() - started
