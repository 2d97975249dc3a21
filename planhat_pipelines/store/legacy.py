"""The single-file store of earlier releases: recognised (never opened as a catalog) and migrated.

An earlier release kept the whole store in one DuckDB file (``store: {path: data/planhat.duckdb}``).
:func:`migrate_store` copies every table of such a store, rows, cursors, rejects and sync log included, into
a DuckLake. The pinned DuckDB (1.5.5) reads files of DuckDB 1.x; a file written by DuckDB 2.0 it cannot open,
so :func:`migrate_store` also takes the folder that DuckDB 2.0's ``EXPORT DATABASE`` writes (README: "Moving a
store from an earlier release").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.models import MODELS
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.sql_quoting import quote_literal
from planhat_pipelines.store.location import CATALOG_ALIAS, StoreLocation
from planhat_pipelines.store.schema import USAGE_TABLES, normalise_keys
from planhat_pipelines.store.usage_daily import backfill_statements

#: Where the README explains the export of a DuckDB 2.0 file.
EXPORT_STEPS = "README.md, 'Moving a store from an earlier release'"


def _newer_file(exc: duckdb.Error) -> str:
    """What to say of a file a newer DuckDB wrote (the previous release's 2.0), or '' for another error."""
    text = str(exc)
    if "version number" not in text and "newer version" not in text:
        return ""
    return f"was written by DuckDB 2.0, which DuckDB {duckdb.__version__} cannot read ({text.splitlines()[0]})"


def _is_single_file_store(con: duckdb.DuckDBPyConnection, catalog: str) -> bool:
    names = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?", [catalog]
        ).fetchall()
    }
    return "sync_runs" in names and not any(n.startswith("ducklake_") for n in names)


def refuse_single_file_store(location: StoreLocation) -> None:
    """Refuse to open an earlier release's single-file store as a DuckDB-file catalog (it would be changed).

    Raises:
        PlanhatPipelinesError: the catalog file is such a store, or a DuckDB file this DuckDB cannot read.
    """
    if location.kind != "duckdb" or location.catalog is None or not location.catalog.exists():
        return
    try:
        con = duckdb.connect(str(location.catalog), read_only=True)
    except duckdb.Error as exc:
        if _newer_file(exc):
            raise PlanhatPipelinesError(
                f"store catalog {location.catalog} {_newer_file(exc)}. "
                f"Fix: if it is a store of an earlier release, export it and migrate the export (see {EXPORT_STEPS})"
            ) from exc
        return  # locked by its owner, or not a DuckDB file: attaching it reports that
    try:
        if _is_single_file_store(con, con.execute("SELECT current_database()").fetchall()[0][0]):
            raise PlanhatPipelinesError(
                f"{location.catalog} is a single-file store of an earlier release, not a DuckLake catalog. "
                f"Fix: point 'store: catalog:' at a new file (e.g. {location.catalog.with_suffix('.sqlite')}) "
                f"and copy this one into it with 'planhat-pipelines migrate-store {location.catalog}'"
            )
    finally:
        con.close()


@dataclass(frozen=True)
class TableCopy:
    """One table moved: its rows in the source and in the store afterwards."""

    table: str
    source_rows: int
    store_rows: int


