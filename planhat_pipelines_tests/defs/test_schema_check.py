"""The ``source_schema_unchanged`` asset check, run through Dagster on a real DuckDB warehouse and store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
import yaml

from planhat_pipelines.config import Config, load_config
from planhat_pipelines.defs.checks import build_sync_checks
from planhat_pipelines.defs.crm import build_crm_asset
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.builders import config_doc, crm_section
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness

CHECK = "source_schema_unchanged"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def _config(tmp_path: Path, harness: DuckDBHarness) -> Config:
    section = crm_section(
        fields=[{"planhat": "name", "warehouse": "name"}, {"planhat": "custom.seats", "warehouse": "seats"}]
    )
    path = tmp_path / "config.yaml"  # the warehouse resource reads the file at run time
    doc = config_doc(tmp_path, connections={"wh": harness.connection_config()}, crm=[section])
    path.write_text(yaml.safe_dump(doc))
    config = load_config(path)
    ModelStore(config.store).close()  # the store exists (empty) before the first sync, as after `make dev`
    return config


def _companies(harness: DuckDBHarness, **extra: list[str]) -> None:
    harness.create_table(
        "crm_companies",
        pa.table({"id": ["c1"], "name": ["Acme"], "seats": pa.array([10], pa.int64()), **extra}),
    )


def _run(config: Config, instance: dg.DagsterInstance, *, checks_only: bool) -> dg.AssetCheckEvaluation:
    result = dg.materialize(
        [build_crm_asset(config.crm[0], config), *build_sync_checks(config)],
        instance=instance,
        resources=build_resources(config),
        selection=dg.AssetSelection.all_asset_checks() if checks_only else None,
    )
    assert result.success
    return {e.check_name: e for e in result.get_asset_check_evaluations()}[CHECK]


def test_source_schema_check_passes_warns_on_an_added_column_and_errs_on_a_retyped_mapped_one(
    tmp_path: Path, duckdb_harness: DuckDBHarness, instance: dg.DagsterInstance
) -> None:
    _companies(duckdb_harness)
    config = _config(tmp_path, duckdb_harness)
    same = _run(config, instance, checks_only=False)  # the sync records the baseline, the check runs after it
    assert same.passed
    columns = same.metadata["columns"].value
    assert isinstance(columns, dg.TableSchema) and [c.name for c in columns.columns] == ["id", "name", "seats"]

    _companies(duckdb_harness, tier=["gold"])
    added = _run(config, instance, checks_only=True)
    assert not added.passed and added.severity == dg.AssetCheckSeverity.WARN
    assert "tier VARCHAR" in (added.description or "") and added.metadata["added"].value == "tier"

    duckdb_harness.create_table("crm_companies", pa.table({"id": ["c1"], "name": ["Acme"], "seats": ["10"]}))
    retyped = _run(config, instance, checks_only=True)
    assert not retyped.passed and retyped.severity == dg.AssetCheckSeverity.ERROR
    assert "mapped column 'seats' changed type BIGINT → VARCHAR" in (retyped.description or "")
    assert "Fix: restore the column(s)" in (retyped.description or "")
