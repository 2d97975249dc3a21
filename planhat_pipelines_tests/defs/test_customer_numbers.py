"""The behaviours, calculated metrics and health score as Dagster assets: lineage, jobs, the automation sensor,
switching off, and materializing them on a real store (twice: the second run changes nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from planhat_pipelines.config import Config, load_config
from planhat_pipelines.definitions import build_definitions
from planhat_pipelines.defs.naming import (
    CUSTOMER_NUMBERS_JOB,
    CUSTOMER_NUMBERS_SENSOR,
    behaviour_asset_key,
    health_score_asset_key,
    metric_asset_key,
)
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.demo.generate import DemoSize, seed_demo
from planhat_pipelines.store import ModelStore

ROOT = Path(__file__).resolve().parents[2]
SMALL = DemoSize(companies=60, users=300, licenses=100, events=6_000, metrics=1_200)
K = dg.AssetKey


def _demo_config(tmp_path: Path, edit: Any = None) -> Config:
    """The shipped demo config, pointed at a small demo warehouse and a store in ``tmp_path``."""
    raw = yaml.safe_load((ROOT / "planhat_pipelines.yaml").read_text())
    raw["store"]["catalog"] = str(tmp_path / "planhat.sqlite")
    raw["connections"]["embedded"]["path"] = str(tmp_path / "warehouse.duckdb")
    if edit:
        edit(raw)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    seed_demo(tmp_path / "warehouse.duckdb", SMALL)
    return load_config(path)


def _graph(defs: dg.Definitions) -> dict[dg.AssetKey, set[dg.AssetKey]]:
    graph = defs.resolve_asset_graph()
    return {key: set(graph.get(key).parent_keys) for key in graph.get_all_asset_keys()}


def test_each_number_is_downstream_of_what_it_reads(tmp_path: Path) -> None:
    defs = build_definitions(_demo_config(tmp_path))
    parents = _graph(defs)
    assert parents[behaviour_asset_key("churn_licenses")] == {
        K(["crm", n]) for n in ("churns", "licenses", "companies")
    }
    assert parents[behaviour_asset_key("won_deal_license")] == {
        K(["crm", n]) for n in ("opportunities", "licenses", "companies")
    }
    assert parents[behaviour_asset_key("done_task_conversation")] == {K(["crm", n]) for n in ("tasks", "companies")}
    assert parents[metric_asset_key("active_users_7d")] == {K(["usage", "product_events"])}
    assert parents[metric_asset_key("api_calls_30d")] == {K(["usage", "company_metrics"])}
    assert parents[health_score_asset_key()] == {
        metric_asset_key("active_users_7d"),
        metric_asset_key("dashboard_views_30d"),
        *(K(["crm", n]) for n in ("companies", "licenses", "nps")),
    }
    # The send-only Company section goes out after the behaviours that change licenses and statuses.
    assert {behaviour_asset_key(n) for n in ("churn_licenses", "won_deal_license")} <= parents[
        K(["crm", "company_export"])
    ]


def test_jobs_and_the_automation_sensor_cover_the_numbers(tmp_path: Path) -> None:
    defs = build_definitions(_demo_config(tmp_path))
    behaviours = {behaviour_asset_key(n) for n in ("churn_licenses", "won_deal_license", "done_task_conversation")}
    full = defs.resolve_job_def("crm_full_sync").asset_layer.selected_asset_keys
    assert behaviours <= set(full)
    hourly = defs.resolve_job_def("crm_embedded_sync").asset_layer.selected_asset_keys
    assert behaviours <= set(hourly)
    numbers = set(defs.resolve_job_def(CUSTOMER_NUMBERS_JOB).asset_layer.selected_asset_keys)
    metrics = {metric_asset_key(m) for m in ("active_users_7d", "active_users_30d", "dashboard_views_30d")}
    assert behaviours | metrics | {health_score_asset_key()} <= numbers
    sensor = defs.resolve_sensor_def(CUSTOMER_NUMBERS_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    for key in numbers:
        assert graph.get(key).automation_condition is not None, key


@pytest.mark.parametrize(
    ("switch", "gone"),
    [
        ("churn_licenses", behaviour_asset_key("churn_licenses")),
        ("won_deal_license", behaviour_asset_key("won_deal_license")),
        ("done_task_conversation", behaviour_asset_key("done_task_conversation")),
    ],
)
def test_a_behaviour_switched_off_has_no_asset(tmp_path: Path, switch: str, gone: dg.AssetKey) -> None:
    def off(raw: dict[str, Any]) -> None:
        raw["behaviours"][switch] = {"enabled": False}

    keys = build_definitions(_demo_config(tmp_path, off)).resolve_asset_graph().get_all_asset_keys()
    assert gone not in keys
    assert {behaviour_asset_key(n) for n in ("churn_licenses", "won_deal_license", "done_task_conversation")} - {
        gone
    } <= set(keys)


def test_without_the_sections_a_behaviour_starts_from_there_is_no_asset(tmp_path: Path) -> None:
    def no_churns(raw: dict[str, Any]) -> None:
        raw["crm"] = [s for s in raw["crm"] if s["name"] != "churns"]
        del raw["health_score"]
        raw["calculated_metrics"] = []

    defs = build_definitions(_demo_config(tmp_path, no_churns))
    keys = set(defs.resolve_asset_graph().get_all_asset_keys())
    assert behaviour_asset_key("churn_licenses") not in keys
    assert health_score_asset_key() not in keys and metric_asset_key("active_users_7d") not in keys


def _materialize(config: Config) -> dict[dg.AssetKey, dict[str, float]]:
    """Every unpartitioned CRM and customer-number asset, in lineage order; each asset's numeric metadata."""
    defs = build_definitions(config)
    wanted = [
        a
        for a in defs.assets or []
        if isinstance(a, dg.AssetsDefinition)
        and a.partitions_def is None
        and a.key.path[0] in ("crm", "behaviours", "metrics", "health_score")
    ]
    result = dg.materialize(wanted, resources=build_resources(config))
    assert result.success
    return {
        e.materialization.asset_key: {
            k: float(v.value) for k, v in e.materialization.metadata.items() if isinstance(v.value, int | float)
        }
        for e in result.get_asset_materialization_events()
    }


