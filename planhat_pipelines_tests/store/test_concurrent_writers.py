"""Two sections writing the DuckLake store at once, a reader querying throughout, and a writer SIGKILLed
mid-run: every section ends with exactly its source rows, and the reader never sees a duplicate or a row
count going down. On each catalog: the embedded SQLite file, and PostgreSQL (a real server, the files in one
shared folder: the scale-out setup, where the writers could be on other machines).

Real processes: each writer is a child loading the config file and running the usage engine on its own
section (as two Dagster runs in two section pools do), the reader a child attached read-only, querying
every 100 ms.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from planhat_pipelines.config import load_config
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.builders import OMIT, config_doc, duckdb_connection, usage_section
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness
from planhat_pipelines_tests.emulators.postgres import PostgresServer

ROWS = 20_000
BATCH = 1_000
#: Bound against a reader that hangs behind a writer (the reader's figures are in benchmarks/, not here).
READER_WAIT_BOUND_S = 10.0

_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from planhat_pipelines.config import load_config
    from planhat_pipelines.store import ModelStore
    from planhat_pipelines.sync.ranges import KeyRangeSpan
    from planhat_pipelines.sync.usage import run_usage
    from planhat_pipelines.warehouses.duckdb import DuckDBWarehouse

    config_path, index, warehouse, kill_after = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    config = load_config(config_path)
    section = config.usage[index]
    commits = []

    def progress(p):
        commits.append(p)
        if kill_after and len(commits) == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # dies right after a commit, mid-range

    with ModelStore(config.store) as store:
        run_usage(section, store, DuckDBWarehouse(section.connection, warehouse), [KeyRangeSpan(0, 99_999)],
                  dagster_run_id=f"run-{index}", progress=progress)
    print("done", flush=True)
    """
)

_READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from planhat_pipelines.config import load_config
    from planhat_pipelines.store import ModelStore

    location = load_config(sys.argv[1]).store
    stop = Path(sys.argv[2])
    waits, seen, problems = [], {}, []
    with ModelStore(location, read_only=True) as store:
        while not stop.exists():
            started = time.perf_counter()
            rows = store.con.execute(
                'SELECT section, count(*), count(DISTINCT "key") FROM user_activities GROUP BY 1'
            ).fetchall()
            waits.append(time.perf_counter() - started)
            for section, n, distinct in rows:
                if n != distinct:
                    problems.append(f"{section}: {n} rows but {distinct} keys")
                if n < seen.get(section, 0):
                    problems.append(f"{section}: count went down from {seen[section]} to {n}")
                seen[section] = n
            time.sleep(0.1)
    print(json.dumps({"queries": len(waits), "max_wait": max(waits), "problems": problems, "seen": seen}))
    """
)


def _warehouse(path: Path) -> Path:
    harness = DuckDBHarness(path)
    harness.create_table(
        "events",
        pa.table(
            {
                "event_id": pa.array(range(1, ROWS + 1), pa.int64()),
                "user_email": ["u@x.io"] * ROWS,
                "action": ["login"] * ROWS,
                "occurred_at": pa.array([datetime(2026, 1, 1)] * ROWS, pa.timestamp("us")),
            }
        ),
    )
    harness.close()
    return path


def _writer(config: Path, index: int, warehouse: Path, kill_after: int = 0) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", _WRITER, str(config), str(index), str(warehouse), str(kill_after)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _catalog_value(server: PostgresServer, database: str, sql: str) -> str:
    """One value from the catalog's own PostgreSQL database, through psql (not through DuckLake)."""
    done = server.run("psql", "-h", server.host, "-p", str(server.port), "-U", server.user, "-d", database, "-Atc", sql)
    return done.stdout.strip()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_two_sections_write_at_once_a_reader_never_waits_and_a_killed_writer_resumes_exactly(
    tmp_path: Path, catalog: str, request: pytest.FixtureRequest
) -> None:
    warehouses = {name: _warehouse(tmp_path / f"{name}.duckdb") for name in ("wa", "wb")}
    sections = [
        usage_section(
            name=name,
            connection=conn,
            record_match=OMIT,
            unknown_reference="keep",
            batch_size=BATCH,
            partition_span=100_000,
        )
        for name, conn in (("events_a", "wa"), ("events_b", "wb"))
    ]
    doc = config_doc(tmp_path, connections={n: duckdb_connection(p) for n, p in warehouses.items()}, usage=sections)
    if catalog == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        database = server.new_database()
        # Trust authentication on 127.0.0.1: no password (a real deployment gives ``password: {env: NAME}``).
        pg = {"host": server.host, "port": server.port, "database": database, "user": server.user}
        doc["store"] = {"postgres": pg, "data_path": str(tmp_path / "files")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    location = load_config(path).store
    assert location.kind == catalog
    ModelStore(location).close()  # created before the reader attaches
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(path), str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        killed = _writer(path, 0, warehouses["wa"], kill_after=5)
        other = _writer(path, 1, warehouses["wb"])
        _, err = killed.communicate(timeout=300)
        assert killed.returncode == -signal.SIGKILL, err
        with ModelStore(location, read_only=True) as store:
            partial = store.usage_rows("events_a", "user_activities")
        assert 5 * BATCH <= partial < ROWS  # it died mid-range, after committing its first batches
        resumed = _writer(path, 0, warehouses["wa"])  # the retry: resumes after the committed cursor
        for proc in (other, resumed):
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0 and "done" in out, err
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    report = json.loads(out)
    print("reader:", report)  # shown with -s; the latency figures are measured in benchmarks/
    assert report["problems"] == [], report
    assert report["queries"] > 5 and report["max_wait"] < READER_WAIT_BOUND_S, report
    with ModelStore(location, read_only=True) as store:
        counts = store.con.execute(
            'SELECT section, count(*), count(DISTINCT "key"), min("key"), max("key") FROM user_activities '
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert counts == [("events_a", ROWS, ROWS, 1, ROWS), ("events_b", ROWS, ROWS, 1, ROWS)]
        assert store.loaded_through("events_a") == store.loaded_through("events_b") == ROWS
    if catalog == "postgres":
        # The catalog really is in PostgreSQL (every commit a snapshot there), the rows in the shared folder.
        snapshots = int(_catalog_value(server, database, "SELECT count(*) FROM ducklake_snapshot"))
        assert snapshots > 2 * ROWS // BATCH
        assert list((tmp_path / "files").rglob("*.parquet"))
        assert not list(tmp_path.glob("*.sqlite"))
