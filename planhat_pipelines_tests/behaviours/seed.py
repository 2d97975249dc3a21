"""Seeding the store for behaviour tests: rows as dicts, typed from the catalog, upserted on ``externalId``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from planhat_pipelines.models import MODELS, FieldType
from planhat_pipelines.store import ModelStore

_ARROW = {
    FieldType.TEXT: pa.string(),
    FieldType.EMAIL: pa.string(),
    FieldType.NUMBER: pa.float64(),
    FieldType.INTEGER: pa.int64(),
    FieldType.BOOLEAN: pa.bool_(),
    FieldType.DATE: pa.date32(),
    FieldType.DATETIME: pa.timestamp("us"),
    FieldType.JSON: pa.string(),
    FieldType.MONEY: pa.string(),  # a decimal string casts to DECIMAL(38,6) exactly
}


def seed(store: ModelStore, model: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert ``rows`` (each with ``externalId``) into ``model``; lists become JSON, money goes as text."""
    if not rows:
        return
    spec = MODELS[model]
    names = list(dict.fromkeys(name for row in rows for name in row))
    fields = []
    for name in names:
        field = spec.field(name)
        assert field is not None, f"{model} has no field {name}"
        fields.append((name, _ARROW[field.type]))

    def value(name: str, v: Any) -> Any:
        field = spec.field(name)
        if v is None or field is None:
            return v
        if field.type is FieldType.JSON:
            return json.dumps(v)
        if field.type is FieldType.MONEY:
            return str(v)
        return v

    data = [{n: value(n, row.get(n)) for n in names} for row in rows]
    store.upsert_arrow(model, pa.Table.from_pylist(data, pa.schema(fields)), "externalId")


def ids(store: ModelStore, model: str) -> dict[str, str]:
    """``externalId`` -> native id of every record of ``model``."""
    return dict(store.con.execute(f'SELECT "externalId", id FROM "{model}"').fetchall())


def table_contents(store: ModelStore, table: str, *, leave_out: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (all columns but ``leave_out``, as text), sorted: to compare whole tables."""
    cols = [
        r[0]
        for r in store.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        if r[0] not in leave_out
    ]
    select = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in cols)
    return [tuple(r) for r in store.con.execute(f'SELECT {select} FROM "{table}" ORDER BY ALL').fetchall()]
