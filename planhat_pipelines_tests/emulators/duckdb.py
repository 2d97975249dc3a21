"""The DuckDB harness: a warehouse file in the test's tmp_path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from planhat_pipelines.sql_quoting import quote_qualified as quote
from planhat_pipelines.warehouses.duckdb import DuckDBWarehouse


class DuckDBHarness:
    kind = "duckdb"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._open: list[DuckDBWarehouse] = []

    def _run(self, fn: Any) -> Any:
        # DuckDB lets one process hold a file read-write, so close the adapters' connections
        # first; they reopen lazily on their next call.
        for wh in self._open:
            wh.close()
        con = duckdb.connect(str(self.path))
        try:
            return fn(con)
        finally:
            con.close()

    def warehouse(self, name: str = "wh") -> DuckDBWarehouse:
        wh = DuckDBWarehouse(name, self.path)
        self._open.append(wh)
        return wh

    def create_table(self, table: str, data: pa.Table, *, json_columns: Sequence[str] = ()) -> None:
        def create(con: duckdb.DuckDBPyConnection) -> None:
            con.register("__seed", data)
            select = ", ".join(
                f"CAST({quote(c)} AS JSON) AS {quote(c)}" if c in json_columns else quote(c) for c in data.column_names
            )
            con.execute(f"CREATE OR REPLACE TABLE {quote(table)} AS SELECT {select} FROM __seed")
            con.unregister("__seed")

        self._run(create)

    def create_view(self, view: str, select_sql: str) -> None:
        self._run(lambda con: con.execute(f"CREATE OR REPLACE VIEW {quote(view)} AS {select_sql}"))

    def execute(self, sql: str) -> None:
        self._run(lambda con: con.execute(sql))

    def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        return list(self._run(lambda con: con.execute(sql).fetchall()))

    def connection_config(self) -> dict[str, Any]:
        # The harness creates its file on first use: exactly what `create: true` allows.
        return {"type": "duckdb", "path": str(self.path), "create": True}

    def close(self) -> None:
        for wh in self._open:
            wh.close()
