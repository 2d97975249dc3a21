"""The sync log tells the truth about a worker that died: counts of what it committed, then closed as failed.

A real child process runs a usage sync and SIGKILLs itself after its second committed batch (the progress
callback runs right after each commit), so the kill lands at a known point without timing games.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa

from planhat_pipelines.config import load_config
from planhat_pipelines.defs.alerts import build_failure_alert_sensor
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.store import DEAD_WORKER_ERROR
from planhat_pipelines.sync.ranges import KeyRangeSpan
from planhat_pipelines.sync.usage import run_usage
from planhat_pipelines.warehouses.duckdb import DuckDBWarehouse
from planhat_pipelines_tests.builders import OMIT, duckdb_connection, usage_section, write_config_file
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness

_KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from planhat_pipelines.config import load_config
    from planhat_pipelines.store import ModelStore
    from planhat_pipelines.sync.ranges import KeyRangeSpan
    from planhat_pipelines.sync.usage import run_usage
    from planhat_pipelines.warehouses.duckdb import DuckDBWarehouse

    config = load_config(sys.argv[1])
    section = config.usage[0]
    batches = []

    def progress(p):
        batches.append(p)
        if len(batches) == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies right after its second commit

    store = ModelStore(config.store)
    run_usage(section, store, DuckDBWarehouse("wh", sys.argv[2]), [KeyRangeSpan(0, 99)],
              dagster_run_id=sys.argv[3], progress=progress)
    """
)


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    warehouse = tmp_path / "wh.duckdb"
    harness = DuckDBHarness(warehouse)
    n = 22
    harness.create_table(
        "events",
        pa.table(
            {
                "event_id": pa.array(range(1, n + 1), pa.int64()),
                "user_email": ["u@x.io"] * n,
                "action": ["login"] * n,
                "occurred_at": pa.array([datetime(2026, 1, 1)] * n, pa.timestamp("us")),
            }
        ),
    )
    harness.close()
    section = usage_section(record_match=OMIT, unknown_reference="keep", batch_size=5, partition_span=100)
    path = write_config_file(tmp_path, connections={"wh": duckdb_connection(warehouse)}, usage=[section])
    return path, warehouse


def _kill_a_run(config_path: Path, warehouse: Path, dagster_run_id: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, str(config_path), str(warehouse), dagster_run_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr[-2000:]


def test_a_killed_run_keeps_its_committed_counts_and_the_next_run_closes_it(tmp_path: Path) -> None:
    config_path, warehouse = _setup(tmp_path)
    _kill_a_run(config_path, warehouse, "dagster-run-1")
    config = load_config(config_path)
    with ModelStore(config.store) as store:
        (dead,) = store.runs(section="events")
        # Two batches of 5 committed, and the sync log says so (not 0) while the row is still "running".
        assert (dead.status, dead.rows_read, dead.inserted, dead.cursor_after) == ("running", 10, 10, "10")
        later = run_usage(config.usage[0], store, DuckDBWarehouse("wh", warehouse), [KeyRangeSpan(0, 99)])
        assert (later.rows_read, later.inserted) == (12, 12)
        runs = {r.run_id: r for r in store.runs(section="events")}
        closed = runs[dead.run_id]
        assert (closed.status, closed.rows_read, closed.inserted, closed.error) == ("failed", 10, 10, DEAD_WORKER_ERROR)
        assert closed.ended_at is not None
        keys = store.con.execute('SELECT count(*), count(DISTINCT "key") FROM user_activities').fetchall()
        assert keys == [(22, 22)]


def test_the_run_failure_sensor_closes_the_rows_of_the_failed_run(tmp_path: Path) -> None:
    config_path, warehouse = _setup(tmp_path)
    config = load_config(config_path)

    @dg.asset(key=["usage", "events"])
    def events() -> None:
        raise RuntimeError("the worker is gone")

    sensor = build_failure_alert_sensor(config)
    with dg.instance_for_test() as instance:
        result = dg.materialize([events], instance=instance, raise_on_error=False)
        _kill_a_run(config_path, warehouse, result.run_id)
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        sensor(context)
    with ModelStore(config.store) as store:
        (row,) = store.runs(section="events")
    assert (row.status, row.rows_read, row.error) == ("failed", 10, DEAD_WORKER_ERROR)
