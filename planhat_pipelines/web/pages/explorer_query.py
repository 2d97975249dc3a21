"""The Data Explorer's SQL: a checked :class:`ExplorerQuery` run on the store, set-based, every value bound.

Identifiers come only from the model catalog (quoted with ``quote_identifier``); a custom field is read with
``json_extract_string(custom, ?)`` and its JSON path bound; filter values are bound and cast to the field's type
by DuckDB (``CAST(? AS <type>)``), after one query has checked that each of them casts. Only the page's rows are
fetched (``LIMIT``/``OFFSET``, bound), the count and the chart's series are aggregated in SQL. Archived records
(``_archived_at`` set by ``on_missing: archive``) are in no table, count, series or custom-field list.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow.csv as pacsv

from planhat_pipelines.models import FieldType
from planhat_pipelines.sql_quoting import quote_identifier
from planhat_pipelines.store import ModelStore
from planhat_pipelines.web.charts import Series
from planhat_pipelines.web.pages.explorer_params import (
    SORT_BY_AGGREGATE,
    ExplorerError,
    ExplorerQuery,
    Filter,
    did_you_mean,
    is_custom,
    json_path,
)

__all__ = ["ExplorerError", "ExplorerQuery", "ExplorerResult", "custom_fields", "explore", "export_csv"]

#: A SQL fragment and the values bound to its ``?``, in order.
Sql = tuple[str, list[Any]]

#: Custom fields offered per model (sorted by name).
CUSTOM_FIELDS_CAP = 200
#: Groups drawn in the chart: the ones with the largest aggregate.
TOP_GROUPS = 5
#: Rows a CSV export holds at most.
CSV_ROW_CAP = 100_000
#: A filter value a custom field compares with as a number (what DuckDB casts to DOUBLE, bar inf and nan).
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
#: The chart's name for records without a group value.
NO_GROUP = "(none)"
_VALUE_HINTS = {
    "DATE": "a date such as 2026-03-31",
    "TIMESTAMP": "a date or time such as 2026-03-31 or 2026-03-31 14:00",
    "BOOLEAN": "true or false",
}


@dataclass(frozen=True)
class ExplorerResult:
    """A page of the query's table, its row count, and the series over time (when ``time`` is set)."""

    query: ExplorerQuery
    headers: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    total: int
    series: tuple[Series, ...]
    custom_fields: tuple[str, ...]

    @property
    def pages(self) -> int:
        """How many pages the table has (at least one)."""
        return max(1, -(-self.total // self.query.limit))


def custom_fields(con: duckdb.DuckDBPyConnection, model: str) -> list[str]:
    """The custom field names ``model``'s records hold, sorted, the first :data:`CUSTOM_FIELDS_CAP`."""
    rows = con.execute(
        f"SELECT k FROM (SELECT DISTINCT unnest(json_keys(custom)) AS k FROM {quote_identifier(model)} "
        "WHERE _archived_at IS NULL) ORDER BY k LIMIT ?",
        [CUSTOM_FIELDS_CAP],
    ).fetchall()
    return [str(k) for (k,) in rows]


def _number(value: str) -> bool:
    return NUMBER.fullmatch(value.strip()) is not None


class _Builder:
    """The SQL of one query: each method returns a fragment and its bound values."""

    def __init__(self, query: ExplorerQuery) -> None:
        self.query = query
        self.spec = query.spec
        self.source = quote_identifier(query.model)

    def sql_type(self, name: str) -> str:
        """The DuckDB type a standard field's values compare as (JSON compares as its text)."""
        found = self.spec.field(name)
        assert found is not None  # the query's fields were checked against the catalog
        return "VARCHAR" if found.type is FieldType.JSON else found.type.duckdb_type

    def expr(self, name: str) -> Sql:
        if is_custom(name):
            return "json_extract_string(custom, ?)", [json_path(name)]
        column = quote_identifier(name)
        field = self.spec.field(name)
        return (f"CAST({column} AS VARCHAR)", []) if field and field.type is FieldType.JSON else (column, [])

    def numeric(self, name: str) -> Sql:
        """``name`` as a number: a custom field's text through ``TRY_CAST`` (not a number: NULL)."""
        sql, params = self.expr(name)
        return (f"TRY_CAST({sql} AS DOUBLE)", params) if is_custom(name) else (sql, params)

    def condition(self, flt: Filter) -> Sql:
        sql, params = self.expr(flt.field)
        if flt.op in ("empty", "notempty"):
            return f"COALESCE(CAST({sql} AS VARCHAR), '') {'=' if flt.op == 'empty' else '<>'} ''", params
        if flt.op == "contains":
            return f"contains(lower(CAST({sql} AS VARCHAR)), lower(?))", [*params, flt.value]
        if is_custom(flt.field):
            # A custom field's type is unknown: a number compares as one (9 < 10), anything else as text.
            if _number(flt.value):
                return f"TRY_CAST({sql} AS DOUBLE) {OPS_SQL[flt.op]} CAST(? AS DOUBLE)", [*params, flt.value]
            return f"{sql} {OPS_SQL[flt.op]} ?", [*params, flt.value]
        return f"{sql} {OPS_SQL[flt.op]} CAST(? AS {self.sql_type(flt.field)})", [*params, flt.value]

    def where(self, *extra: Sql) -> Sql:
        """The filters and ``extra``, on live records only (archived ones are hidden from every page)."""
        parts = [("_archived_at IS NULL", []), *(self.condition(f) for f in self.query.filters), *extra]
        return " WHERE " + " AND ".join(f"({sql})" for sql, _ in parts), [v for _, params in parts for v in params]

    def aggregate(self, over: str | None = None) -> Sql:
        """The aggregate; with ``over`` it aggregates that column (of a subquery) instead of the field."""
        function, field = self.query.agg_function, self.query.agg_field
        if field is None:
            return "count(*)", []
        sql, params = (over, []) if over else self.numeric(field)
        return f"{function}({sql})", params

    def order_key(self, name: str) -> Sql:
        sql, params = self.expr(name)
        if is_custom(name):  # numbers in numeric order first, then text
            return f"TRY_CAST({sql} AS DOUBLE) {self.direction} NULLS LAST, {sql}", params + params
        return sql, params

    @property
    def direction(self) -> str:
        return "DESC" if self.query.desc else "ASC"

    def table(self) -> Sql:
        """The table's query, every row (the caller adds ``LIMIT``)."""
        query = self.query
        if query.group is not None:
            return self.grouped()
        selected = [self.expr(c) for c in query.shown_columns]
        select = ", ".join(
            f"{sql} AS {quote_identifier(c)}" for (sql, _), c in zip(selected, query.shown_columns, strict=True)
        )
        where, where_params = self.where()
        order, order_params = self.order_key(query.sort) if query.sort else ('"id"', [])
        return (
            f'SELECT {select} FROM {self.source}{where} ORDER BY {order} {self.direction} NULLS LAST, "id"',
            [v for _, params in selected for v in params] + where_params + order_params,
        )

    def grouped(self) -> Sql:
        query = self.query
        assert query.group is not None
        group, group_params = self.expr(query.group)
        aggregate, agg_params = self.aggregate()
        where, where_params = self.where()
        by_group = query.sort is not None and query.sort != SORT_BY_AGGREGATE
        # Unsorted, the largest aggregate comes first.
        direction = self.direction if query.sort else "DESC"
        return (
            f"SELECT {group} AS {quote_identifier(query.group)}, {aggregate} AS {quote_identifier(query.agg_label)} "
            f"FROM {self.source}{where} GROUP BY 1 ORDER BY {1 if by_group else 2} {direction} NULLS LAST, 1",
            group_params + agg_params + where_params,
        )

    def count(self) -> Sql:
        where, params = self.where()
        if self.query.group is None:
            return f"SELECT count(*) FROM {self.source}{where}", params
        group, group_params = self.expr(self.query.group)
        return f"SELECT count(*) FROM (SELECT {group} FROM {self.source}{where} GROUP BY 1)", group_params + params

    def series(self) -> Sql:
        """``(group, bucket day, value)`` per bucket, of the top groups (or of all records: group NULL)."""
        query = self.query
        assert query.time is not None
        time = quote_identifier(query.time)
        where, where_params = self.where((f"{time} IS NOT NULL", []))
        bucket = f"CAST(date_trunc(?, {time}) AS DATE)"
        if query.group is None:
            aggregate, agg_params = self.aggregate()
            return (
                f"SELECT NULL, {bucket}, CAST({aggregate} AS DOUBLE) FROM {self.source}{where} GROUP BY 2 ORDER BY 2",
                [query.bucket, *agg_params, *where_params],
            )
        group, group_params = self.expr(query.group)
        value, value_params = self.numeric(query.agg_field) if query.agg_field else ("NULL", [])
        aggregate, _ = self.aggregate(over="v")
        return (
            f"WITH base AS (SELECT COALESCE(CAST({group} AS VARCHAR), ?) AS g, {bucket} AS t, {value} AS v "
            f"FROM {self.source}{where}), "
            f"top AS (SELECT g FROM base GROUP BY g ORDER BY {aggregate} DESC NULLS LAST, g LIMIT ?) "
            f"SELECT g, t, CAST({aggregate} AS DOUBLE) FROM base WHERE g IN (SELECT g FROM top) "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            [*group_params, NO_GROUP, query.bucket, *value_params, *where_params, TOP_GROUPS],
        )


OPS_SQL = {"eq": "=", "ne": "IS DISTINCT FROM", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _check(con: duckdb.DuckDBPyConnection, query: ExplorerQuery, known: list[str]) -> None:
    """Refuse custom fields no record holds and filter values that do not cast to their field's type."""
    used = query.custom_fields_used()
    if used:
        found = con.execute(
            f"SELECT k FROM (SELECT DISTINCT unnest(json_keys(custom)) AS k FROM {quote_identifier(query.model)} "
            "WHERE _archived_at IS NULL) WHERE list_contains(?, k)",
            [sorted(used)],
        ).fetchall()
        missing = sorted(used - {k for (k,) in found})
        if missing:
            name = missing[0]
            offered = ", ".join(f"custom.{k}" for k in known[:20]) + (", …" if len(known) > 20 else "")
            raise ExplorerError(
                f"custom.{name}: no {query.model} record has a custom field '{name}'{did_you_mean(name, known)}",
                fix=f"use one of {offered or '(none: no record has custom fields)'}",
            )
    builder = _Builder(query)
    typed = [
        (f, builder.sql_type(f.field))
        for f in query.filters
        if f.op in OPS_SQL and not is_custom(f.field) and builder.sql_type(f.field) != "VARCHAR"
    ]
    if not typed:
        return
    failed = con.execute(
        "SELECT " + ", ".join(f"TRY_CAST(? AS {sql_type}) IS NULL" for _, sql_type in typed),
        [f.value for f, _ in typed],
    ).fetchall()[0]
    for (flt, sql_type), bad in zip(typed, failed, strict=True):
        if bad:
            hint = _VALUE_HINTS.get(sql_type, "a number such as 1200 or 12.5")
            raise ExplorerError(
                f"f={flt.param}: '{flt.value}' is not a value of {flt.field} ({sql_type})",
                fix=f"give {hint}",
            )


def explore(store: ModelStore, query: ExplorerQuery) -> ExplorerResult:
    """One page of ``query``'s table, its row count and, with ``query.time``, its series over time.

    Raises:
        ExplorerError: A custom field no record of the model holds, or a filter value that is not of its field's type.
    """
    con = store.con
    known = custom_fields(con, query.model)
    _check(con, query, known)
    builder = _Builder(query)
    sql, params = builder.table()
    cursor = con.execute(f"{sql} LIMIT ? OFFSET ?", [*params, query.limit, (query.page - 1) * query.limit])
    headers = tuple(d[0] for d in cursor.description or ())
    rows = tuple(cursor.fetchall())
    total = int(con.execute(*builder.count()).fetchall()[0][0])
    series: list[Series] = []
    if query.time is not None:
        points = con.execute(*builder.series()).fetchall()
        # At most TOP_GROUPS x buckets aggregated points, not records.
        names = list(dict.fromkeys(g for g, _, _ in points))
        series = [
            Series(query.agg_label if g is None else str(g), tuple((t, v) for name, t, v in points if name == g))
            for g in names
        ]
    return ExplorerResult(query, headers, rows, total, tuple(series), tuple(known))


def export_csv(store: ModelStore, query: ExplorerQuery) -> bytes:
    """``query``'s whole table (every page, at most :data:`CSV_ROW_CAP` rows) as CSV with a header line.

    Raises:
        ExplorerError: As :func:`explore`.
    """
    con = store.con
    _check(con, query, custom_fields(con, query.model))
    sql, params = _Builder(query).table()
    reader = con.execute(f"{sql} LIMIT ?", [*params, CSV_ROW_CAP]).to_arrow_reader(10_000)
    sink = io.BytesIO()
    with pacsv.CSVWriter(sink, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
    return sink.getvalue()
