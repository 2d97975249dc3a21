"""Usage sync through Dagster: partitions, the cadence sensor, single-run backfills, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from planhat_pipelines.config import Config, load_config
from planhat_pipelines.definitions import build_definitions
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.defs.usage import RANGE_END_TAG, RANGE_START_TAG, build_usage_asset, usage_partitions
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.ranges import ranges_between
from planhat_pipelines_tests.builders import usage_section, write_config_file
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness

SPAN = 10


def _write_config(tmp_path: Path, harness: DuckDBHarness) -> Path:
    section = usage_section(unknown_reference="keep", batch_size=5, partition_span=SPAN)
    return write_config_file(tmp_path, connections={"wh": harness.connection_config()}, usage=[section])


def _seed(harness: DuckDBHarness, n: int) -> None:
    harness.create_table(
        "events",
        pa.table(
            {
                "event_id": pa.array(range(1, n + 1), pa.int64()),
                "user_email": [f"u{i % 4}@x.io" for i in range(n)],
                "action": ["login"] * n,
                "occurred_at": pa.array([f"2026-01-01 00:00:{i % 60:02d}" for i in range(n)]),
            }
        ),
    )


@pytest.fixture
def setup(tmp_path: Path, duckdb_harness: DuckDBHarness) -> tuple[Config, DuckDBHarness]:
    _seed(duckdb_harness, 35)
    return load_config(_write_config(tmp_path, duckdb_harness)), duckdb_harness


def _stored_keys(config: Config) -> list[int]:
    with ModelStore(config.store) as store:
        return [int(r[0]) for r in store.con.execute('SELECT "key" FROM user_activities ORDER BY 1').fetchall()]


def test_sensor_adds_ranges_and_requests_one_run_then_skips(setup: tuple[Config, DuckDBHarness]) -> None:
    config, harness = setup
    section = config.usage[0]
    defs = build_definitions(config)
    sensor = defs.resolve_sensor_def(f"usage_{section.name}_sensor")
    with dg.instance_for_test() as instance:

        def tick(cursor: str | None) -> Any:
            ctx = dg.build_sensor_context(
                instance=instance, cursor=cursor, definitions=defs, resources=build_resources(config)
            )
            return sensor.evaluate_tick(ctx)

        first = tick(None)
        (request,) = first.dynamic_partitions_requests or []
        assert [k[-2:] for k in request.partition_keys] == ["09", "19", "29", "39"]  # ranges 0-9 ... 30-39
        (run,) = first.run_requests or []
        assert run.tags[RANGE_START_TAG].endswith("-00000000000000000000000000000009")
        assert run.tags[RANGE_END_TAG].endswith("-00000000000000000000000000000039")
        # The same tick again: not due.
        assert "not due" in (tick(first.cursor).skip_message or "")
        # Next tick with nothing new: skipped with a reason, nothing requested.
        state = json.loads(first.cursor or "{}")
        state["last_tick"] = "2000-01-01T00:00:00+00:00"
        idle = tick(json.dumps(state))
        assert not idle.run_requests and "nothing new" in (idle.skip_message or "")
        # New rows: the tail range (resumes after its cursor) and the new one, in one run.
        _seed(harness, 47)
        more = tick(json.dumps(state))
        (run,) = more.run_requests or []
        assert run.tags[RANGE_START_TAG].endswith("-00000000000000000000000000000039")
        assert run.tags[RANGE_END_TAG].endswith("-00000000000000000000000000000049")
        (request,) = more.dynamic_partitions_requests or []
        assert [k[-2:] for k in request.partition_keys] == ["39", "49"]


def test_single_run_backfill_of_many_ranges_is_one_run(setup: tuple[Config, DuckDBHarness]) -> None:
    config, _ = setup
    section = config.usage[0]
    keys = [s.partition_key for s in ranges_between(0, 35, SPAN)]
    defs = build_definitions(config)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(usage_partitions(section).name or "", keys)
        job = defs.resolve_job_def("usage_events_job")
        result = job.execute_in_process(instance=instance, tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]})
        assert result.success
        mats = {e.materialization.partition: e.materialization for e in result.get_asset_materialization_events()}
        # Each range carries its own counts (range 0-9 holds keys 1..9, 30-39 holds 30..35); the run's totals
        # and the connection are on every one.
        assert [mats[k].metadata["inserted"].value for k in keys] == [9, 10, 10, 6]
        assert [mats[k].metadata["rows_read"].value for k in keys] == [9, 10, 10, 6]
        assert all(
            m.metadata["run_inserted"].value == 35 and m.metadata["run_ranges"].value == 4 for m in mats.values()
        )
        assert {(m.metadata["connection"].value, m.metadata["warehouse"].value) for m in mats.values()} == {
            ("wh", "duckdb")
        }
        assert len(instance.get_runs()) == 1
        # Every range partition is marked materialized by that one run.
        materialized = instance.get_materialized_partitions(dg.AssetKey(["usage", "events"]))
        assert materialized == set(keys)
    assert _stored_keys(config) == list(range(1, 36))


def test_rerunning_one_range_through_dagster_changes_nothing(setup: tuple[Config, DuckDBHarness]) -> None:
    config, _ = setup
    section = config.usage[0]
    keys = [s.partition_key for s in ranges_between(0, 35, SPAN)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(usage_partitions(section).name or "", keys)
        asset = build_usage_asset(section, config)
        resources = build_resources(config)
        first = dg.materialize([asset], partition_key=keys[1], resources=resources, instance=instance)
        again = dg.materialize(
            [asset],
            partition_key=keys[1],
            resources=resources,
            instance=instance,
            run_config={"ops": {"usage__events": {"config": {"reread": True}}}},
        )
        meta = [r.get_asset_materialization_events()[0].materialization.metadata for r in (first, again)]
    assert (meta[0]["inserted"].value, meta[1]["inserted"].value, meta[1]["unchanged"].value) == (10, 0, 10)
    assert _stored_keys(config) == list(range(10, 20))


def test_cli_backfill_of_a_range(tmp_path: Path, setup: tuple[Config, DuckDBHarness]) -> None:
    """The README's command: `dagster asset materialize --partition-range` on registered ranges."""
    config, _ = setup
    section = config.usage[0]
    keys = [s.partition_key for s in ranges_between(0, 35, SPAN)]
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env: dict[str, Any] = {**os.environ, "DAGSTER_HOME": str(home), "PLANHAT_PIPELINES_CONFIG": str(config.path)}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(usage_partitions(section).name or "", keys)
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run(
        [
            str(dagster),
            "asset",
            "materialize",
            "-m",
            "planhat_pipelines.definitions",
            "--select",
            "usage/events",
            "--partition-range",
            f"{keys[1]}...{keys[2]}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert _stored_keys(config) == list(range(10, 30))
