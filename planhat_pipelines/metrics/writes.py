"""Writing a freshly computed set of rows over the part of a store table it replaces, touching only what changed.

A computation produces every row of its *scope* (a metric's days in the horizon, a day's health scores) in a
temp table. :func:`replace_rows` makes the stored scope equal to it: rows that are new or whose numbers changed
are merged in, rows no longer produced are deleted, and identical rows are not written at all. A re-run on the
same data therefore writes nothing (a DuckLake UPDATE or DELETE that matches nothing still scans and may write
a snapshot, so the statements are skipped when their counts are 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb

from planhat_pipelines.sql_quoting import quote_identifier as q

#: Relative tolerance under which two numbers count as equal: a sum of doubles may round differently from one
#: run to the next (the aggregation's order is not fixed), which must not count as a change.
RELATIVE_TOLERANCE = 1e-9


def differs_sql(new: str, old: str) -> str:
    """SQL: whether the numbers ``new`` and ``old`` differ (NULL against a number does; both NULL does not)."""
    return (
        f"(({new}) IS NULL) <> (({old}) IS NULL) "
        f"OR abs(({new}) - ({old})) > {RELATIVE_TOLERANCE} * greatest(1.0, abs({old}))"
    )


@dataclass(frozen=True)
class Replaced:
    """What :func:`replace_rows` wrote: rows inserted or updated, and rows deleted."""

    written: int
    deleted: int


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    *,
    target: str,
    new: str,
    keys: tuple[str, ...],
    values: tuple[str, ...],
    scope: str,
    params: Mapping[str, object],
) -> Replaced:
    """Make the rows of ``target`` within ``scope`` equal to the rows of ``new``; write only the differences.

    Args:
        con: The store's connection, inside the caller's transaction.
        target: The store table (it has the ``keys``, the ``values`` and ``computed_at``).
        new: A temp table holding ``keys`` and ``values``, unique on ``keys``; all its rows lie within ``scope``.
        keys: The columns identifying a row.
        values: The numeric columns compared (with :data:`RELATIVE_TOLERANCE`) and written.
        scope: A predicate on ``target``'s columns selecting the rows ``new`` replaces (named parameters).
        params: The parameters ``scope`` uses.

    Returns:
        How many rows were inserted or updated, and how many deleted.
    """
    key_eq = " AND ".join(f"n.{q(k)} = o.{q(k)}" for k in keys)
    changed = " OR ".join(differs_sql(f"n.{q(v)}", f"o.{q(v)}") for v in values)
    columns = ", ".join(q(c) for c in (*keys, *values))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __replace_old AS SELECT {columns} FROM {q(target)} WHERE {scope}", params
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __replace_changed AS SELECT n.* FROM {new} n "
        f"LEFT JOIN (SELECT *, true AS __found FROM __replace_old) o ON {key_eq} "
        f"WHERE o.__found IS NULL OR {changed}"
    )
    written = int(con.execute("SELECT count(*) FROM __replace_changed").fetchall()[0][0])
    gone = f"NOT EXISTS (SELECT 1 FROM {new} n WHERE {key_eq})"
    deleted = int(con.execute(f"SELECT count(*) FROM __replace_old o WHERE {gone}").fetchall()[0][0])
    if deleted:
        stored_eq = " AND ".join(f"n.{q(k)} = {q(target)}.{q(k)}" for k in keys)
        con.execute(
            f"DELETE FROM {q(target)} WHERE ({scope}) AND NOT EXISTS (SELECT 1 FROM {new} n WHERE {stored_eq})", params
        )
    if written:
        match = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in keys)
        sets = ", ".join(f"{q(v)} = s.{q(v)}" for v in values)
        inserted = ", ".join(f"s.{q(c)}" for c in (*keys, *values))
        con.execute(
            f"MERGE INTO {q(target)} t USING __replace_changed s ON {match} "
            f"WHEN MATCHED THEN UPDATE SET {sets}, computed_at = now() "
            f"WHEN NOT MATCHED THEN INSERT ({columns}, computed_at) VALUES ({inserted}, now())"
        )
    return Replaced(written, deleted)
