"""Typed resources: each connection's settings are fields (secrets as dg.EnvVar), and tests swap a warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from planhat_pipelines.config import load_config
from planhat_pipelines.defs.resources import (
    DuckDBConnectionResource,
    SnowflakeConnectionResource,
    StoreResource,
    WarehousesResource,
    build_resources,
)
from planhat_pipelines.defs.usage import build_usage_asset, usage_partitions
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.builders import write_config
from planhat_pipelines_tests.defs.test_usage_defs import _seed, _write_config
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness


def test_connection_settings_are_fields_and_secrets_are_env_vars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_PASSWORD_FOR_TEST", "not-shown")
    connection: dict[str, Any] = {
        "type": "snowflake",
        "account": "acme-xy123",
        "user": "planhat",
        "database": "ANALYTICS",
        "schema": "CRM",
        "password": {"env": "SF_PASSWORD_FOR_TEST"},
    }
    warehouses = build_resources(write_config(tmp_path, connections={"sf": connection}))["warehouses"]
    assert isinstance(warehouses, WarehousesResource)
    (sf,) = warehouses.snowflake
    assert isinstance(sf, SnowflakeConnectionResource)
    assert (sf.name, sf.account, sf.user, sf.database, sf.schema_) == (
        "sf",
        "acme-xy123",
        "planhat",
        "ANALYTICS",
        "CRM",
    )
    # The UI shows the variable, never the value.
    assert isinstance(sf.password, dg.EnvVar) and sf.password.env_var_name == "SF_PASSWORD_FOR_TEST"
    assert sf.secret_variables == {"password": "SF_PASSWORD_FOR_TEST"}


def test_a_test_swaps_the_warehouse_through_materialize(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    """The config names one DuckDB file; the run reads another, given as a resource."""
    _seed(duckdb_harness, 5)
    config = load_config(_write_config(tmp_path, duckdb_harness))
    other = DuckDBHarness(tmp_path / "other.duckdb")
    other.create_table(
        "events",
        pa.table(
            {
                "event_id": pa.array([101, 102, 103], pa.int64()),
                "user_email": ["a@x.io"] * 3,
                "action": ["login"] * 3,
                "occurred_at": ["2026-01-01 00:00:00"] * 3,
            }
        ),
    )
    other.close()
    section = config.usage[0]
    key = f"{100:032d}-{109:032d}"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(usage_partitions(section).name or "", [key])
        result = dg.materialize(
            [build_usage_asset(section, config)],
            partition_key=key,
            instance=instance,
            resources={
                "store": StoreResource.of(config.store),
                "warehouses": WarehousesResource(duckdb=[DuckDBConnectionResource(name="wh", path=str(other.path))]),
            },
        )
    assert result.success
    with ModelStore(config.store) as store:
        assert [r[0] for r in store.con.execute('SELECT "key" FROM user_activities ORDER BY 1').fetchall()] == [
            101,
            102,
            103,
        ]