def _open_source(con: duckdb.DuckDBPyConnection, source: Path) -> str:
    """Make ``source`` readable in ``con``; returns the catalog name its tables are in."""
    if source.is_dir():
        if not (source / "schema.sql").exists():
            raise PlanhatPipelinesError(
                f"{source} is a folder without schema.sql, so not an EXPORT DATABASE folder. "
                f"Fix: pass the store file, or the folder DuckDB's EXPORT DATABASE wrote (see {EXPORT_STEPS})"
            )
        con.execute("ATTACH ':memory:' AS legacy")
        con.execute("USE legacy")
        con.execute(f"IMPORT DATABASE {quote_literal(str(source))}")
        con.execute(f"USE {CATALOG_ALIAS}")
        return "legacy"
    try:
        con.execute(f"ATTACH {quote_literal(str(source))} AS legacy (READ_ONLY)")
    except duckdb.Error as exc:
        if _newer_file(exc):
            raise PlanhatPipelinesError(
                f"{source} {_newer_file(exc)}. "
                f"Fix: export it with DuckDB 2.0 and migrate the export folder instead (see {EXPORT_STEPS})"
            ) from exc
        raise PlanhatPipelinesError(f"{source} cannot be opened ({exc}). Fix: pass the old store's file") from exc
    return "legacy"


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
        [catalog, table],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def _copy_sql(con: duckdb.DuckDBPyConnection, source: str, table: str) -> str | None:
    """INSERT of ``source.table`` into the store's table, by column name, cast to the store's types."""
    have = _columns(con, source, table)
    want = _columns(con, CATALOG_ALIAS, table)
    if not have or not want:
        return None
    values = {c: f"TRY_CAST({q(c)} AS {t})" for c, t in want.items() if c in have}
    if table == "rejected_rows" and "fingerprint" not in have:  # the first release: one record per key+reason
        values["fingerprint"] = "'v1:' || reason"
        values["permanent"] = "false"
    names = ", ".join(q(c) for c in values)
    return f"INSERT INTO {q(table)} ({names}) SELECT {', '.join(values.values())} FROM {source}.main.{q(table)}"


def migrate_store(source: Path, location: StoreLocation) -> list[TableCopy]:
    """Copy every table of an earlier release's store into the DuckLake at ``location``, in one commit.

    Args:
        source: The old store file (DuckDB 1.x), or the folder DuckDB 2.0's ``EXPORT DATABASE`` wrote of it.
        location: The new store; it must hold no rows yet (so a second run cannot double them).

    Returns:
        Each table with its rows before and after; equal counts are checked before the commit.

    Raises:
        PlanhatPipelinesError: the source cannot be read, the store already holds rows, or a count differs
            (nothing is then committed).
    """
    from planhat_pipelines.store.store import ModelStore  # the store module imports this one

    if not source.exists():
        raise PlanhatPipelinesError(f"{source} does not exist. Fix: pass the old store's file (store.path)")
    with ModelStore(location) as store:
        con = store.con
        catalog = _open_source(con, source)
        if not _is_single_file_store(con, catalog):
            raise PlanhatPipelinesError(f"{source} holds no sync_runs table, so it is not a planhat_pipelines store")
        tables = [t for t in _columns_tables(con, catalog) if _columns(con, CATALOG_ALIAS, t)]
        occupied = [t for t in tables if con.execute(f"SELECT count(*) FROM {q(t)}").fetchall()[0][0]]
        if occupied:
            raise PlanhatPipelinesError(
                f"the store {location.describe()} already holds rows ({', '.join(occupied)}). "
                "Fix: migrate into a new, empty store (another catalog file and data path)"
            )

        def copy() -> list[TableCopy]:
            copies = []
            for table in tables:
                sql = _copy_sql(con, catalog, table)
                if sql is None:
                    continue
                con.execute(sql)
                before = con.execute(f"SELECT count(*) FROM {catalog}.main.{q(table)}").fetchall()[0][0]
                after = con.execute(f"SELECT count(*) FROM {q(table)}").fetchall()[0][0]
                if before != after:
                    raise PlanhatPipelinesError(
                        f"migrating {table}: {before} rows in {source} but {after} copied; nothing was committed. "
                        "Fix: report this as a bug with the table's schema"
                    )
                copies.append(TableCopy(table, int(before), int(after)))
            for model in MODELS.values():  # keys as the CRM sync now matches them (earlier releases kept padding)
                normalise_keys(con, model)
            if "usage_daily" not in {c.table for c in copies}:
                # The new store's usage_daily was created empty, before the rows came: the series of the copied rows.
                for sql in backfill_statements(USAGE_TABLES):
                    con.execute(sql)
            return copies

        return store.atomic(copy)


def _columns_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_catalog = ? AND table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name",
        [catalog],
    ).fetchall()
    return [r[0] for r in rows]
