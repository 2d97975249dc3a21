"""Failures say why, once: a terminal error fails one step attempt with the project's message; runs are not re-run.

Through Dagster's own APIs: the step's attempts and failure data in the event log, the run-failure alert's text,
and the instance built from the shipped dagster.yaml.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import dagster as dg

from planhat_pipelines.defs.alerts import build_failure_alert_sensor, failure_alert_text
from planhat_pipelines.defs.crm import build_crm_asset
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines_tests.builders import crm_section, write_config
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, harness: DuckDBHarness) -> Any:
    harness.execute("CREATE TABLE present (company_key VARCHAR, name VARCHAR)")
    crm = [crm_section(table="crm_missing", warehouse_key="company_key")]
    return write_config(tmp_path, connections={"wh": harness.connection_config()}, crm=crm)


def test_a_missing_table_fails_once_with_the_message_first_and_the_fix(
    tmp_path: Path, duckdb_harness: DuckDBHarness
) -> None:
    config = _config(tmp_path, duckdb_harness)
    asset = build_crm_asset(config.crm[0], config)
    with dg.instance_for_test() as instance:
        result = dg.materialize([asset], resources=build_resources(config), instance=instance, raise_on_error=False)
        assert not result.success
        # The retry policy retries transient errors only: this one is attempted once.
        starts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
        restarts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
        assert (len(starts), len(restarts)) == (1, 0)
        (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        data = failure.step_failure_data
        assert data.user_failure_data is not None
        description = data.user_failure_data.description or ""
        assert description.startswith("crm/companies: connection 'wh', table 'crm_missing': does not exist")
        assert data.user_failure_data.metadata["fix"].value == "create it, or fix the table name in the section"
        context = dg.build_run_status_sensor_context(
            sensor_name=build_failure_alert_sensor(config).name,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        _, text = failure_alert_text(context)
    assert "table 'crm_missing': does not exist" in text and "Fix: create it, or fix the table name" in text


def test_the_shipped_instance_re_runs_only_runs_whose_worker_died(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        # A failed step is terminal (no re-run) or already retried by the step's policy inside the run.
        assert instance.run_retries_retry_on_asset_or_op_failure is False
