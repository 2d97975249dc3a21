"""The usage cadence sensor under hostile sources: outlier keys, sparse keys, text keys, late rows, stray partitions.

The sensor items run the real sensor function under ``dg.build_sensor_context`` against a real DuckDB
warehouse; the runs it requests run through the real job.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from planhat_pipelines.config import Config
from planhat_pipelines.definitions import build_definitions
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.defs.usage import RANGE_END_TAG, RANGE_START_TAG, contiguous_segments, usage_partitions
from planhat_pipelines.errors import KeyValidationError
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.builders import usage_section, write_config
from planhat_pipelines_tests.defs.test_usage_defs import SPAN
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness


def _events(keys_sql: str, key_type: str = "BIGINT") -> str:
    """SQL creating the events table from a VALUES list of keys (SQL literals)."""
    return (
        f"CREATE OR REPLACE TABLE events AS SELECT CAST(k AS {key_type}) AS event_id, 'u0@x.io' AS user_email, "
        f"'login' AS action, TIMESTAMP '2026-01-01' AS occurred_at FROM (VALUES {keys_sql}) t(k)"
    )


def _tick(config: Config, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    defs = build_definitions(config)
    sensor = defs.resolve_sensor_def(f"usage_{config.usage[0].name}_sensor")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=build_resources(config))
    return sensor.evaluate_tick(ctx)


def _due_again(cursor: str | None) -> str:
    state = json.loads(cursor or "{}")
    state["last_tick"] = "2000-01-01T00:00:00+00:00"
    return json.dumps(state)


def _run(config: Config, instance: dg.DagsterInstance, result: Any) -> None:
    """Register what the tick asked for and run its requests through the real job."""
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    job = build_definitions(config).resolve_job_def(f"usage_{config.usage[0].name}_job")
    for run in result.run_requests or []:
        assert job.execute_in_process(instance=instance, tags=dict(run.tags)).success


def _stored(config: Config) -> list[int]:
    with ModelStore(config.store) as store:
        return [int(r[0]) for r in store.con.execute('SELECT "key" FROM user_activities ORDER BY 1').fetchall()]


def _config(tmp_path: Path, harness: DuckDBHarness, **section: Any) -> Config:
    """test_usage_defs' config (batches of 5, ranges of ``SPAN`` keys), ``section`` added to its usage section."""
    usage = usage_section(unknown_reference="keep", batch_size=5, partition_span=SPAN, **section)
    return write_config(tmp_path, connections={"wh": harness.connection_config()}, usage=[usage])


_BOUNDED_TICK = textwrap.dedent(
    """
    import json, os, sys, threading, time
    limit_mb, limit_s = 500, 20
    def watchdog():
        start = time.monotonic()
        while True:
            rss_mb = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
            if rss_mb > base_mb + limit_mb or time.monotonic() - start > limit_s:
                print(f"RUNAWAY rss {rss_mb:.0f} MB (base {base_mb:.0f}) after {time.monotonic() - start:.1f} s")
                sys.stdout.flush()
                os._exit(3)
            time.sleep(0.05)
    import dagster as dg
    from planhat_pipelines.config import load_config
    from planhat_pipelines.definitions import build_definitions
    from planhat_pipelines.defs.resources import build_resources
    config = load_config(sys.argv[1])
    defs = build_definitions(config)
    sensor = defs.resolve_sensor_def("usage_events_sensor")
    base_mb = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    threading.Thread(target=watchdog, daemon=True).start()
    started = time.monotonic()
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, definitions=defs, resources=build_resources(config))
        result = sensor.evaluate_tick(ctx)
    keys = [k for r in result.dynamic_partitions_requests or [] for k in r.partition_keys]
    print(json.dumps({"seconds": time.monotonic() - started, "keys": keys}))
    """
)


