"""Schema drift: a run compares its source's columns with the last successful run's before it writes anything.

CRM and usage runs against a real DuckDB warehouse and store; one test per warehouse kind (BigQuery and
Snowflake on their emulators) shows a retyped column is told by the warehouse's own type text.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from planhat_pipelines.cli import main
from planhat_pipelines.config import CrmSection, UsageSection
from planhat_pipelines.errors import SchemaDriftError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines.sync.drift import compare
from planhat_pipelines.sync.ranges import ranges_between
from planhat_pipelines.sync.usage import load_range, run_usage
from planhat_pipelines.warehouses.tables import Column, ColumnKind
from planhat_pipelines_tests.builders import config_doc, crm_section, parse, usage_section
from planhat_pipelines_tests.harness import WarehouseHarness

_STATE_TABLES = ("company", "sync_cursors", "rejected_rows", "crm_source_hashes", "user_activities", "source_columns")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[ModelStore]:
    """A store on the embedded catalog (drift is the same on every catalog; the store tests cover PostgreSQL)."""
    with ModelStore(tmp_path / "store.sqlite") as store:
        yield store


_CRM_ITEM = crm_section(
    "s", fields=[{"planhat": "name", "warehouse": "name"}, {"planhat": "custom.seats", "warehouse": "seats"}]
)


def _crm(harness: WarehouseHarness, tmp_path: Path) -> CrmSection:
    doc = config_doc(tmp_path, connections={"wh": harness.connection_config()}, crm=[_CRM_ITEM])
    return parse(doc, tmp_path).crm[0]


def _companies(harness: WarehouseHarness, **columns: pa.Array | list[Any]) -> None:
    base: dict[str, Any] = {
        "id": ["c1", "c2"],
        "name": ["Acme", "Globex"],
        "seats": pa.array([10, 20], pa.int64()),
        "region": ["eu", "us"],
    }
    base |= columns
    harness.create_table("crm_companies", pa.table({k: v for k, v in base.items() if v is not None}))


def _state(store: ModelStore) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a run could write (the sync log aside), to show a refused run wrote nothing."""
    return {
        t: store.con.execute(f"SELECT * EXCLUDE (rowid) FROM (SELECT rowid, * FROM {t}) ORDER BY ALL").fetchall()
        for t in _STATE_TABLES
    }


# --- CRM ------------------------------------------------------------------------------------------------
def test_first_run_records_the_baseline_then_added_and_unmapped_changes_are_reported(
    duckdb_harness: WarehouseHarness, tmp_path: Path, db: ModelStore
) -> None:
    section = _crm(duckdb_harness, tmp_path)
    _companies(duckdb_harness)
    first = sync_section(section, db, duckdb_harness.warehouse())
    assert not any("column" in line for line in first.log)
    assert [c.name for c in db.last_source_columns("s") or ()] == ["id", "name", "seats", "region"]

    _companies(duckdb_harness, tier=["gold", "silver"])
    second = sync_section(section, db, duckdb_harness.warehouse())
    added = [line for line in second.log if "added" in line]
    assert added == ["source columns added since the last run (not synced until mapped): tier VARCHAR"]
    run = db.runs(section="s", limit=1)[0]
    assert run.status == "success" and added[0] in (run.notes or "")
    assert [c.name for c in db.last_source_columns("s") or ()][-1] == "tier"

    # The new shape is the baseline now: tier is not reported again; an unmapped column removed is reported only.
    duckdb_harness.execute("ALTER TABLE crm_companies DROP COLUMN region")
    third = sync_section(section, db, duckdb_harness.warehouse())
    assert [line for line in third.log if "column" in line] == ["unmapped source columns removed: region (was VARCHAR)"]
    assert db.runs(section="s", limit=1)[0].status == "success"


def test_a_mapped_column_removed_or_retyped_fails_before_anything_is_written_until_accepted(
    duckdb_harness: WarehouseHarness, tmp_path: Path, db: ModelStore
) -> None:
    section = _crm(duckdb_harness, tmp_path)
    _companies(duckdb_harness)
    sync_section(section, db, duckdb_harness.warehouse())
    before = _state(db)

    _companies(duckdb_harness, name=["Acme 2", "Globex 2"], seats=None)
    with pytest.raises(SchemaDriftError) as raised:
        sync_section(section, db, duckdb_harness.warehouse())
    message = str(raised.value)
    assert "section 's', table 'crm_companies': mapped column 'seats' (BIGINT) was removed" in message
    assert "Fix: restore the column(s)" in message and "`planhat-pipelines drift accept --section s`" in message
    assert raised.value.transient is False
    assert _state(db) == before  # no record renamed, no cursor or baseline moved
    run = db.runs(section="s", limit=1)[0]
    assert (run.status, run.error) == ("failed", message)

    # Retyped: refused the same way (the failed run left the old baseline, so it still compares with BIGINT).
    _companies(duckdb_harness, name=["Acme 2", "Globex 2"], seats=["10", "20"])
    with pytest.raises(SchemaDriftError, match="mapped column 'seats' changed type BIGINT → VARCHAR"):
        sync_section(section, db, duckdb_harness.warehouse())
    assert _state(db) == before

    # Accepting the new shape from the command line lets the next run go ahead.
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(config_doc(tmp_path, connections={"wh": duckdb_harness.connection_config()}, crm=[_CRM_ITEM]))
    )
    db.close()
    assert main(["--config", str(path), "drift", "accept", "--section", "s"]) == 0
    with ModelStore(tmp_path / "store.sqlite") as reopened:
        assert [c.type for c in reopened.last_source_columns("s") or ()][2] == "VARCHAR"
        assert sync_section(section, reopened, duckdb_harness.warehouse()).updated == 2


