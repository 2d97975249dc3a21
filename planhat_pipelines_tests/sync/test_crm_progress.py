"""CRM progress: a line after every batch read, after the store write and after every send batch.

Real DuckDB warehouse and store, sections built by the real config parser; the Dagster test runs the real
asset on an ephemeral instance and reads the run's event log.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from planhat_pipelines.config import CrmSection, load_config
from planhat_pipelines.defs.crm import build_crm_asset
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import DEFAULT_BATCH_SIZE, CrmProgress, sync_section
from planhat_pipelines_tests.builders import crm_section, write_config
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness

COMPANIES: dict[str, Any] = crm_section()
EXPORT: dict[str, Any] = crm_section("export", "company_export", direction="send")


def seed_companies(harness: DuckDBHarness, n: int) -> None:
    ids = [f"c{i:07d}" for i in range(n)]
    harness.create_table("crm_companies", pa.table({"id": ids, "name": [f"Co {i}" for i in ids]}))


def config_for(harness: DuckDBHarness, tmp_path: Path, *crm: dict[str, Any]) -> tuple[CrmSection, ...]:
    connections = {"wh": harness.connection_config()}
    return write_config(tmp_path, name="planhat_pipelines.yaml", connections=connections, crm=crm).crm


def batch_sizes(harness: DuckDBHarness, table: str, batch_size: int) -> list[int]:
    """How many rows each batch the warehouse hands out holds (what one progress line per batch means)."""
    with harness.warehouse() as wh:
        return [b.num_rows for b in wh.read_batches(table, ["id", "name"], batch_size=batch_size)]


def test_receive_reports_every_batch_read_then_the_write(duckdb_harness: DuckDBHarness, tmp_path: Path) -> None:
    seed_companies(duckdb_harness, 25)
    (section,) = config_for(duckdb_harness, tmp_path, COMPANIES)
    seen: list[CrmProgress] = []
    with ModelStore(tmp_path / "store.sqlite") as store, duckdb_harness.warehouse() as wh:
        sync_section(section, store, wh, batch_size=10, progress=seen.append)
    sizes = batch_sizes(duckdb_harness, "crm_companies", 10)
    assert len(sizes) >= 3  # several batches, or the test says nothing about "per batch"
    reads = [p for p in seen if p.phase == "read"]
    assert [p.rows for p in reads] == list(itertools.accumulate(sizes))  # once per batch, growing
    assert {p.total for p in reads} == {None}  # a full read: the warehouse is not asked for a count
    assert all(b.seconds >= a.seconds for a, b in itertools.pairwise(reads))
    writes = [p for p in seen if p.phase == "write"]
    assert [(p.rows, p.total) for p in writes] == [(25, 25)]
    # After every read: one line once validated (before the write, which is one long statement), then the write.
    assert [p.phase for p in seen] == ["read"] * len(sizes) + ["validate", "write"]
    assert reads[0].describe().startswith(f"companies (read): {sizes[0]} rows; ")
    assert "rows/s" in reads[0].describe()
    assert writes[0].describe().startswith("companies (write): 25 of 25 rows (100%); ")


def test_send_reports_every_merge_batch(duckdb_harness: DuckDBHarness, tmp_path: Path) -> None:
    seed_companies(duckdb_harness, 25)
    duckdb_harness.create_table(
        "company_export", pa.table({"id": pa.array([], pa.string()), "name": pa.array([], pa.string())})
    )
    companies, export = config_for(duckdb_harness, tmp_path, COMPANIES, EXPORT)
    seen: list[CrmProgress] = []
    with ModelStore(tmp_path / "store.sqlite") as store, duckdb_harness.warehouse() as wh:
        sync_section(companies, store, wh, batch_size=10)
        result = sync_section(export, store, wh, batch_size=10, progress=seen.append)
    assert result.sent == 25
    sends = [p for p in seen if p.phase == "send"]
    assert [(p.rows, p.total) for p in sends] == [(10, 25), (20, 25), (25, 25)]
    assert sends[0].describe().startswith("export (send): 10 of 25 rows (40%); ")
    assert " s left" in sends[0].describe() and "left" not in sends[-1].describe()  # no estimate once done
    # The empty target's comparison read is reported before anything is sent.
    assert [p.phase for p in seen] == [p.phase for p in seen if p.phase == "read"] + ["send"] * 3


def test_asset_logs_progress_lines_before_its_materialization(duckdb_harness: DuckDBHarness, tmp_path: Path) -> None:
    # The asset runs with the default batch size: enough rows for three batches of it.
    rows = 2 * DEFAULT_BATCH_SIZE + 1
    seed_companies(duckdb_harness, rows)
    (section,) = config_for(duckdb_harness, tmp_path, COMPANIES)
    config = load_config(tmp_path / "planhat_pipelines.yaml")
    sizes = batch_sizes(duckdb_harness, "crm_companies", DEFAULT_BATCH_SIZE)
    assert len(sizes) >= 3
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([build_crm_asset(section, config)], resources=build_resources(config), instance=instance)
    assert result.success
    logs = instance.all_logs(result.run_id)
    materialized = next(i for i, e in enumerate(logs) if e.dagster_event and e.dagster_event.is_step_materialization)
    lines = [(i, e.user_message) for i, e in enumerate(logs) if e.user_message.startswith("companies (")]
    expected = [f"companies (read): {n:,} rows; " for n in itertools.accumulate(sizes)]
    expected.append(f"companies (validate): {rows:,} of {rows:,} rows (100%); ")
    expected.append(f"companies (write): {rows:,} of {rows:,} rows (100%); ")
    assert [m[: len(x)] for (_, m), x in zip(lines, expected, strict=True)] == expected
    assert all(i < materialized for i, _ in lines)  # logged as it happened, not with the result at the end
