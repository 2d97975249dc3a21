"""Start the Snowflake and BigQuery emulators for the benchmark and seed them with the usage rows.

The emulators run in their own processes (so a case's peak RSS is the engine's, not the emulator's),
started and stopped by the checkout's tools/emulators/, as the demo and the test fixtures start them.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from common import ROOT, USAGE_COLUMNS, WORK

# The launchers are checkout tooling (tools/, never installed); run.py runs as a script from benchmarks/,
# so the checkout is not on sys.path by itself. First, so that a `tools` module installed in the venv cannot
# stand in for it.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.emulators.bigquery_launcher import BigQueryServer, bigquery_emulator
from tools.emulators.processes import free_port
from tools.emulators.seeding import snowflake_type
from tools.emulators.snowflake_launcher import fakesnow_server

SEED_CHUNK = 20_000


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
    """A fakesnow server process on a free port; yields the connection config (YAML shape) for a fresh schema."""
    with fakesnow_server(host="127.0.0.1", port=free_port(), log=WORK / "logs" / "fakesnow.log") as server:
        yield {
            "type": "snowflake",
            "account": "fakesnow",
            "user": "fake",
            "password": {"env": "PLANHAT_BENCH_SNOWFLAKE_PASSWORD"},
            "database": "PLANHAT_BENCH",
            "schema": f"B_{uuid.uuid4().hex[:10].upper()}",
            "host": server.host,
            "port": server.port,
            "protocol": "http",
        }


SNOWFLAKE_ENV = {"PLANHAT_BENCH_SNOWFLAKE_PASSWORD": "snow"}


def seed_snowflake(connection: dict[str, Any], data: pa.Table) -> float:
    """Create usage_events in the emulator and insert ``data`` as JSON arrays unpacked in SQL; returns seconds."""
    import snowflake.connector

    from planhat_pipelines_tests.emulators.snowflake import EMULATOR_CONNECT_ARGS

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
def bigquery_server() -> Iterator[BigQueryServer]:
    """Start local-bigquery on free ports with a fresh data folder; yields the running server."""
    from planhat_pipelines_tests.emulators.bigquery import PROJECT

    workdir = WORK / "bigquery"
    with bigquery_emulator(
        data_dir=workdir / f"data-{uuid.uuid4().hex[:8]}",
        project=PROJECT,
        port=free_port(),
        grpc_port=free_port(),
        log=workdir / "server.log",
    ) as server:
        yield server


def seed_bigquery(emulator: BigQueryServer, data: pa.Table) -> tuple[dict[str, Any], float]:
    """Load ``data`` into usage_events of a fresh dataset (Parquet load, then JSON); returns (connection, seconds)."""
    from planhat_pipelines_tests.emulators.bigquery import BigQueryHarness

    started = time.perf_counter()
    harness = BigQueryHarness(emulator)
    harness.create_table("usage_events", data, json_columns=["info"])
    harness.client.close()
    return harness.connection_config(), time.perf_counter() - started
