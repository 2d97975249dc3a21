"""Dry runs in Dagster: ``dry_run: true`` on a CRM asset or a usage range, and the ``sync_preview`` job, record
observations (never materializations), skip what comes after them, and leave the store as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from planhat_pipelines.config import Config
from planhat_pipelines.definitions import build_definitions
from planhat_pipelines.defs.crm import build_crm_asset
from planhat_pipelines.defs.preview import PREVIEW_JOB
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.defs.specs import usage_partitions
from planhat_pipelines.defs.usage import build_usage_asset
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.ranges import ranges_between
from planhat_pipelines_tests.builders import crm_section, usage_section, write_config
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness


def _setup(tmp_path: Path, harness: DuckDBHarness) -> tuple[Config, dict[str, Any]]:
    harness.create_table("crm_companies", pa.table({"id": ["c1", "c2"], "name": ["Acme", "Globex"]}))
    harness.create_table(
        "events",
        pa.table(
            {
                "event_id": pa.array(range(1, 13), pa.int64()),
                "user_email": [f"u{i % 2}@x.io" for i in range(12)],
                "action": ["login"] * 12,
                "occurred_at": pa.array([f"2026-01-01 00:00:{i:02d}" for i in range(12)]),
            }
        ),
    )
    config = write_config(
        tmp_path,
        connections={"wh": harness.connection_config()},
        crm=[crm_section()],
        usage=[usage_section(unknown_reference="keep", batch_size=5, partition_span=10)],
    )
    return config, build_resources(config)


def _store_rows(config: Config) -> tuple[int, ...]:
    with ModelStore(config.store, read_only=True) as store:
        counts = store.con.execute(
            "SELECT (SELECT count(*) FROM company), (SELECT count(*) FROM user_activities), "
            "(SELECT count(*) FROM sync_runs), (SELECT count(*) FROM change_log)"
        ).fetchall()[0]
    return tuple(int(c) for c in counts)


def test_a_dry_run_crm_asset_observes_and_writes_nothing(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    config, resources = _setup(tmp_path, duckdb_harness)
    asset = build_crm_asset(config.crm[0], config)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [asset],
            resources=resources,
            instance=instance,
            run_config={"ops": {"crm__companies": {"config": {"dry_run": True}}}},
        )
        assert result.success and not result.get_asset_materialization_events()
        (observed,) = result.get_asset_observation_events()
        meta: dict[str, Any] = {
            k: v.value for k, v in observed.asset_observation_data.asset_observation.metadata.items()
        }
        assert meta["dry_run"] is True and meta["would_insert"] == 2 and meta["would_update"] == 0
        assert {s["key"] for s in meta["sample_changes"]} == {"c1", "c2"}
        assert instance.get_latest_materialization_event(dg.AssetKey(["crm", "companies"])) is None
    assert _store_rows(config) == (0, 0, 0, 0)


def test_a_dry_run_usage_range_and_the_preview_job(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    config, resources = _setup(tmp_path, duckdb_harness)
    section = config.usage[0]
    keys = [s.partition_key for s in ranges_between(0, 12, 10)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(usage_partitions(section).name or "", keys)
        result = dg.materialize(
            [build_usage_asset(section, config)],
            partition_key=keys[1],
            resources=resources,
            instance=instance,
            run_config={"ops": {"usage__events": {"config": {"dry_run": True}}}},
        )
        assert result.success and not result.get_asset_materialization_events()
        (observed,) = result.get_asset_observation_events()
        meta = observed.asset_observation_data.asset_observation.metadata
        assert meta["would_insert"].value == 3 and meta["ranges"].value == keys[1]  # keys 10, 11, 12
        assert _store_rows(config) == (0, 0, 0, 0)

        job = build_definitions(config).resolve_job_def(PREVIEW_JOB)
        whole = job.execute_in_process(instance=instance)
        assert whole.success
        observed_keys = {
            str(e.asset_key.to_user_string()) if e.asset_key else "": e for e in whole.get_asset_observation_events()
        }
        assert set(observed_keys) == {"crm/companies", "usage/events"}
        events_meta = observed_keys["usage/events"].asset_observation_data.asset_observation.metadata
        assert events_meta["would_insert"].value == 12
    assert _store_rows(config) == (0, 0, 0, 0)
