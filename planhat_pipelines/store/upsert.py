"""The set-based upsert of one model: cast the source, classify its records, update the changed, insert the new.

Each step is one SQL statement over the whole source (temp tables ``__upsert_src`` and ``__upsert_cls``),
so the cost is a join with the model table, never a loop over rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.models import ModelSpec
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.sql_quoting import quote_literal as lit
from planhat_pipelines.store.change_log import LogContext, field_changes_sql

#: SQL for a new native id: 24 hex characters, like Planhat's ObjectIds.
NEW_ID_SQL = "substr(replace(CAST(gen_random_uuid() AS VARCHAR), '-', ''), 1, 24)"

#: The stored custom fields with the source's merged in (a null source leaves them as they are).
_CUSTOM_NEW = "json_merge_patch(COALESCE(t.custom, '{}'), COALESCE(s.custom, '{}'))"


def _key_order_free(expr: str) -> str:
    """SQL comparing a JSON object's top-level fields whatever their order: the fields sorted by key, as text.

    ``json_merge_patch`` puts the patched keys last, and two writers patch the custom fields (the CRM receive and
    the calculated metrics), so the stored order flips between them although no value changed.
    """
    return f"CAST(map_from_entries(list_sort(map_entries(CAST({expr} AS MAP(VARCHAR, JSON))))) AS VARCHAR)"


@dataclass(frozen=True)
class UpsertCounts:
    """What an upsert did, by record."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            self.inserted + other.inserted, self.updated + other.updated, self.unchanged + other.unchanged
        )


@dataclass(frozen=True)
class UpsertPlan:
    """One upsert of ``spec`` matched on ``key``: which source columns it writes and how.

    Attributes:
        spec: The model.
        key: The matching column (unique, non-null in the source).
        fields: The standard fields the source holds, besides ``key`` and ``id``.
        custom: The source holds ``custom`` (a JSON object merged into the stored one).
        null_overwrites: A null source value overwrites the stored one (else it leaves it alone).
    """

    spec: ModelSpec
    key: str
    fields: tuple[str, ...]
    custom: bool
    null_overwrites: bool

    @classmethod
    def of(cls, spec: ModelSpec, names: Sequence[str], key: str, *, null_overwrites: bool) -> UpsertPlan:
        """The plan for a source with columns ``names``."""
        fields = tuple(n for n in names if n not in (key, "custom", "id"))
        return cls(spec, key, fields, "custom" in names, null_overwrites)

    @property
    def table(self) -> str:
        """The model table, quoted."""
        return q(self.spec.slug)

    def new_value(self, name: str) -> str:
        """SQL for the value field ``name`` gets (``s`` the source, ``t`` the stored record)."""
        return f"s.{q(name)}" if self.null_overwrites else f"COALESCE(s.{q(name)}, t.{q(name)})"


def field_type(spec: ModelSpec, name: str) -> str:
    """The DuckDB type of standard field ``name``.

    Raises:
        PlanhatPipelinesError: ``spec`` has no such field.
    """
    field = spec.field(name)
    if field is None:
        raise PlanhatPipelinesError(f"{spec.name} has no standard field '{name}'")
    return field.type.duckdb_type


def cast_source(con: duckdb.DuckDBPyConnection, plan: UpsertPlan, source: str) -> None:
    """Copy relation ``source`` into ``__upsert_src`` with each column cast to its stored type."""
    key = plan.key
    casts = [f"CAST(s.{q(key)} AS VARCHAR) AS {q(key)}"]
    casts += [f"CAST(s.{q(n)} AS {field_type(plan.spec, n)}) AS {q(n)}" for n in plan.fields]
    if plan.custom:
        casts.append("CAST(s.custom AS JSON) AS custom")
    con.execute(f"CREATE OR REPLACE TEMP TABLE __upsert_src AS SELECT {', '.join(casts)} FROM {source} s")


