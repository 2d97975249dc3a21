"""Change history from DuckLake's snapshots: which sync changed which fields of a record, from what to what.

Every sync commit is labelled (``set_commit_message``: the section and its sync-log run id), and DuckLake's
change feed (``ducklake_table_changes``) gives each snapshot's inserted rows and the before/after images of
updated ones. History reaches back as far as snapshots are kept (``store.retention_days``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.models import MODELS, FieldType
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.sql_quoting import quote_literal
from planhat_pipelines.store.location import CATALOG_ALIAS
from planhat_pipelines.store.transactions import Transactional

#: The author every sync commit carries.
AUTHOR = "planhat_pipelines"
#: Columns that change on every write and say nothing about the record.
_BOOKKEEPING = frozenset({"_updated_at"})


@dataclass(frozen=True)
class FieldChange:
    """One field of one record, before and after a commit."""

    name: str
    before: Any
    after: Any


@dataclass(frozen=True)
class RecordChange:
    """What one snapshot did to one record."""

    snapshot: int
    at: datetime
    record_id: str
    kind: str  # inserted | updated | deleted
    section: str | None
    run_id: str | None
    dagster_run_id: str | None
    fields: tuple[FieldChange, ...] = field(default=())


class History(Transactional):
    """Commit labels and the change history of one record."""

    def label_commit(self, section: str, run_id: str) -> None:
        """Name the open transaction's snapshot after the sync that writes it (call inside the transaction)."""
        info = json.dumps({"section": section, "run_id": run_id})
        self.con.execute(
            f"CALL {CATALOG_ALIAS}.set_commit_message({quote_literal(AUTHOR)}, {quote_literal(section)}, "
            f"extra_info => {quote_literal(info)})"
        )

    def record_history(self, model: str, key: str) -> list[RecordChange]:
        """Every kept change to the records of ``model`` that ``key`` names (by id or any of its keys), oldest first.

        Raises:
            PlanhatPipelinesError: ``model`` is not a model, or no record has ``key``.
        """
        spec = MODELS.get(model)
        if spec is None:
            raise PlanhatPipelinesError(
                f"'{model}' is not a model. Fix: use one of {', '.join(sorted(MODELS))} (the store's table names)"
            )
        keys = ["id"] + [
            f.name for f in spec.all_fields if f.name in ("externalId", "sourceId") or f.type is FieldType.EMAIL
        ]
        current = self.con.execute(f"SELECT max(snapshot_id) FROM {CATALOG_ALIAS}.snapshots()").fetchall()[0][0]
        feed = (
            f"ducklake_table_changes({quote_literal(CATALOG_ALIAS)}, 'main', {quote_literal(spec.slug)}, 0, {current})"
        )
        match = " OR ".join(f"CAST({q(k)} AS VARCHAR) = ?" for k in keys)
        ids = [
            r[0]
            for r in self.con.execute(f"SELECT DISTINCT id FROM {feed} WHERE {match}", [key] * len(keys)).fetchall()
        ]
        if not ids:
            raise PlanhatPipelinesError(
                f"no {spec.name} record has the key '{key}' in the kept history. Fix: give its id, "
                f"{', '.join(keys[1:]) or 'id'} (as the store holds it: trimmed, emails lower-cased)"
            )
        marks = ", ".join("?" for _ in ids)
        cursor = self.con.execute(
            f"SELECT c.*, s.snapshot_time, s.commit_extra_info, r.dagster_run_id FROM {feed} c "
            f"JOIN {CATALOG_ALIAS}.snapshots() s USING (snapshot_id) "
            "LEFT JOIN sync_runs r ON r.run_id = json_extract_string(s.commit_extra_info, '$.run_id') "
            f"WHERE c.id IN ({marks}) ORDER BY c.snapshot_id, c.rowid, c.change_type DESC",
            ids,
        )
        names = [d[0] for d in cursor.description]
        return _changes([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])


def _changes(rows: list[dict[str, Any]]) -> list[RecordChange]:
    """Pair each update's pre- and post-image (same snapshot and row) and keep the fields that differ."""
    meta = {"snapshot_id", "rowid", "change_type", "snapshot_time", "commit_extra_info", "dagster_run_id"}
    changes: list[RecordChange] = []
    before: dict[tuple[int, int], dict[str, Any]] = {}
    for row in rows:
        kind = row["change_type"]
        if kind == "update_preimage":
            before[(row["snapshot_id"], row["rowid"])] = row
            continue
        info = json.loads(row["commit_extra_info"]) if row["commit_extra_info"] else {}
        values = {k: v for k, v in row.items() if k not in meta and k not in _BOOKKEEPING}
        if kind == "update_postimage":
            old = before.pop((row["snapshot_id"], row["rowid"]), {})
            fields = tuple(FieldChange(k, old.get(k), v) for k, v in values.items() if old.get(k) != v)
            if not fields:
                continue
            label = "updated"
        elif kind == "insert":
            fields = tuple(FieldChange(k, None, v) for k, v in values.items() if v is not None and k != "id")
            label = "inserted"
        else:
            fields, label = (), "deleted"
        changes.append(
            RecordChange(
                row["snapshot_id"],
                row["snapshot_time"],
                str(row["id"]),
                label,
                info.get("section"),
                info.get("run_id"),
                row["dagster_run_id"],
                fields,
            )
        )
    return changes


def _show(value: Any) -> str:
    """A value as a person reads it: text quoted, numbers and dates plain, a missing value as null."""
    if value is None:
        return "null"
    return repr(value) if isinstance(value, str) else str(value)


def format_history(changes: list[RecordChange]) -> str:
    """One block per change: when, which sync (section, run), what, then one line per changed field."""
    lines = []
    for c in changes:
        who = "an unlabelled write"
        if c.section:
            dagster = f", Dagster run {c.dagster_run_id}" if c.dagster_run_id else ""
            who = f"{c.section} (sync run {c.run_id}{dagster})"
        lines.append(f"{c.at:%Y-%m-%d %H:%M:%S}  snapshot {c.snapshot}  {c.kind} {c.record_id} by {who}")
        lines += [f"    {f.name}: {_show(f.before)} -> {_show(f.after)}" for f in c.fields]
    return "\n".join(lines) if lines else "no changes kept"