@pytest.mark.parametrize(
    ("outlier", "key_type"),
    [
        ("CAST('1' || repeat('0', 32) AS DECIMAL(38,0))", "DECIMAL(38,0)"),  # 33 digits
        ("1e40", "DOUBLE"),
        ("CAST('nan' AS DOUBLE)", "DOUBLE"),
    ],
)
def test_an_outlier_key_neither_hangs_nor_grows_the_sensor(
    tmp_path: Path, duckdb_harness: DuckDBHarness, outlier: str, key_type: str
) -> None:
    """Planning costs the ranges that hold rows: a 33-digit key or 1e40 is no range (bounded: 20 s, 500 MB)."""
    duckdb_harness.execute(_events(f"(1), (2), (25), ({outlier})", key_type))
    duckdb_harness.close()
    config = _config(tmp_path, duckdb_harness)
    done = subprocess.run(
        [sys.executable, "-c", _BOUNDED_TICK, str(config.path)], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert [k[-2:] for k in out["keys"]] == ["09", "29"]  # ranges 0-9 and 20-29; nothing for the outlier


def test_negative_and_sparse_keys_make_no_bad_partitions_and_valid_rows_load(
    tmp_path: Path, duckdb_harness: DuckDBHarness
) -> None:
    duckdb_harness.execute(_events("(-5), (3), (7), (5000000003), (NULL)"))
    duckdb_harness.close()
    config = _config(tmp_path, duckdb_harness)
    with dg.instance_for_test() as instance:
        first = _tick(config, instance, None)
        (request,) = first.dynamic_partitions_requests
        # Sparse: 2 ranges, not the 500 million between them; no range for -5.
        assert list(request.partition_keys) == [f"{0:032d}-{9:032d}", f"{5000000000:032d}-{5000000009:032d}"]
        _run(config, instance, first)
    assert _stored(config) == [3, 7, 5000000003]
    with ModelStore(config.store) as store:
        reasons = sorted((k, r) for _, k, r, _ in store.open_rejects("events"))
    assert reasons == [("(null)", "null key"), ("-5", "key -5 is negative")]


def test_a_text_key_column_of_digits_is_planned_and_loaded(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    duckdb_harness.execute(_events("('0001'), ('12'), ('abc'), (' 13 ')", "VARCHAR"))
    duckdb_harness.close()
    config = _config(tmp_path, duckdb_harness)
    with dg.instance_for_test() as instance:
        first = _tick(config, instance, None)
        _run(config, instance, first)
    assert _stored(config) == [1, 12, 13]
    with ModelStore(config.store) as store:
        assert [(k, r) for _, k, r, _ in store.open_rejects("events")] == [
            ("abc", "key 'abc' is not a whole number of 1 to 32 digits")
        ]


def test_an_unusable_key_column_fails_the_tick_with_the_runs_error(
    tmp_path: Path, duckdb_harness: DuckDBHarness
) -> None:
    duckdb_harness.execute(_events("(DATE '2026-01-01')", "DATE"))
    duckdb_harness.close()
    config = _config(tmp_path, duckdb_harness)
    with dg.instance_for_test() as instance, pytest.raises(Exception) as caught:
        _tick(config, instance, None)
    error: BaseException | None = caught.value
    while error is not None and not isinstance(error, KeyValidationError):
        error = error.__cause__ or getattr(error, "user_exception", None)
    assert isinstance(error, KeyValidationError), caught.value
    assert "key column 'event_id' of events is DATE, not numeric" in str(error)


def test_lookback_catches_a_late_row_below_a_range_boundary_on_an_idle_tick(
    tmp_path: Path, duckdb_harness: DuckDBHarness
) -> None:
    """Key 9 commits after 10..14 were loaded: no new key arrives, the next tick still loads it."""
    duckdb_harness.execute(_events(", ".join(f"({k})" for k in [*range(1, 9), *range(10, 15)])))
    duckdb_harness.close()
    config = _config(tmp_path, duckdb_harness, lookback=6)
    with dg.instance_for_test() as instance:
        first = _tick(config, instance, None)
        _run(config, instance, first)
        assert 9 not in _stored(config)
        wh = DuckDBHarness(duckdb_harness.path)
        wh.execute("INSERT INTO events SELECT 9, 'u0@x.io', 'login', TIMESTAMP '2026-01-01'")
        wh.close()
        idle = _tick(config, instance, _due_again(first.cursor))
        assert idle.run_requests, idle.skip_message  # nothing new above the cursor, but the window is re-read
        _run(config, instance, idle)
    assert _stored(config) == list(range(1, 15))


def test_runs_never_receive_a_partition_that_is_not_a_range(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    duckdb_harness.execute(_events("(1), (15)"))
    duckdb_harness.close()
    config = _config(tmp_path, duckdb_harness)
    section = config.usage[0]
    name = usage_partitions(section).name or ""
    with dg.instance_for_test() as instance:
        first = _tick(config, instance, None)
        _run(config, instance, first)
        instance.add_dynamic_partitions(name, ["typed-in-the-ui"])
        wh = DuckDBHarness(duckdb_harness.path)
        wh.execute(
            "INSERT INTO events SELECT k, 'u0@x.io', 'login', TIMESTAMP '2026-01-01' FROM (VALUES (17), (25)) t(k)"
        )
        wh.close()
        more = _tick(config, instance, _due_again(first.cursor))
        requests = more.run_requests or []
        # Range 10-19 (resumed) and the new 20-29 sit on both sides of the stray key: two runs, neither has it.
        assert [(r.tags[RANGE_START_TAG][-2:], r.tags[RANGE_END_TAG][-2:]) for r in requests] == [
            ("19", "19"),
            ("29", "29"),
        ]
        _run(config, instance, more)
    assert _stored(config) == [1, 15, 17, 25]
    assert contiguous_segments(["a", "x", "b", "c"], {"a", "b", "c"}) == [["a"], ["b", "c"]]


def test_a_run_over_a_stray_partition_loads_the_ranges_and_warns(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    duckdb_harness.execute(_events("(1), (15)"))
    duckdb_harness.close()
    config = _config(tmp_path, duckdb_harness)
    section = config.usage[0]
    keys = ["00000000000000000000000000000000-00000000000000000000000000000009", "oops", f"{10:032d}-{19:032d}"]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(usage_partitions(section).name or "", keys)
        job = build_definitions(config).resolve_job_def("usage_events_job")
        result = job.execute_in_process(instance=instance, tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]})
        assert result.success
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("partition 'oops' is not a usage range" in m for m in messages), messages
    assert _stored(config) == [1, 15]
    assert SPAN == 10
