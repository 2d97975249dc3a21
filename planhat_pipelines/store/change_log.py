"""The per-record change log: what every sync did to every record, field by field, for a while.

One row per record a sync inserted, updated, archived, restored or deleted in the store, or sent to (or
deleted from) a warehouse, with the fields it changed as ``{"field": {"old": ..., "new": ...}}``. The rows are
written by the sync engines in the same transaction as the change they describe (a rolled-back run leaves
no row), from their staged temp tables in one statement each: never one row at a time. A run that changes
nothing writes nothing here, so a no-change re-sync costs what it did before the log existed.

Rows older than the store's ``change_log_days`` (default 14) are deleted by the daily maintenance
(:meth:`ChangeLog.prune_change_log`). The DuckLake snapshot history (``history.py``) reaches further back
for the store's own records; this log also covers sends and deletes, and needs no snapshot scan to read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from planhat_pipelines.store.transactions import Transactional

#: The operations a change-log row records.
OPERATIONS = ("insert", "update", "archive", "restore", "delete", "send", "send_delete")

CHANGE_LOG_DDL = """CREATE TABLE IF NOT EXISTS change_log (
        changed_at TIMESTAMP NOT NULL, section VARCHAR NOT NULL, run_id VARCHAR NOT NULL, model VARCHAR NOT NULL,
        "key" VARCHAR, record_id VARCHAR, op VARCHAR NOT NULL, fields JSON)"""

#: The columns of ``change_log`` in order, for the engines' ``INSERT INTO change_log SELECT ...``.
CHANGE_LOG_COLUMNS = ("changed_at", "section", "run_id", "model", "key", "record_id", "op", "fields")


@dataclass(frozen=True)
class Change:
    """One change-log row.

    Attributes:
        changed_at: When the run wrote it (UTC, the transaction's time).
        section: The sync section.
        run_id: The sync-log run (``planhat-pipelines logs`` shows it).
        model: The model's table name (``company``, ``license``, ...).
        key: The record's key as the section matches it (sourceId, externalId, email, id).
        record_id: The record's native id in the store (None for a warehouse row with no record).
        op: One of :data:`OPERATIONS`.
        fields: Each changed field's ``(old, new)``; empty for a delete.
    """

    changed_at: datetime
    section: str
    run_id: str
    model: str
    key: str | None
    record_id: str | None
    op: str
    fields: dict[str, tuple[Any, Any]]

    def describe(self) -> str:
        """One line: when, what, which record, and each field old → new."""
        head = f"{self.changed_at:%Y-%m-%d %H:%M:%S}  {self.section:<18} {self.op:<11} {self.key or '-'}"
        parts = [f"{name}: {_show(old)} → {_show(new)}" for name, (old, new) in sorted(self.fields.items())]
        return head + (f"  {'; '.join(parts)}" if parts else "") + f"  (run {self.run_id})"


def _show(value: Any) -> str:
    return "∅" if value is None else json.dumps(value, ensure_ascii=False, default=str)


def field_changes_sql(pairs: list[tuple[str, str, str]], custom: tuple[str, str] | None = None) -> str:
    """SQL for the ``fields`` JSON of one row: ``{"name": {"old": o, "new": n}}`` for the pairs that differ.

    Args:
        pairs: ``(field name, SQL of the old value, SQL of the new value)``; values are turned into JSON
            (``to_json``), so numbers stay numbers and text stays text. Names are catalog field names.
        custom: SQL of the old and new custom-fields JSON objects: each top-level custom field that differs
            is one entry ``custom.<name>``.
    """
    entries = [
        f"CASE WHEN ({old}) IS DISTINCT FROM ({new}) THEN "
        f"{{'k': '{name}', 'v': json_object('old', to_json({old}), 'new', to_json({new}))}} END"
        for name, old, new in pairs
    ]
    items = f"list_filter([{', '.join(entries)}], __e -> __e IS NOT NULL)" if entries else None
    if custom is not None:
        old_map, new_map = (f"CAST(COALESCE({c}, '{{}}') AS MAP(VARCHAR, JSON))" for c in custom)
        names = f"list_distinct(list_concat(map_keys({old_map}), map_keys({new_map})))"
        custom_items = (
            f"list_transform(list_filter({names}, __f -> {old_map}[__f] IS DISTINCT FROM {new_map}[__f]), "
            f"__f -> {{'k': 'custom.' || __f, 'v': json_object('old', {old_map}[__f], 'new', {new_map}[__f])}})"
        )
        items = custom_items if items is None else f"list_concat({items}, {custom_items})"
    if items is None:
        return "CAST('{}' AS JSON)"
    # A MAP(VARCHAR, JSON) cast to JSON is an object keyed by field; unchanged fields are filtered out.
    return f"CAST(map_from_entries(list_transform({items}, __e -> {{'key': __e.k, 'value': __e.v}})) AS JSON)"


@dataclass(frozen=True)
class LogContext:
    """Who writes the change-log rows of a store write: the section and its sync-log run."""

    section: str
    run_id: str


class ChangeLog(Transactional):
    """Reading and pruning the change log (the engines write it in their own transactions)."""

    def changes(
        self,
        *,
        section: str | None = None,
        key: str | None = None,
        record_id: str | None = None,
        run_id: str | None = None,
        op: str | None = None,
        limit: int = 100,
    ) -> list[Change]:
        """The newest ``limit`` change-log rows matching every filter given, newest first."""
        where, params = [], []
        filters = (("section", section), ('"key"', key), ("record_id", record_id), ("run_id", run_id), ("op", op))
        for column, value in filters:
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        # One record's rows: the filter first, materialized, then the top-N; DuckDB's top-N over the DuckLake scan
        # otherwise reads every row's columns (285 ms against 80 ms among 110,000 rows, BENCHMARKS.md issue 19).
        materialized = "MATERIALIZED " if key is not None or record_id is not None else ""
        rows = self.con.execute(
            f'WITH m AS {materialized}(SELECT changed_at, section, run_id, model, "key", record_id, op, fields '
            f"FROM change_log {'WHERE ' + ' AND '.join(where) if where else ''}) "
            'SELECT changed_at, section, run_id, model, "key", record_id, op, CAST(fields AS VARCHAR) FROM m '
            "ORDER BY changed_at DESC, op LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [
            Change(
                at,
                sec,
                run,
                model,
                k,
                rid,
                op,
                {name: (v.get("old"), v.get("new")) for name, v in json.loads(fields or "{}").items()},
            )
            for at, sec, run, model, k, rid, op, fields in rows
        ]

    def prune_change_log(self, older_than: datetime) -> int:
        """Delete the change-log rows written before ``older_than``; returns how many went."""
        return int(self.write("DELETE FROM change_log WHERE changed_at < CAST(? AS TIMESTAMP)", [older_than])[0][0])
