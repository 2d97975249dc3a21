"""Seeding the store for the metrics tests: companies through the real upsert, usage rows with plain SQL."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from planhat_pipelines.store import ModelStore

#: The day every test computes for (its horizon and windows are counted back from it).
TODAY = date(2026, 3, 10)


def companies(store: ModelStore, *external_ids: str, **columns: list[Any]) -> dict[str, str]:
    """Upsert companies keyed by ``externalId`` (``columns`` adds fields, e.g. ``custom``); their ids by externalId."""
    store.upsert_arrow("company", pa.table({"externalId": list(external_ids), **columns}), "externalId")
    return {str(ext): str(cid) for ext, cid in store.con.execute('SELECT "externalId", id FROM company').fetchall()}


def activities(store: ModelStore, rows: list[tuple[str, str, str | None, str, datetime, float | None]]) -> None:
    """Insert User Activities ``(model, recordId, companyId, action, date, count)``, keyed 1, 2, ... after the last."""
    start = int(store.con.execute('SELECT COALESCE(max("key"), 0) FROM user_activities').fetchall()[0][0])
    store.atomic(
        lambda: store.con.executemany(
            'INSERT INTO user_activities (section, "key", model, "recordId", "companyId", action, "date", "count") '
            "VALUES ('events', ?, ?, ?, ?, ?, ?, ?)",
            [(start + i + 1, *row) for i, row in enumerate(rows)],
        )
    )


def metric_rows(store: ModelStore, rows: list[tuple[str, str, str | None, str, datetime, float | None]]) -> None:
    """Insert Custom Metrics ``(model, recordId, companyId, dimensionId, date, value)``, keyed 1, 2, ..."""
    store.atomic(
        lambda: store.con.executemany(
            'INSERT INTO custom_metrics (section, "key", model, "recordId", "companyId", "dimensionId", "date", '
            "\"value\") VALUES ('metrics', ?, ?, ?, ?, ?, ?, ?)",
            [(i + 1, *row) for i, row in enumerate(rows)],
        )
    )


def series(store: ModelStore, metric: str) -> dict[tuple[str, date], float | None]:
    """The stored series of ``metric``: value by (recordId, day)."""
    rows = store.con.execute(
        'SELECT "recordId", "day", "value" FROM calculated_metric_values WHERE metric = ?', [metric]
    ).fetchall()
    return {(str(r), d): v for r, d, v in rows}


def custom_of(store: ModelStore, model: str, record_id: str) -> dict[str, Any] | None:
    """The custom fields of one record, parsed (None when it has none)."""
    row = store.con.execute(f"SELECT CAST(custom AS VARCHAR) FROM {model} WHERE id = ?", [record_id]).fetchall()
    return None if not row or row[0][0] is None else dict(json.loads(row[0][0]))
