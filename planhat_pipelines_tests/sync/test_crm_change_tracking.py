"""The CRM engine's partial-read path (Snowflake change tracking), which no emulator can run.

fakesnow has no CHANGES/AT, so the engine's ChangeSet branch runs here against a DuckDB warehouse that
keeps a real change log table: an append-only ``<table>__changes`` with a version per change, read with
SQL. The Snowflake SQL itself is checked by sqlglot in warehouses/test_snowflake.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest

from planhat_pipelines.config import CrmSection
from planhat_pipelines.sql_quoting import quote_qualified as quote
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines.warehouses.base import Capabilities, ChangeSet, ChangesUnavailable
from planhat_pipelines.warehouses.duckdb import DuckDBWarehouse
from planhat_pipelines_tests.builders import config_doc, crm_section, parse


class ChangeLogDuckDB(DuckDBWarehouse):
    """A DuckDB warehouse whose tables record their changes in ``<table>__changes`` (version, action, row)."""

    capabilities = Capabilities(change_tracking=True, dialect="duckdb")

    def changes_since(
        self, table: str, columns: Sequence[str], key: str, since: str | None
    ) -> ChangeSet | ChangesUnavailable:
        log = f"{table}__changes"
        now = self.con.execute(f"SELECT COALESCE(max(version), 0) FROM {quote(log)}").fetchall()[0][0]
        empty = pa.table({c: pa.array([], pa.string()) for c in columns})
        if since is None:
            return ChangeSet(empty, pa.array([], pa.string()), str(now))
        oldest = self.con.execute(f"SELECT COALESCE(min(version), 0) FROM {quote(log)}").fetchall()[0][0]
        if int(since) < oldest - 1:
            return ChangesUnavailable(f"offset {since} is older than the retained change log ({oldest})")
        cols = ", ".join(quote(c) for c in columns)
        latest = (
            f"SELECT * FROM {quote(log)} WHERE version > ? "
            f"QUALIFY row_number() OVER (PARTITION BY {quote(key)} ORDER BY version DESC) = 1"
        )
        rows = self.con.sql(f"SELECT {cols} FROM ({latest}) WHERE action = 'INSERT'", params=[int(since)])
        changed = rows.to_arrow_table() if rows is not None else pa.table({})
        deleted = self.con.execute(f"SELECT {quote(key)} FROM ({latest}) WHERE action = 'DELETE'", [int(since)])
        return ChangeSet(changed, pa.array([r[0] for r in deleted.fetchall()], pa.string()), str(now))


def _setup(tmp_path: Path) -> tuple[CrmSection, ChangeLogDuckDB]:
    wh = ChangeLogDuckDB("wh", tmp_path / "wh.duckdb")
    con = wh._writable()
    con.execute("CREATE TABLE accounts (id VARCHAR, name VARCHAR)")
    con.execute("CREATE TABLE accounts__changes (version INTEGER, action VARCHAR, id VARCHAR, name VARCHAR)")
    raw = config_doc(tmp_path, crm=[crm_section(table="accounts")])
    return parse(raw, tmp_path, "c.yaml").crm[0], wh


def _change(wh: ChangeLogDuckDB, version: int, action: str, key: str, name: str | None = None) -> None:
    con = wh._writable()
    con.execute("INSERT INTO accounts__changes VALUES (?, ?, ?, ?)", [version, action, key, name])
    con.execute("DELETE FROM accounts WHERE id = ?", [key])
    if action == "INSERT":
        con.execute("INSERT INTO accounts VALUES (?, ?)", [key, name])


def test_partial_reads_move_the_cursor_with_the_data(tmp_path: Path) -> None:
    section, wh = _setup(tmp_path)
    for version, key in enumerate(["a", "b", "c"], start=1):
        _change(wh, version, "INSERT", key, key.upper())
    with ModelStore(tmp_path / "store.sqlite") as store:
        first = sync_section(section, store, wh)
        assert first.full_read and (first.rows_read, first.inserted) == (3, 3)
        assert store.get_cursor("companies") == "3"  # the starting point taken before the full read
        _change(wh, 4, "INSERT", "b", "B2")
        _change(wh, 5, "DELETE", "c")
        second = sync_section(section, store, wh)
        assert not second.full_read
        assert (second.rows_read, second.updated, second.deleted) == (1, 1, 1)
        assert any("deletes are not applied" in line for line in second.log)
        assert store.get_cursor("companies") == "5"
        names = dict(store.con.execute('SELECT "externalId", name FROM company').fetchall())
        assert names == {"a": "A", "b": "B2", "c": "C"}  # c deleted in the warehouse, kept in Planhat
        assert sync_section(section, store, wh).rows_read == 0


def test_a_failed_partial_sync_leaves_data_and_cursor_as_they_were(tmp_path: Path) -> None:
    section, wh = _setup(tmp_path)
    _change(wh, 1, "INSERT", "a", "A")
    with ModelStore(tmp_path / "store.sqlite") as store:
        sync_section(section, store, wh)
        _change(wh, 2, "INSERT", "a", "A2")
        # The section fails halfway: after the upsert, recording the row hashes fails (the table is gone).
        store.con.execute("DROP TABLE crm_source_hashes")
        with pytest.raises(Exception, match="crm_source_hashes"):
            sync_section(section, store, wh)
        assert store.get_cursor("companies") == "1"
        assert store.con.execute("SELECT name FROM company").fetchall() == [("A",)]


def test_an_offset_too_old_falls_back_to_a_full_read_and_says_why(tmp_path: Path) -> None:
    section, wh = _setup(tmp_path)
    _change(wh, 1, "INSERT", "a", "A")
    with ModelStore(tmp_path / "store.sqlite") as store:
        sync_section(section, store, wh)
        _change(wh, 2, "INSERT", "b", "B")
        _change(wh, 3, "INSERT", "c", "C")
        wh._writable().execute("DELETE FROM accounts__changes WHERE version < 3")  # retention expired
        result = sync_section(section, store, wh)
        assert result.full_read and (result.rows_read, result.inserted) == (3, 2)
        assert any("older than the retained change log" in line for line in result.log)
        assert store.get_cursor("companies") == "3"
