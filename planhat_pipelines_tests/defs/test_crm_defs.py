"""CRM sync through Dagster: assets, the hourly schedules and their switch, the full-sync job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from planhat_pipelines.config import Config
from planhat_pipelines.definitions import build_definitions
from planhat_pipelines.defs.crm import FULL_SYNC_JOB, HOURLY_CRON, build_crm_asset, build_crm_defs
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.builders import crm_section, duckdb_connection, write_config
from planhat_pipelines_tests.harness import WarehouseHarness

COMPANIES = crm_section()
LICENSES = crm_section(
    "licenses",
    "crm_licenses",
    model="license",
    direction="both",
    fields=[
        {"planhat": "companyId", "warehouse": "company_ref", "direction": "receive"},
        {"planhat": "mrr", "warehouse": "mrr"},
    ],
)


def crm_config(tmp_path: Path, connections: dict[str, Any], crm: list[dict[str, Any]]) -> Config:
    return write_config(tmp_path, name="planhat_pipelines.yaml", connections=connections, crm=crm)


def seed(harness: WarehouseHarness) -> None:
    harness.create_table("crm_companies", pa.table({"id": ["c1", "c2"], "name": ["Acme", "Globex"]}))
    harness.create_table(
        "crm_licenses",
        pa.table({"id": ["l1", "l2"], "company_ref": ["c1", "c2"], "mrr": pa.array([10.0, 20.0], pa.float64())}),
    )


def crm_defs(config: Config) -> dg.Definitions:
    return dg.Definitions.merge(build_crm_defs(config), dg.Definitions(resources=build_resources(config)))


# --- definitions only -------------------------------------------------------------------------------------
@pytest.fixture
def two_connections(tmp_path: Path) -> Config:
    connections = {
        "wh": duckdb_connection(tmp_path / "wh.duckdb", crm_automation=True, create=True),
        "other": duckdb_connection(tmp_path / "other.duckdb", create=True),
        "unused": duckdb_connection(tmp_path / "unused.duckdb", create=True),
    }
    users = crm_section(
        "users",
        "crm_users",
        model="enduser",
        connection="other",
        keys={"planhat": "email", "warehouse": "email"},
        fields=[{"planhat": "firstName", "warehouse": "first_name"}],
    )
    return crm_config(tmp_path, connections, [COMPANIES, LICENSES, users])


def test_one_asset_per_section_with_group_kind_pool_resources_and_deps(two_connections: Config) -> None:
    defs = crm_defs(two_connections)
    licenses = defs.resolve_assets_def(dg.AssetKey(["crm", "licenses"]))
    spec = next(iter(licenses.specs))
    assert spec.group_name == "crm"
    assert spec.kinds == {"duckdb"}
    assert licenses.op.pool == "planhat_crm_licenses"  # its own pool: sections run in parallel, never twice
    assert {"store", "warehouses"} <= licenses.required_resource_keys
    # License belongs to a company: it runs after the Company section of the same connection.
    assert {d.asset_key for d in spec.deps} == {dg.AssetKey(["crm", "companies"])}
    assert "License" in (spec.description or "") and "crm_licenses" in (spec.description or "")
    users = next(iter(defs.resolve_assets_def(dg.AssetKey(["crm", "users"])).specs))
    assert not users.deps  # no Company section on its connection
    assert {"store", "warehouses"} <= defs.resolve_assets_def(dg.AssetKey(["crm", "users"])).required_resource_keys


def test_hourly_schedule_per_connection_follows_the_automation_switch(two_connections: Config) -> None:
    defs = crm_defs(two_connections)
    on = defs.resolve_schedule_def("crm_wh_hourly")
    off = defs.resolve_schedule_def("crm_other_hourly")
    assert on.cron_schedule == off.cron_schedule == HOURLY_CRON == "0 * * * *"
    assert on.default_status is dg.DefaultScheduleStatus.RUNNING
    assert off.default_status is dg.DefaultScheduleStatus.STOPPED
    assert on.job_name == "crm_wh_sync" and off.job_name == "crm_other_sync"
    with pytest.raises(dg.DagsterInvariantViolationError):
        defs.resolve_schedule_def("crm_unused_hourly")  # no CRM section, no schedule
    wh_job = defs.resolve_job_def("crm_wh_sync")
    assert set(wh_job.asset_layer.executable_asset_keys) == {
        dg.AssetKey(["crm", "companies"]),
        dg.AssetKey(["crm", "licenses"]),
    }
    full = defs.resolve_job_def(FULL_SYNC_JOB)
    assert len(set(full.asset_layer.executable_asset_keys)) == 3


def test_whole_definitions_load(two_connections: Config) -> None:
    defs = build_definitions(two_connections)
    dg.Definitions.validate_loadable(defs)
    # resolve_job_def raises for an unknown job: check what the job selects, which can be wrong.
    full = defs.resolve_job_def(FULL_SYNC_JOB)
    assert {k.path[0] for k in full.asset_layer.selected_asset_keys} == {"crm"}


def test_no_sections_no_crm_definitions(tmp_path: Path) -> None:
    config = crm_config(tmp_path, {"wh": duckdb_connection(tmp_path / "wh.duckdb", create=True)}, [])
    assert not list(build_crm_defs(config).assets or [])


# --- runs with real resources -----------------------------------------------------------------------------
def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        out[mat.asset_key.path[-1]] = {k: v.value for k, v in mat.metadata.items()}
    return out


def test_full_sync_job_runs_every_section_companies_first(harness: WarehouseHarness, tmp_path: Path) -> None:
    seed(harness)
    config = crm_config(tmp_path, {"wh": harness.connection_config()}, [COMPANIES, LICENSES])
    defs = crm_defs(config)
    result = defs.resolve_job_def(FULL_SYNC_JOB).execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    meta = _materializations(result)
    assert set(meta) == {"companies", "licenses"}
    assert meta["companies"]["inserted"] == 2
    # Companies were synced before licenses, so every license found its company.
    assert (meta["licenses"]["inserted"], meta["licenses"]["rejected"]) == (2, 0)
    assert all("full sync requested" in m["log"] for m in meta.values())
    for key in ("rows_read", "inserted", "updated", "unchanged", "rejected", "resolved_rejects", "sent"):
        assert isinstance(meta["licenses"][key], int)
    assert isinstance(meta["licenses"]["duration_seconds"], float)
    with ModelStore(config.store) as store:
        assert store.count("company") == 2 and store.count("license") == 2
        assert {r.status for r in store.runs()} == {"success"}

    # The hourly job is the same sync without `full`; nothing changed, so nothing is written.
    again = defs.resolve_job_def("crm_wh_sync").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    meta = _materializations(again)
    assert (meta["licenses"]["unchanged"], meta["licenses"]["inserted"], meta["licenses"]["sent"]) == (2, 0, 0)
    assert "full sync requested" not in meta["licenses"]["log"]


def test_one_section_materializes_alone(harness: WarehouseHarness, tmp_path: Path) -> None:
    seed(harness)
    config = crm_config(tmp_path, {"wh": harness.connection_config()}, [COMPANIES, LICENSES])
    asset = build_crm_asset(config.crm[0], config)
    result = dg.materialize([asset], resources=build_resources(config), instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert _materializations(result)["companies"]["inserted"] == 2


def test_section_with_all_keys_bad_fails_the_asset(harness: WarehouseHarness, tmp_path: Path) -> None:
    harness.create_table(
        "crm_companies", pa.table({"id": pa.array([None, None], pa.string()), "name": ["Acme", "Globex"]})
    )
    config = crm_config(tmp_path, {"wh": harness.connection_config()}, [COMPANIES])
    asset = build_crm_asset(config.crm[0], config)
    result = dg.materialize(
        [asset], resources=build_resources(config), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "KeyValidationError" in str(failure.event_specific_data)
    assert "section 'companies'" in str(failure.event_specific_data)
