"""A company's related records on its profile: licenses, churns, opportunities, conversations, tasks, NPS, issues;
the key results that name it, and its change history.

Each list is a fixed whitelist of catalog fields (:data:`LISTS`), quoted from the model catalog; the company's id
reaches SQL only as a bound parameter. Archived records (``_archived_at`` set by ``on_missing: archive``) are in no
list or total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from planhat_pipelines.config import Config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.models import MODELS, FieldType
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.history import RecordChange

#: Each list shows at most this many records, the newest first.
MAX_ROWS = 50

_KINDS = {
    FieldType.MONEY: "money",
    FieldType.DATE: "date",
    FieldType.DATETIME: "date",
    FieldType.NUMBER: "number",
    FieldType.INTEGER: "number",
    FieldType.BOOLEAN: "bool",
}


@dataclass(frozen=True)
class Column:
    """A column of a list: the catalog field and how the page writes it (text, money, date, number or bool)."""

    name: str
    kind: str


@dataclass(frozen=True)
class ListSpec:
    """Which records of which model a list shows, with which fields, newest first by ``newest``."""

    name: str
    title: str
    model: str
    fields: tuple[str, ...]
    newest: str

    def columns(self) -> tuple[Column, ...]:
        """The fields as columns, typed from the catalog.

        Raises:
            PlanhatPipelinesError: A field is not in the model catalog (a mistake in :data:`LISTS`).
        """
        spec = MODELS[self.model]
        found = []
        for name in self.fields:
            field = spec.field(name)
            if field is None:
                raise PlanhatPipelinesError(
                    f"profile list {self.name}: {spec.name} has no field '{name}'. Fix: use one of "
                    f"{', '.join(f.name for f in spec.all_fields)}"
                )
            found.append(Column(name, _KINDS.get(field.type, "text")))
        return tuple(found)


#: The profile's lists, in page order. ``_updated_at`` (the store's write time) orders issues, which have no date.
LISTS = (
    ListSpec(
        "licenses",
        "Licenses",
        "license",
        ("product", "fromDate", "toDate", "mrr", "arr", "autoRenews", "renewalStatus"),
        "fromDate",
    ),
    ListSpec("churns", "Churns", "churn", ("date", "value", "reasons", "comment"), "date"),
    ListSpec(
        "opportunities",
        "Opportunities",
        "opportunity",
        ("closeDate", "title", "status", "salesStage", "arr"),
        "closeDate",
    ),
    ListSpec("conversations", "Conversations", "conversation", ("date", "type", "subject"), "date"),
    ListSpec("tasks", "Tasks", "task", ("dueDate", "title", "status"), "dueDate"),
    ListSpec("nps", "NPS", "nps", ("date", "score", "comment"), "date"),
    ListSpec("issues", "Issues", "issue", ("title", "status", "priority"), "_updated_at"),
)
_COLUMNS = {spec.name: spec.columns() for spec in LISTS}  # checked once, at import


@dataclass(frozen=True)
class Listing:
    """One list: at most :data:`MAX_ROWS` records (field name -> value), newest first, and how many there are."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[dict[str, Any], ...]
    total: int


def listing(store: ModelStore, spec: ListSpec, company_id: str) -> Listing:
    """The live records of ``spec`` that belong to ``company_id`` (issues through the ``issue_company`` link view)."""
    columns = _COLUMNS[spec.name]
    select = ", ".join(f"t.{q(c.name)}" for c in columns)
    if MODELS[spec.model].company_field:
        owned = 't."companyId" = $company'
    else:  # Issue: many-to-many with Company
        owned = 't.id IN (SELECT "issueId" FROM issue_company WHERE "companyId" = $company)'
    table = store.con.execute(
        f"SELECT {select}, count(*) OVER () AS __total FROM {q(spec.model)} t "
        f"WHERE {owned} AND t._archived_at IS NULL "
        f"ORDER BY t.{q(spec.newest)} DESC NULLS LAST, t.id LIMIT $limit",
        {"company": company_id, "limit": MAX_ROWS},
    ).to_arrow_table()
    total = table.column("__total")[0].as_py() if table.num_rows else 0
    rows = table.drop_columns(["__total"]).to_pylist()
    return Listing(spec.name, spec.title, columns, tuple(rows), total)


@dataclass(frozen=True)
class LinkedKeyResult:
    """A key result whose query names the company, with its latest recorded value."""

    objective: str
    objective_title: str
    name: str
    title: str
    value: float | None
    recorded_at: datetime | None


def linked_key_results(store: ModelStore, config: Config, keys: tuple[str, ...]) -> tuple[LinkedKeyResult, ...]:
    """The key results whose query holds one of the company's ``keys`` as a quoted SQL literal (``'C-17'``).

    OKRs carry no company of their own: a key result is a one-number query over a warehouse, so the one link
    there is to know is a query that filters on the company's key. Most OKRs measure the whole portfolio and
    link to no company.
    """
    literals = [f"'{key}'" for key in keys if key]
    linked = [kr for kr in config.key_results if any(literal in kr.query for literal in literals)]
    if not linked:
        return ()
    marks = ", ".join("?" for _ in linked)
    latest = {
        name: (value, at)
        for name, value, at in store.con.execute(
            'SELECT key_result, arg_max("value", recorded_at), max(recorded_at) FROM okr_values '
            f'WHERE key_result IN ({marks}) AND "value" IS NOT NULL GROUP BY 1',
            [kr.name for kr in linked],
        ).fetchall()
    }
    titles = {o.name: o.title for o in config.objectives}
    return tuple(
        LinkedKeyResult(
            kr.objective, titles[kr.objective], kr.name, kr.title or kr.name, *latest.get(kr.name, (None, None))
        )
        for kr in linked
    )


@dataclass(frozen=True)
class ChangeHistory:
    """The company record's kept changes, newest first, at most :data:`MAX_ROWS`, and how many are kept."""

    changes: tuple[RecordChange, ...]
    total: int


def change_history(store: ModelStore, company_id: str) -> ChangeHistory:
    """Which sync changed which of the company's fields (DuckLake's change feed, as far back as snapshots are kept)."""
    try:
        changes = store.record_history("company", company_id)
    except PlanhatPipelinesError:
        # Raised when no kept snapshot holds the record (its insert has expired): nothing to show, not a failure.
        return ChangeHistory((), 0)
    return ChangeHistory(tuple(reversed(changes[-MAX_ROWS:])), len(changes))
