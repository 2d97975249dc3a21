"""Scheduled syncs skip with the reason while a connection's credentials fail, and resume once fixed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from planhat_pipelines.config import Config
from planhat_pipelines.definitions import build_definitions
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.errors import SyncError
from planhat_pipelines.health import check_connection, record_health
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.builders import OMIT, crm_section, usage_section, write_config
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness


def _config(tmp_path: Path, harness: DuckDBHarness) -> Config:
    return write_config(
        tmp_path,
        # create: true - the file is missing at first (the broken connection), so loading must not refuse it.
        connections={"wh": {**harness.connection_config(), "crm_automation": True, "create": True}},
        crm=[crm_section(table="accounts", warehouse_key="account_key")],
        usage=[
            usage_section(
                model="company",
                record_match=OMIT,
                unknown_reference="keep",
                fields={"record": "account_key", "action": "action", "date": "ts"},
                batch_size=10,
                partition_span=10,
            )
        ],
    )


def test_broken_credentials_skip_schedule_and_sensor_then_resume(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    config = _config(tmp_path, duckdb_harness)
    defs = build_definitions(config)
    schedule = defs.resolve_schedule_def("crm_wh_hourly")
    sensor = defs.resolve_sensor_def("usage_events_sensor")
    with dg.instance_for_test() as instance:

        def tick_schedule() -> Any:
            return schedule.evaluate_tick(dg.build_schedule_context(instance=instance))

        def tick_sensor() -> Any:
            ctx = dg.build_sensor_context(instance=instance, definitions=defs, resources=build_resources(config))
            return sensor.evaluate_tick(ctx)

        # The warehouse file does not exist yet: the connection fails, and so does each tick, with the message
        # (a red tick in the UI, not a grey "0 runs requested").
        for tick in (tick_schedule, tick_sensor):
            with pytest.raises(Exception) as failed:
                tick()
            message = _root(failed.value)
            assert "connection 'wh'" in message and "does not exist" in message and "Fix:" in message
        with ModelStore(config.store) as store:
            record_health(store, check_connection(config.connection("wh"), _now()))

        # Fixed: the warehouse exists with data. Both resume by themselves.
        duckdb_harness.create_table("accounts", pa.table({"account_key": ["a"], "name": ["Acme"]}))
        duckdb_harness.create_table(
            "events",
            pa.table(
                {
                    "event_id": pa.array([1, 2], pa.int64()),
                    "account_key": ["a", "a"],
                    "action": ["login"] * 2,
                    "ts": ["2026-01-01 00:00:00"] * 2,
                }
            ),
        )
        resumed = tick_schedule()
        assert len(resumed.run_requests or []) == 1
        assert len(tick_sensor().run_requests or []) == 1
        with ModelStore(config.store) as store:
            record_health(store, check_connection(config.connection("wh"), _now()))

    # The log command shows the failing check and the recovery.
    env = {**os.environ, "PLANHAT_PIPELINES_CONFIG": str(config.path)}
    done = subprocess.run(
        [sys.executable, "-m", "planhat_pipelines.cli", "logs"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if " wh " in f" {line} "]
    assert [line.split()[3] for line in lines] == ["ok", "failing"]
    assert "does not exist" in lines[1] and "Fix:" in lines[1]


def _root(error: BaseException) -> str:
    """The message of the project error inside Dagster's wrapping of a failed evaluation."""
    while not isinstance(error, SyncError):
        inner = error.__cause__ or getattr(error, "user_exception", None)
        if inner is None:
            return str(error)
        error = inner
    return str(error)


def _now() -> datetime:
    return datetime.now(UTC)
