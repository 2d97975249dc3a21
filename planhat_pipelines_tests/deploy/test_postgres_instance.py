"""Dagster on PostgreSQL with the production dagster.yaml, the store on the PostgreSQL catalog (issue 15, item 2).

No Kubernetes here, so this is the same instance on one machine: a real PostgreSQL 15 (the session's server
from emulators/postgres.py, on a free 127.0.0.1 port, stopped after the session) holds Dagster's storage in one
database and the store's DuckLake catalog in another; DAGSTER_HOME (a temp folder) holds deploy/dagster.yaml
unchanged, its connection settings coming from the environment as in production. `dagster-daemon run` drains
the queue: a CRM section's run submitted with `dagster job launch`, then a usage range requested by the
section's own sensor once an operator starts it (`dagster sensor start`). The test then reads PostgreSQL's
tables directly: the runs, their event logs, the sensor's ticks and the pools' slots are there, and nothing
of the instance went to a local SQLite file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import psycopg2
import pytest
import yaml

from planhat_pipelines.config import load_config
from planhat_pipelines.store.store import ModelStore
from planhat_pipelines_tests.emulators.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CRM_JOB = "crm_wh_sync"
SENSOR = "usage_metrics_sensor"
CRM_POOL = "planhat_crm_companies"
USAGE_POOL = "planhat_usage_metrics"
#: Bound against a run that never starts or never ends; each run takes a few seconds.
RUN_BOUND_SECONDS = 240.0
COMPANIES = [("c1", "Acme"), ("c2", "Beta"), ("c3", "Gamma")]
METRICS = [(i, f"c{1 + i % 3}", "seats", float(i), f"2026-11-{10 + i:02d} 08:00:00") for i in range(1, 8)]


def write_warehouse(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE crm_companies (id VARCHAR, name VARCHAR)")
        con.executemany("INSERT INTO crm_companies VALUES (?, ?)", COMPANIES)
        con.execute(
            "CREATE TABLE metrics (metric_id BIGINT, company_key VARCHAR, dimension VARCHAR, value DOUBLE, "
            "measured_at TIMESTAMP)"
        )
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", METRICS)


def write_project_config(tmp: Path, server: PostgresServer, store_db: str) -> Path:
    """A config as a deployment would have it: the store on the PostgreSQL catalog, its password from env."""
    write_warehouse(tmp / "wh.duckdb")
    config = {
        "store": {
            "postgres": {
                "host": server.host,
                "port": server.port,
                "database": store_db,
                "user": server.user,
                "password": {"env": "PLANHAT_STORE_PG_PASSWORD"},
            },
            "data_path": str(tmp / "store_files"),
        },
        "connections": {"wh": {"type": "duckdb", "path": str(tmp / "wh.duckdb")}},
        "crm": [
            {
                "name": "companies",
                "model": "company",
                "connection": "wh",
                "table": "crm_companies",
                "direction": "receive",
                "keys": {"planhat": "externalId", "warehouse": "id"},
                "fields": [{"planhat": "name", "warehouse": "name"}],
            }
        ],
        "usage": [
            {
                "name": "metrics",
                "kind": "metrics",
                "model": "company",
                "connection": "wh",
                "table": "metrics",
                "key": "metric_id",
                "record_match": "externalId",
                "fields": {"record": "company_key", "dimension": "dimension", "value": "value", "date": "measured_at"},
                "cadence": {"every_minutes": 5},
            }
        ],
    }
    path = tmp / "planhat_pipelines.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def process_group(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` in its own process group (the daemon, its code server, the run workers), ended at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def dagster_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "dagster"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"dagster {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def wait_for(what: str, probe: Callable[[], Any], log: Path) -> Any:
    deadline = time.monotonic() + RUN_BOUND_SECONDS
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-5000:]
    raise AssertionError(f"timed out after {RUN_BOUND_SECONDS:.0f} s waiting for {what}\n--- daemon log ---\n{tail}")


def query(server: PostgresServer, database: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    connection = psycopg2.connect(host=server.host, port=server.port, dbname=database, user=server.user)
    with closing(connection) as con, con.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


@pytest.fixture
def instance_env(tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """DAGSTER_HOME holding deploy/dagster.yaml as shipped, and the environment a deployment sets for it."""
    dagster_db, store_db = postgres_server.new_database(), postgres_server.new_database()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    settings = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": postgres_server.host,
        "DAGSTER_PG_PORT": str(postgres_server.port),
        "DAGSTER_PG_DB": dagster_db,
        "DAGSTER_PG_USER": postgres_server.user,
        # The test server trusts 127.0.0.1, so any password is accepted: what matters is that both are read
        # from the environment (a missing variable fails the instance and the store, naming it).
        "DAGSTER_PG_PASSWORD": "from-a-kubernetes-secret",
        "PLANHAT_STORE_PG_PASSWORD": "from-another-secret",
        "PLANHAT_PIPELINES_CONFIG": str(write_project_config(tmp_path, postgres_server, store_db)),
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **settings, "STORE_DB": store_db}


def test_production_instance_keeps_runs_event_logs_ticks_and_pools_in_postgres(
    instance_env: dict[str, str], postgres_server: PostgresServer, tmp_path: Path
) -> None:
    env = instance_env
    dagster_db, store_db = env["DAGSTER_PG_DB"], env["STORE_DB"]
    home = Path(env["DAGSTER_HOME"])

    info = dagster_cli(env, "instance", "info")
    for storage in ("PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"):
        assert f": {storage}" in info.stdout, info.stdout
    assert not info.stderr.strip(), f"dagster instance info is not clean:\n{info.stderr}"

    # The operator holds the usage sensor (default RUNNING) until the companies are in: stored in PostgreSQL.
    dagster_cli(env, "sensor", "stop", SENSOR, "-w", "workspace.yaml")
    crm_run = str(uuid.uuid4())
    dagster_cli(env, "job", "launch", "-w", "workspace.yaml", "-j", CRM_JOB, "--run-id", crm_run)
    log = tmp_path / "daemon.log"
    with (
        process_group([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, log),
        dg.DagsterInstance.get() as instance,
    ):

        def finished(run_id: str) -> dg.DagsterRun | None:
            run = instance.get_run_by_id(run_id)
            return run if run and run.is_finished else None

        crm = wait_for("the CRM run to finish", lambda: finished(crm_run), log)
        assert crm.status == dg.DagsterRunStatus.SUCCESS, log.read_text(errors="replace")[-5000:]

        dagster_cli(env, "sensor", "start", SENSOR, "-w", "workspace.yaml")

        def usage_run() -> dg.DagsterRun | None:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": SENSOR}), limit=1)
            return runs[0] if runs and runs[0].is_finished else None

        usage = wait_for("the sensor's usage range run to finish", usage_run, log)
        assert usage.status == dg.DagsterRunStatus.SUCCESS, log.read_text(errors="replace")[-5000:]

    # Runs and their event logs are rows of Dagster's PostgreSQL database.
    statuses = dict(query(postgres_server, dagster_db, "SELECT run_id, status FROM runs"))
    assert statuses == {crm_run: "SUCCESS", usage.run_id: "SUCCESS"}
    materialized = dict(
        query(
            postgres_server,
            dagster_db,
            "SELECT run_id, count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
            "GROUP BY run_id",
        )
    )
    assert materialized == {crm_run: 1, usage.run_id: 1}
    # The sensor's state (stopped, then started) and its ticks, with the run it requested.
    named = f'%"{SENSOR}"%'  # the instigator's serialized body names it
    states = query(
        postgres_server, dagster_db, "SELECT status FROM instigators WHERE instigator_body LIKE %s", (named,)
    )
    assert states == [("RUNNING",)], states
    ticks = query(
        postgres_server,
        dagster_db,
        "SELECT t.status FROM job_ticks t JOIN instigators i ON i.selector_id = t.selector_id "
        "WHERE i.instigator_body LIKE %s",
        (named,),
    )
    assert ("SUCCESS",) in ticks, ticks
    # Each section's pool: one slot (default_limit: 1), claimed by its run's step and freed at its end.
    pools = dict(query(postgres_server, dagster_db, 'SELECT concurrency_key, "limit" FROM concurrency_limits'))
    assert pools.get(CRM_POOL) == 1 and pools.get(USAGE_POOL) == 1, pools
    held = query(postgres_server, dagster_db, "SELECT concurrency_key FROM concurrency_slots WHERE run_id IS NOT NULL")
    assert held == [], f"slots still held after both runs ended: {held}"
    # Nothing of the instance went to SQLite under DAGSTER_HOME (the default storage when none is configured).
    assert not list(home.rglob("*.db")), sorted(str(p) for p in home.rglob("*.db"))

    # The store: its catalog is in the other PostgreSQL database, and it holds what both runs synced.
    assert query(postgres_server, store_db, "SELECT count(*) FROM ducklake_snapshot")[0][0] > 1
    with ModelStore(load_config().store, read_only=True) as store:
        assert store.count("company") == len(COMPANIES)
        assert store.usage_rows("metrics", "custom_metrics") == len(METRICS)
