"""The OKR assets through dg.materialize with real resources, the job and the hourly schedule."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from planhat_pipelines.config import Config
from planhat_pipelines.definitions import build_definitions
from planhat_pipelines.defs.naming import OKR_POOL
from planhat_pipelines.defs.okrs import OKR_CRON, build_okr_defs, okr_asset_key
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.okrs.current import history
from planhat_pipelines.okrs.refresh import check_in, set_mode
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness
from planhat_pipelines_tests.harness import WarehouseHarness
from planhat_pipelines_tests.okrs.conftest import MakeConfig, key_result_data


@pytest.fixture
def config(make_config: MakeConfig, duckdb_harness: DuckDBHarness) -> Config:
    duckdb_harness.create_table("leads", pa.table({"n": pa.array(range(1, 1001), pa.int64())}))
    return make_config(
        duckdb_harness.connection_config(),
        [
            {
                "name": "grow",
                "title": "Grow the pipeline",
                "key_results": [
                    key_result_data("leads", title="Converted leads", query="SELECT count(*) FROM leads", target=2000),
                    key_result_data("broken", query="SELECT n FROM leads"),
                    key_result_data("nps", query="SELECT 42", target=None, direction="kpi"),
                ],
            }
        ],
    )


def assets_by_name(config: Config) -> dict[str, dg.AssetsDefinition]:
    defs = build_okr_defs(config)
    return {a.key.path[-1]: a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)}


def test_one_asset_per_key_result_with_key_group_kinds_pool_and_description(config: Config) -> None:
    assets = assets_by_name(config)
    assert set(assets) == {"leads", "broken", "nps"}
    leads = assets["leads"]
    assert leads.key == dg.AssetKey(["okrs", "leads"]) == okr_asset_key("leads")
    spec = next(iter(leads.specs))
    assert spec.group_name == "okrs"
    assert spec.kinds == {"duckdb"}
    assert leads.op.pool == OKR_POOL
    assert {"store", "warehouses"} <= set(leads.required_resource_keys)
    description = spec.description or ""
    assert "objective `grow` (Grow the pipeline)" in description
    assert "SELECT count(*) FROM leads" in description
    assert "from 100 to 2000 (increase) between 2026-01-01 and 2026-12-31" in description
    assert "A KPI" in (next(iter(assets["nps"].specs)).description or "")
    assert spec.metadata["target"] == dg.MetadataValue.float(2000.0)


def test_materialize_records_value_and_reports_numeric_metadata(config: Config) -> None:
    assets = assets_by_name(config)
    result = dg.materialize([assets["leads"], assets["nps"]], resources=build_resources(config), raise_on_error=True)
    assert result.success
    leads = result.asset_materializations_for_node("okrs__leads")[0].metadata
    assert leads["value"] == dg.MetadataValue.float(1000.0)
    progress = leads["progress"]
    expected = leads["expected"]
    assert isinstance(progress, dg.FloatMetadataValue) and progress.value == pytest.approx(900 / 1900)
    assert isinstance(expected, dg.FloatMetadataValue) and expected.value is not None
    assert 0.0 <= expected.value <= 1.0
    assert isinstance(leads["status"], dg.TextMetadataValue)
    assert leads["status"].value in {"On track", "Behind", "At risk"}
    nps = result.asset_materializations_for_node("okrs__nps")[0].metadata
    assert nps["value"] == dg.MetadataValue.float(42.0)
    assert "progress" not in nps and nps["status"] == dg.MetadataValue.text("KPI")
    with ModelStore(config.store) as store:
        assert [r.value for r in history(store, "leads")] == [1000.0]


def test_a_failing_query_fails_only_its_own_asset(config: Config) -> None:
    job = with_resources(config).resolve_job_def("okrs_refresh")
    result = job.execute_in_process(raise_on_error=False)
    assert not result.success
    failed = {e.step_key for e in result.all_events if e.is_step_failure}
    succeeded = {e.step_key for e in result.all_events if e.is_step_success}
    assert failed == {"okrs__broken"}
    assert succeeded == {"okrs__leads", "okrs__nps"}
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "returned 1000 rows instead of one" in step_error(failure)
    assert "key result 'broken'" in step_error(failure)
    with ModelStore(config.store) as store:
        broken = history(store, "broken")
    assert [(r.status, r.value) for r in broken] == [("error", None)]
    assert "returned 1000 rows instead of one" in (broken[0].error or "")


def with_resources(config: Config) -> dg.Definitions:
    return dg.Definitions.merge(build_okr_defs(config), dg.Definitions(resources=build_resources(config)))


def step_error(event: dg.DagsterEvent) -> str:
    """The failure's own message (Dagster wraps it in DagsterExecutionStepExecutionError)."""
    error = event.step_failure_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def test_job_and_hourly_schedule(config: Config) -> None:
    defs = with_resources(config)
    schedule = defs.resolve_schedule_def("okrs_hourly")
    assert schedule.cron_schedule == OKR_CRON == "0 * * * *"
    assert schedule.job_name == "okrs_refresh"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def("okrs_refresh")
    assert {k for k in job.asset_layer.executable_asset_keys} == {okr_asset_key(n) for n in ("leads", "broken", "nps")}