def _add_recent_activities(config: Config) -> None:
    """Activities of each company's end users in the last days, as a usage sync stores them."""
    with ModelStore(config.store) as store:
        store.con.execute(
            'INSERT INTO user_activities (section, "key", model, "recordId", "companyId", action, "date", "count") '
            "SELECT 'product_events', row_number() OVER (), 'enduser', u.id, u.\"companyId\", "
            "CASE WHEN k % 2 = 0 THEN 'view_dashboard' ELSE 'login' END, "
            "CAST(current_date AS TIMESTAMP) - to_days(CAST(k % 10 AS INTEGER)), 1 "
            "FROM enduser u, range(4) r(k)"
        )


def _tables(config: Config) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "license": 'SELECT id, "renewalStatus", "opportunityId", "fromDate", "toDate", arr FROM license ORDER BY id',
        "conversation": 'SELECT id, "taskId", subject, type FROM conversation ORDER BY id',
        "company": "SELECT id, status, arr, h, CAST(custom AS VARCHAR) FROM company ORDER BY id",
        "series": 'SELECT metric, "recordId", "day", "value" FROM calculated_metric_values ORDER BY ALL',
        "health": 'SELECT "day", "companyId", input, "value", score FROM health_score_inputs ORDER BY ALL',
    }
    with ModelStore(config.store, read_only=True) as store:
        return {name: store.con.execute(sql).fetchall() for name, sql in queries.items()}


def test_the_numbers_materialize_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    config = _demo_config(tmp_path)
    first = _materialize(config)  # the CRM sections land the companies, end users, churns, deals and tasks
    _add_recent_activities(config)
    second = _materialize(config)
    with ModelStore(config.store, read_only=True) as store:
        won, done, companies = store.con.execute(
            "SELECT (SELECT count(*) FROM opportunity WHERE status = 'won' AND \"companyId\" IS NOT NULL), "
            "(SELECT count(*) FROM task WHERE status = 'done' AND \"companyId\" IS NOT NULL), "
            "(SELECT count(*) FROM company)"
        ).fetchall()[0]
        spread = store.con.execute("SELECT count(DISTINCT h) FROM company").fetchall()[0][0]
    assert first[behaviour_asset_key("won_deal_license")]["changed"] == won > 0
    assert first[behaviour_asset_key("done_task_conversation")]["changed"] == done > 0
    assert first[behaviour_asset_key("churn_licenses")]["examined"] > 0
    assert second[metric_asset_key("active_users_7d")]["latest_total"] > 0
    assert second[metric_asset_key("dashboard_views_30d")]["records_changed"] > 0
    assert second[health_score_asset_key()]["companies"] == companies
    assert spread > 1  # the scores differ across companies
    before = _tables(config)
    third = _materialize(config)
    for name in ("churn_licenses", "won_deal_license", "done_task_conversation"):
        assert third[behaviour_asset_key(name)]["changed"] == 0, name
    for metric in config.calculated_metrics:
        assert third[metric_asset_key(metric.name)]["series_rows"] == 0, metric.name
        assert third[metric_asset_key(metric.name)]["records_changed"] == 0, metric.name
    assert third[health_score_asset_key()]["changed"] == 0
    assert _tables(config) == before


def test_a_usage_range_not_loaded_yet_does_not_hold_back_the_metrics(tmp_path: Path) -> None:
    # The usage sensor registers ranges before it loads them, and a failed range stays unloaded: the metrics must
    # still follow every range that lands (Dagster's plain eager() waits until no upstream partition is missing).
    defs = build_definitions(_demo_config(tmp_path))
    usage = K(["usage", "product_events"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("usage_product_events_ranges", ["0-999", "1000-1999"])
        instance.report_runless_asset_event(dg.AssetMaterialization(usage, partition="0-999"))
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        instance.report_runless_asset_event(dg.AssetMaterialization(usage, partition="0-999"))
        landed = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    requested = {r.key for r in landed.results if r.true_subset.size}
    metrics = {metric_asset_key(m) for m in ("active_users_7d", "active_users_30d", "dashboard_views_30d")}
    assert metrics <= requested, requested
    assert metric_asset_key("api_calls_30d") not in requested  # its usage section did not land