# --- usage ----------------------------------------------------------------------------------------------
def _usage(harness: WarehouseHarness, tmp_path: Path) -> UsageSection:
    doc = config_doc(
        tmp_path,
        connections={"wh": harness.connection_config()},
        usage=[usage_section(batch_size=10, partition_span=100, unknown_reference="keep")],
    )
    return parse(doc, tmp_path).usage[0]


def _events(harness: WarehouseHarness, n: int, **extra: pa.Array | list[Any]) -> None:
    data: dict[str, Any] = {
        "event_id": pa.array(range(1, n + 1), pa.int64()),
        "user_email": ["u@x.io"] * n,
        "action": ["login"] * n,
        "occurred_at": ["2026-01-01 00:00:00"] * n,
    }
    data |= extra
    harness.create_table("events", pa.table({k: v for k, v in data.items() if v is not None}))


def test_usage_run_reports_added_columns_and_refuses_a_removed_mapped_one(
    duckdb_harness: WarehouseHarness, tmp_path: Path, db: ModelStore
) -> None:
    section = _usage(duckdb_harness, tmp_path)
    spans = ranges_between(0, 99, 100)
    _events(duckdb_harness, 3)
    assert run_usage(section, db, duckdb_harness.warehouse(), spans).log == []

    _events(duckdb_harness, 5, device=["ios"] * 5)
    result = run_usage(section, db, duckdb_harness.warehouse(), spans)
    assert result.inserted == 2
    assert result.log == ["source columns added since the last run (not synced until mapped): device VARCHAR"]
    assert result.log[0] in (db.runs(section="events", limit=1)[0].notes or "")

    before = _state(db)
    _events(duckdb_harness, 8, action=None, device=["ios"] * 8)
    with pytest.raises(SchemaDriftError, match=r"mapped column 'action' \(VARCHAR\) was removed"):
        run_usage(section, db, duckdb_harness.warehouse(), spans)
    assert _state(db) == before
    assert db.runs(section="events", limit=1)[0].status == "failed"


def test_load_range_refuses_a_retyped_mapped_column(
    duckdb_harness: WarehouseHarness, tmp_path: Path, db: ModelStore
) -> None:
    section = _usage(duckdb_harness, tmp_path)
    span = ranges_between(0, 99, 100)[0]
    _events(duckdb_harness, 3)
    load_range(section, db, duckdb_harness.warehouse(), span, run_id="r1")
    before = _state(db)
    _events(duckdb_harness, 5, user_email=pa.array([1, 2, 3, 4, 5], pa.int64()))
    with pytest.raises(SchemaDriftError, match="mapped column 'user_email' changed type VARCHAR → BIGINT"):
        load_range(section, db, duckdb_harness.warehouse(), span, run_id="r2")
    assert _state(db) == before


# --- every warehouse ------------------------------------------------------------------------------------
def test_a_retyped_mapped_column_is_told_by_each_warehouses_type_text(
    harness: WarehouseHarness, tmp_path: Path, db: ModelStore
) -> None:
    section = _crm(harness, tmp_path)
    _companies(harness)
    # The baseline as a successful run records it (without the run's reads: the emulators are slow).
    db.record_source_columns("s", harness.warehouse().describe("crm_companies").columns, "r1")
    old = {c.name.lower(): c.type for c in db.last_source_columns("s") or ()}
    _companies(harness, seats=["10", "20"])
    new = {c.name.lower(): c.type for c in harness.warehouse().describe("crm_companies").columns}
    assert old["seats"] != new["seats"]  # e.g. INT64 → STRING, NUMBER(38,0) → VARCHAR(16777216)
    with pytest.raises(SchemaDriftError) as raised:
        sync_section(section, db, harness.warehouse())
    assert "changed type" in str(raised.value) and "seats" in str(raised.value).lower()
    assert f"{old['seats']} → {new['seats']}" in str(raised.value)


def test_compare_matches_names_case_insensitively_and_ignores_unchanged_columns() -> None:
    previous = [Column("ID", "NUMBER(38,0)", ColumnKind.DECIMAL), Column("NAME", "VARCHAR", ColumnKind.TEXT)]
    current = [Column("id", "NUMBER(38,0)", ColumnKind.DECIMAL), Column("Name", "varchar", ColumnKind.TEXT)]
    drift = compare(previous, current, {"id", "name"})
    assert not drift.changed and drift.notes() == []
    assert compare(None, current, {"id"}).first


def test_a_mapped_column_widened_within_its_kind_is_reported_not_refused(
    duckdb_harness: WarehouseHarness, tmp_path: Path, db: ModelStore
) -> None:
    """INTEGER → BIGINT (Snowflake's VARCHAR(100) → VARCHAR(200) alike) keeps every value: the run goes on."""
    section = _crm(duckdb_harness, tmp_path)
    _companies(duckdb_harness, seats=pa.array([10, 20], pa.int32()))
    sync_section(section, db, duckdb_harness.warehouse())
    _companies(duckdb_harness, seats=pa.array([10, 30], pa.int64()))
    result = sync_section(section, db, duckdb_harness.warehouse())
    assert result.updated == 1
    assert any("seats INTEGER → BIGINT" in line for line in result.log), result.log