def test_no_key_results_means_empty_definitions(make_config: MakeConfig, tmp_path: Path) -> None:
    config = make_config(None, [])
    defs = build_okr_defs(config)
    assert not list(defs.assets or []) and not list(defs.jobs or []) and not list(defs.schedules or [])


def test_full_definitions_load(config: Config) -> None:
    defs = build_definitions(config)
    defs.resolve_all_job_defs()
    assert defs.resolve_assets_def(okr_asset_key("leads")).key == okr_asset_key("leads")


def test_asset_on_every_warehouse(make_config: MakeConfig, harness: WarehouseHarness) -> None:
    harness.create_table("leads", pa.table({"n": pa.array([1, 2, 3], pa.int64())}))
    config = make_config(
        harness.connection_config(),
        [
            {
                "name": "grow",
                "key_results": [key_result_data("leads", query="SELECT count(*) FROM leads", start_value=0, target=6)],
            }
        ],
    )
    [asset] = assets_by_name(config).values()
    assert next(iter(asset.specs)).kinds == {harness.kind}
    result = dg.materialize([asset], resources=build_resources(config))
    metadata = result.asset_materializations_for_node("okrs__leads")[0].metadata
    assert metadata["value"] == dg.MetadataValue.float(3.0)
    assert metadata["progress"] == dg.MetadataValue.float(0.5)


def test_manual_mode_materializes_the_standing_value_without_running_the_query(config: Config) -> None:
    assets = assets_by_name(config)
    leads = next(kr for kr in config.key_results if kr.name == "leads")
    with ModelStore(config.store) as store:
        check_in(store, leads, 1050.0, datetime.now(UTC), manual=True)  # 100 -> 2000: progress 0.5
    # "broken" would fail if its query ran; in manual mode it runs nothing and has no value yet.
    broken = next(kr for kr in config.key_results if kr.name == "broken")
    with ModelStore(config.store) as store:
        set_mode(store, broken, "manual", datetime.now(UTC))
    result = dg.materialize([assets["leads"], assets["broken"]], resources=build_resources(config), raise_on_error=True)
    assert result.success
    meta = result.asset_materializations_for_node("okrs__leads")[0].metadata
    assert meta["mode"] == dg.MetadataValue.text("manual")
    assert meta["value"] == dg.MetadataValue.float(1050.0)
    assert meta["progress"] == dg.MetadataValue.float(0.5)
    assert meta["source"] == dg.MetadataValue.text("checkin")
    assert meta["objective_progress"] == dg.MetadataValue.float(0.5)  # the only key result with progress
    broken_meta = result.asset_materializations_for_node("okrs__broken")[0].metadata
    assert broken_meta["mode"] == dg.MetadataValue.text("manual")
    assert broken_meta["status"] == dg.MetadataValue.text("no value yet") and "value" not in broken_meta
    with ModelStore(config.store) as store:
        assert [(r.source, r.value) for r in history(store, "leads")] == [("checkin", 1050.0)]  # no query row
        assert history(store, "broken") == []


def test_automatic_mode_reports_mode_and_objective_progress(config: Config) -> None:
    assets = assets_by_name(config)
    leads = next(kr for kr in config.key_results if kr.name == "leads")
    with ModelStore(config.store) as store:
        check_in(store, leads, 5.0, datetime.now(UTC), manual=True)
        set_mode(store, leads, "automatic", datetime.now(UTC))
    result = dg.materialize([assets["leads"]], resources=build_resources(config), raise_on_error=True)
    meta = result.asset_materializations_for_node("okrs__leads")[0].metadata
    assert meta["mode"] == dg.MetadataValue.text("automatic")
    assert meta["value"] == dg.MetadataValue.float(1000.0)  # the query's value replaced the check-in
    objective_progress = meta["objective_progress"]
    assert isinstance(objective_progress, dg.FloatMetadataValue)
    assert objective_progress.value == pytest.approx(900 / 1900)
