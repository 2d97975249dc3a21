"""The code location loads: from the Python API and through `dagster definitions validate`."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._core.definitions.freshness import TimeWindowFreshnessPolicy

from planhat_pipelines.config import load_config
from planhat_pipelines.definitions import build_definitions

ROOT = Path(__file__).resolve().parents[2]


def test_demo_definitions_hold_every_declared_asset_job_and_schedule() -> None:
    config = load_config(ROOT / "planhat_pipelines.yaml")
    defs = build_definitions(config)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    expected = {f"crm/{s.name}" for s in config.crm} | {f"usage/{s.name}" for s in config.usage}
    expected |= {f"okrs/{kr.name}" for kr in config.key_results}
    assert expected <= keys
    # resolve_* raise for an unknown name: assert on what each selects, which can be wrong.
    selected = {
        job: {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.selected_asset_keys}
        for job in ("crm_full_sync", "crm_embedded_sync", "okrs_refresh", "usage_product_events_job")
    }
    # The CRM jobs run the behaviours after the sections they read (see test_customer_numbers.py).
    behaviours = {f"behaviours/{n}" for n in ("churn_licenses", "won_deal_license", "done_task_conversation")}
    crm = {f"crm/{s.name}" for s in config.crm}
    assert selected["crm_full_sync"] == selected["crm_embedded_sync"] == crm | behaviours
    assert selected["okrs_refresh"] == {f"okrs/{kr.name}" for kr in config.key_results}
    assert selected["usage_product_events_job"] == {"usage/product_events"}
    hourly = defs.resolve_schedule_def("crm_embedded_hourly")
    assert hourly.cron_schedule == "0 * * * *"
    assert hourly.default_status == dg.DefaultScheduleStatus.RUNNING  # crm_automation: true in the demo
    selection = defs.resolve_sensor_def("usage_product_events_sensor").asset_selection
    assert selection is not None
    assert selection.resolve(defs.resolve_asset_graph()) == {dg.AssetKey(["usage", "product_events"])}


def test_nothing_is_read_at_import_time(tmp_path: Path) -> None:
    """Importing the module with a missing config must not fail: the config is read when Dagster loads defs."""
    env = {**os.environ, "PLANHAT_PIPELINES_CONFIG": str(tmp_path / "missing.yaml")}
    done = subprocess.run(
        [sys.executable, "-c", "import planhat_pipelines.definitions"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_dagster_definitions_validate_is_clean(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "PLANHAT_PIPELINES_CONFIG": str(ROOT / "planhat_pipelines.yaml"),
    }
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


def test_freshness_is_declared_the_current_dagster_way(tmp_path: Path) -> None:
    """CRM and OKR assets carry a FreshnessPolicy; the usage `fresh` check (a domain rule) runs on a cron condition."""
    config = load_config(ROOT / "planhat_pipelines.yaml")
    defs = build_definitions(config)
    graph = defs.resolve_asset_graph()
    for key in [*(f"crm/{s.name}" for s in config.crm), *(f"okrs/{kr.name}" for kr in config.key_results)]:
        policy = graph.get(dg.AssetKey.from_user_string(key)).freshness_policy
        assert isinstance(policy, TimeWindowFreshnessPolicy), key
        assert policy.fail_window.to_timedelta() == timedelta(hours=2), key
    for section in config.usage:
        check = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey(["usage", section.name]), "fresh"))
        assert check.automation_condition is not None
    sensor = defs.resolve_sensor_def("sync_checks_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    # The hand-made job and schedule are gone; the shipped instance evaluates freshness policies.
    assert "sync_freshness_checks_hourly" not in {s.name for s in defs.schedules or []}
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    assert yaml.safe_load((tmp_path / "dagster.yaml").read_text())["freshness"] == {"enabled": True}
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.get_settings("freshness").get("enabled") is True


def test_sync_assets_carry_standard_table_metadata_and_a_mapping_code_version() -> None:
    config = load_config(ROOT / "planhat_pipelines.yaml")
    graph = build_definitions(config).resolve_asset_graph()
    companies = graph.get(dg.AssetKey(["crm", "companies"]))
    assert companies.metadata["dagster/table_name"] == "company"
    columns = {c.name: c.type for c in companies.metadata["dagster/column_schema"].columns}
    assert columns["arr"].startswith("DECIMAL") and columns["externalId"] == "VARCHAR"
    events = graph.get(dg.AssetKey(["usage", "product_events"]))
    assert events.metadata["dagster/table_name"] == "user_activities"
    assert "key" in {c.name for c in events.metadata["dagster/column_schema"].columns}
    # The code version is the mapping's fingerprint: a mapping change shows as a new version in the UI.
    changed = load_config(ROOT / "planhat_pipelines.yaml")
    crm = list(changed.crm)
    crm[0] = _replace(crm[0], null_overwrites=not crm[0].null_overwrites)
    changed_graph = build_definitions(_replace(changed, crm=tuple(crm))).resolve_asset_graph()
    new_version = changed_graph.get(dg.AssetKey(["crm", "companies"])).code_version
    assert companies.code_version and new_version and new_version != companies.code_version
    assert (
        graph.get(dg.AssetKey(["crm", "licenses"])).code_version
        == changed_graph.get(dg.AssetKey(["crm", "licenses"])).code_version
    )


def _replace(obj: Any, **changes: Any) -> Any:
    """A copy of a config object with ``changes`` (dataclass or pydantic model)."""
    return obj.model_copy(update=changes) if hasattr(obj, "model_copy") else dataclasses.replace(obj, **changes)