def classify(con: duckdb.DuckDBPyConnection, plan: UpsertPlan) -> UpsertCounts:
    """Mark each source record new, changed or unchanged (``__upsert_cls``) and count them."""
    changed = [f"({plan.new_value(n)} IS DISTINCT FROM t.{q(n)})" for n in plan.fields]
    if plan.custom:
        new, old = _key_order_free(_CUSTOM_NEW), _key_order_free("COALESCE(t.custom, '{}')")
        changed.append(f"({new} IS DISTINCT FROM {old})")
    changed_expr = " OR ".join(changed) or "FALSE"
    key = q(plan.key)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __upsert_cls AS SELECT s.*, t.id AS __tid, "
        f"t.id IS NULL AS __new, t.id IS NOT NULL AND ({changed_expr}) AS __changed "
        f"FROM __upsert_src s LEFT JOIN {plan.table} t ON t.{key} = s.{key}"
    )
    counts = con.execute(
        "SELECT count(*) FILTER (WHERE __new), count(*) FILTER (WHERE __changed), "
        "count(*) FILTER (WHERE NOT __new AND NOT __changed) FROM __upsert_cls"
    ).fetchall()[0]
    return UpsertCounts(int(counts[0]), int(counts[1]), int(counts[2]))


def update_changed(con: duckdb.DuckDBPyConnection, plan: UpsertPlan) -> None:
    """Write the changed records over their stored ones."""
    sets = [f"{q(n)} = {plan.new_value(n)}" for n in plan.fields]
    if plan.custom:
        sets.append(f"custom = {_CUSTOM_NEW}")
    sets.append("_updated_at = now()")
    con.execute(
        f"UPDATE {plan.table} AS t SET {', '.join(sets)} FROM __upsert_cls AS s WHERE s.__changed AND t.id = s.__tid"
    )


def insert_new(con: duckdb.DuckDBPyConnection, plan: UpsertPlan) -> None:
    """Insert the new records, each with a new native id unless the key is ``id`` itself."""
    insert_cols = [plan.key, *plan.fields] + (["custom"] if plan.custom else [])
    col_sql = ", ".join(q(c) for c in insert_cols)
    # custom goes through json_merge_patch so stored JSON is normalised like updates are.
    sel_sql = ", ".join(
        "json_merge_patch('{}', COALESCE(s.custom, '{}'))" if c == "custom" else f"s.{q(c)}" for c in insert_cols
    )
    if plan.key != "id":
        con.execute(
            f"INSERT INTO {plan.table} (id, {col_sql}, _updated_at) "
            f"SELECT {NEW_ID_SQL}, {sel_sql}, now() FROM __upsert_cls s WHERE s.__new"
        )
    else:
        con.execute(
            f"INSERT INTO {plan.table} ({col_sql}, _updated_at) "
            f"SELECT {sel_sql}, now() FROM __upsert_cls s WHERE s.__new"
        )


def log_changes(con: duckdb.DuckDBPyConnection, plan: UpsertPlan, log: LogContext, *, inserted: bool) -> None:
    """Append the change-log rows of the classified records: the updates (before they are written, to see the
    old values) or the inserts (after, to see their new ids). One statement for all of them."""
    pairs = [(n, f"t.{q(n)}", f"s.{q(n)}" if inserted else plan.new_value(n)) for n in plan.fields]
    custom = None
    if plan.custom:
        custom = ("NULL", "s.custom") if inserted else ("t.custom", _CUSTOM_NEW)
    if inserted:
        pairs = [(n, "NULL", new) for n, _, new in pairs]
    key = q(plan.key)
    rows = "s.__new" if inserted else "s.__changed"
    join = f"JOIN {plan.table} t ON t.{key} = s.{key}" if inserted else f"JOIN {plan.table} t ON t.id = s.__tid"
    con.execute(
        f"INSERT INTO change_log SELECT now(), {lit(log.section)}, {lit(log.run_id)}, {lit(plan.spec.slug)}, "
        f"s.{key}, t.id, {lit('insert' if inserted else 'update')}, {field_changes_sql(pairs, custom)} "
        f"FROM __upsert_cls s {join} WHERE {rows}"
    )


def apply(con: duckdb.DuckDBPyConnection, plan: UpsertPlan, log: LogContext | None = None) -> UpsertCounts:
    """Classify ``__upsert_src`` (made by :func:`cast_source`), write what changed, drop the temp tables.

    Call inside a transaction: the counts and the writes must describe the same snapshot. With ``log``, each
    inserted and updated record gets its change-log row (see ``change_log.py``) in the same transaction.
    """
    counts = classify(con, plan)
    if counts.updated:
        if log is not None:
            log_changes(con, plan, log, inserted=False)
        update_changed(con, plan)
    if counts.inserted:
        insert_new(con, plan)
        if log is not None:
            log_changes(con, plan, log, inserted=True)
    con.execute("DROP TABLE __upsert_cls")
    con.execute("DROP TABLE __upsert_src")
    return counts
