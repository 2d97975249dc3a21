"""Shared fixtures: the warehouse harnesses every cross-warehouse test is parametrized over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness
from planhat_pipelines_tests.harness import WarehouseHarness

WAREHOUSE_KINDS = ["duckdb", "bigquery", "snowflake"]


@pytest.fixture(params=WAREHOUSE_KINDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarehouseHarness]:
    """A fresh, isolated place in each warehouse kind (DuckDB file, BigQuery dataset, Snowflake schema)."""
    kind = request.param
    if kind == "duckdb":
        h = DuckDBHarness(tmp_path / "warehouse.duckdb")
        yield h
        h.close()
    else:
        # Emulator harnesses come from session-scoped fixtures in emulators/<kind>.py.
        yield request.getfixturevalue(f"{kind}_harness")


@pytest.fixture
def duckdb_harness(tmp_path: Path) -> Iterator[DuckDBHarness]:
    h = DuckDBHarness(tmp_path / "warehouse.duckdb")
    yield h
    h.close()


from planhat_pipelines_tests.emulators.bigquery import bigquery_emulator, bigquery_harness  # noqa: E402,F401
from planhat_pipelines_tests.emulators.snowflake import snowflake_emulator, snowflake_harness  # noqa: E402,F401
