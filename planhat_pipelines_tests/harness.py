"""What every warehouse test harness offers, so one test runs against DuckDB, BigQuery and Snowflake.

A harness owns an isolated place in its warehouse (a DuckDB file, a BigQuery dataset, a Snowflake
schema) and seeds it through the warehouse's own client, never through the adapter under test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import pyarrow as pa

from planhat_pipelines.warehouses.base import Warehouse


class WarehouseHarness(Protocol):
    kind: str  # "duckdb" | "bigquery" | "snowflake"

    def warehouse(self, name: str = "wh") -> Warehouse:
        """A new adapter instance bound to this harness's isolated dataset/schema."""
        ...

    def create_table(self, table: str, data: pa.Table, *, json_columns: Sequence[str] = ()) -> None:
        """(Re)create ``table`` holding ``data``; ``json_columns`` (JSON text in ``data``) become the
        warehouse's native semi-structured type (DuckDB JSON, BigQuery JSON, Snowflake VARIANT)."""
        ...

    def create_view(self, view: str, select_sql: str) -> None:
        """(Re)create ``view`` as ``select_sql`` (plain SQL valid in every dialect used by tests)."""
        ...

    def execute(self, sql: str) -> None:
        """Run one statement through the warehouse's own client (to change source data in tests)."""
        ...

    def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query through the warehouse's own client (to check what a send wrote)."""
        ...

    def connection_config(self) -> dict[str, Any]:
        """This harness's connection as it would appear under ``connections:`` in the YAML config."""
        ...
