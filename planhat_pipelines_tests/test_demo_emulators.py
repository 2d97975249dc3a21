"""`make demo WAREHOUSE=bigquery|snowflake`, end to end on free ports with small data.

The demo configs in examples/ are used as they are, except for the ports and the store folder, and
the emulator is stopped and started again between the two runs, as two `make demo` calls do: the
second run must copy and sync only the new usage rows and write no CRM rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from planhat_pipelines.config import Config, load_config
from planhat_pipelines.demo.generate import DemoSize
from planhat_pipelines.demo.run import run_all
from planhat_pipelines.store import ModelStore
from tools.emulators.demo import demo_emulator, seed_emulator
from tools.emulators.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
SIZE = DemoSize(companies=20, users=100, licenses=30, events=1_000, metrics=300, growth=0.05)
CRM_SECTIONS = ("companies", "end_users", "licenses", "opportunities")


def _demo_config(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """examples/demo_<kind>.yaml with free ports and everything stored under ``tmp_path``."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / f"demo_{kind}.yaml").read_text())
    data["store"]["catalog"] = "data/planhat.duckdb"
    (connection,) = data["connections"].values()
    if kind == "bigquery":
        connection["endpoint"] = f"http://127.0.0.1:{free_port()}"
        connection["storage_grpc_endpoint"] = f"127.0.0.1:{free_port()}"
    else:
        connection["port"] = free_port()
        monkeypatch.setenv(connection["password"]["env"], "demo")
    path = tmp_path / f"demo_{kind}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def _demo_run(config: Config, kind: str, instance: dg.DagsterInstance) -> list[str]:
    lines: list[str] = []
    with demo_emulator(config, kind):
        seed_emulator(config, kind, size=SIZE, echo=lines.append)
        run_all(config, instance, echo=lines.append)
    assert not [line for line in lines if "FAILED" in line], lines
    return lines


def _usage_rows(store: ModelStore, table: str, section: str) -> int:
    return int(store.con.execute(f"SELECT count(*) FROM {table} WHERE section = ?", [section]).fetchall()[0][0])


@pytest.mark.parametrize("kind", ["bigquery", "snowflake"])
def test_demo_runs_against_the_emulator_and_a_second_run_syncs_only_new_rows(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _demo_config(kind, tmp_path, monkeypatch)
    with dg.instance_for_test() as instance:
        first = _demo_run(config, kind, instance)
        with ModelStore(config.store) as store:
            assert store.count("company") == SIZE.companies
            assert store.count("enduser") == SIZE.users
            # Each won opportunity with a company became one more license (behaviours.won_deal_license).
            won = store.con.execute(
                "SELECT count(*) FROM opportunity WHERE status = 'won' AND \"companyId\" IS NOT NULL"
            ).fetchall()[0][0]
            assert store.count("license") == SIZE.licenses + won and won > 0
            assert store.count("opportunity") == SIZE.companies // 2
            assert _usage_rows(store, "user_activities", "product_events") == SIZE.events
            assert _usage_rows(store, "custom_metrics", "company_metrics") == SIZE.metrics
            assert store.open_rejects() == []

        # A new process in `make demo`: the emulator restarts on the same data folder.
        second = _demo_run(config, kind, instance)
        new_events, new_metrics = int(SIZE.events * SIZE.growth), int(SIZE.metrics * SIZE.growth)
        assert f"copied usage_events +{new_events}, usage_metrics +{new_metrics}" in second[0], (first, second)
        with ModelStore(config.store) as store:
            assert _usage_rows(store, "user_activities", "product_events") == SIZE.events + new_events
            assert _usage_rows(store, "custom_metrics", "company_metrics") == SIZE.metrics + new_metrics
            events_run = store.runs(section="product_events", limit=1)[0]
            metrics_run = store.runs(section="company_metrics", limit=1)[0]
            assert (events_run.rows_read, events_run.inserted) == (new_events, new_events)
            assert (metrics_run.rows_read, metrics_run.inserted) == (new_metrics, new_metrics)
            assert events_run.cursor_after == str(SIZE.events + new_events)
            for section in CRM_SECTIONS:
                crm_run = store.runs(section=section, limit=1)[0]
                assert crm_run.status == "success"
                assert (crm_run.inserted, crm_run.updated, crm_run.rejected) == (0, 0, 0), section
                assert crm_run.unchanged == crm_run.rows_read > 0, section
            assert store.count("company") == SIZE.companies
