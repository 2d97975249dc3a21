"""What ``/companies/{key}`` shows: the company found by its id, externalId or sourceId, and everything about it.

The reads are set-based SQL with the key and the company's id as bound parameters; charts read daily series the
store keeps (``company_daily``, ``health_scores``, ``calculated_metric_values``, ``usage_daily``), never raw rows.
An archived company (``on_missing: archive``) is in no list, but its profile still opens by its key, so a link to it
keeps working: it says when it was archived (``archived_at``); its related lists show live records only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from planhat_pipelines.config import Config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.change_log import Change
from planhat_pipelines.store.derived import REVENUE_HISTORY_SQL
from planhat_pipelines.web.pages.profile_related import (
    LISTS,
    ChangeHistory,
    LinkedKeyResult,
    Listing,
    change_history,
    linked_key_results,
    listing,
)
from planhat_pipelines.web.pages.profile_usage import (
    EndUsers,
    Points,
    Usage,
    company_usage,
    end_users,
    read_company_usage,
)
from planhat_pipelines.web.render import NotFound

#: The company's newest change-log rows on the profile ("Sync changes"); the CLI's ``changes`` has them all.
SYNC_CHANGES = 20


@dataclass(frozen=True)
class Company:
    """The company record's own fields (the numbers ``derived`` marks in the catalog are the store's)."""

    id: str
    name: str | None
    external_id: str | None
    source_id: str | None
    status: str | None
    phase: str | None
    owner: str | None
    country: str | None
    arr: Decimal | None
    mrr: Decimal | None
    renewal_date: date | None
    customer_from: date | None
    customer_to: date | None
    h: float | None
    archived_at: datetime | None = None  # set when its source row left the warehouse (on_missing: archive)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key the company can be found by."""
        return tuple(k for k in (self.id, self.external_id, self.source_id) if k)


_COMPANY_SQL = """
SELECT id, name, "externalId" AS external_id, "sourceId" AS source_id, status, phase, owner, country, arr, mrr,
       "renewalDate" AS renewal_date, "customerFrom" AS customer_from, "customerTo" AS customer_to, h,
       _archived_at AS archived_at
FROM company
WHERE id = $key OR "externalId" = $key OR "sourceId" = $key
ORDER BY CASE WHEN id = $key THEN 0 WHEN "externalId" = $key THEN 1 ELSE 2 END, _archived_at IS NOT NULL, id
LIMIT 1
"""


def find_company(store: ModelStore, key: str) -> Company:
    """The company whose id, externalId or sourceId is ``key`` (in that order of preference when several are, then
    a live company before an archived one), archived or not: a direct link to an archived company still opens.

    Raises:
        NotFound: No company has ``key``.
    """
    rows = store.con.execute(_COMPANY_SQL, {"key": key}).to_arrow_table().to_pylist()
    if not rows:
        raise NotFound(
            f"no company has the id, externalId or sourceId '{key}'. Fix: search for it on /companies "
            "(by name or key) and follow its link"
        )
    return Company(**rows[0])


@dataclass(frozen=True)
class HealthInputScore:
    """One input of the latest health score: its number, its 0-10 score and its weight."""

    input: str
    source: str | None
    value: float | None
    score: float | None
    weight: float


@dataclass(frozen=True)
class Health:
    """The company's health score (``h``), the inputs of its latest computation and its daily history."""

    score: float | None
    day: date | None
    inputs: tuple[HealthInputScore, ...]
    history: Points


def health(store: ModelStore, config: Config, company: Company) -> Health:
    """The health score of ``company`` with the inputs that made it (see ``metrics/health_score.py``)."""
    con = store.con
    sources = {
        i.name: i.source + (f": {i.ref}" if i.ref else "") for i in config.health_score.inputs
    }  # the config's inputs, not data: a handful
    rows = con.execute(
        'SELECT "day", input, "value", score, weight FROM health_score_inputs WHERE "companyId" = $company '
        'AND "day" = (SELECT max("day") FROM health_score_inputs WHERE "companyId" = $company) '
        "ORDER BY weight DESC, input",
        {"company": company.id},
    ).fetchall()
    days, scores = con.execute(
        'SELECT list("day" ORDER BY "day"), list(score ORDER BY "day") FROM health_scores WHERE "companyId" = ?',
        [company.id],
    ).fetchall()[0]
    return Health(
        score=company.h,
        day=rows[0][0] if rows else None,
        inputs=tuple(HealthInputScore(name, sources.get(name), v, s, w) for _, name, v, s, w in rows),
        history=tuple(zip(days or (), scores or (), strict=True)),
    )


@dataclass(frozen=True)
class Revenue:
    """The company's ARR and MRR on the first of each month since its first license, and today (from the licenses'
    periods by the status rules of ``store/derived.py``, so a new store has the history too)."""

    arr: Points
    mrr: Points


def revenue(store: ModelStore, company: Company, today: date) -> Revenue:
    """The ARR and MRR history of ``company`` up to ``today``."""
    rows = store.con.execute(REVENUE_HISTORY_SQL, {"company": company.id, "today": today}).fetchall()
    return Revenue(tuple((d, arr) for d, _, arr in rows), tuple((d, mrr) for d, mrr, _ in rows))


@dataclass(frozen=True)
class MetricValue:
    """A calculated metric of the company: how the config computes it, its latest value and its daily series."""

    name: str
    definition: str | None
    latest: float | None
    day: date | None
    points: Points


def calculated_metrics(store: ModelStore, config: Config, company: Company) -> tuple[MetricValue, ...]:
    """Every Company calculated metric the config declares or the store holds for ``company``, by name."""
    stored = {
        name: (latest, day, tuple(zip(days, values, strict=True)))
        for name, latest, day, days, values in store.con.execute(
            'SELECT metric, arg_max("value", "day"), max("day"), list("day" ORDER BY "day"), '
            'list("value" ORDER BY "day") FROM calculated_metric_values '
            "WHERE model = 'company' AND \"recordId\" = ? GROUP BY metric",
            [company.id],
        ).fetchall()
    }  # one row per metric
    definitions = {
        m.name: f"{m.operation} of {m.source} over {m.window_days} days"
        + (f" ({', '.join(m.actions)})" if m.actions else "")
        + (f" (dimension {m.dimension})" if m.dimension else "")
        for m in config.calculated_metrics
        if m.model == "company"
    }
    return tuple(
        MetricValue(name, definitions.get(name), *stored.get(name, (None, None, ())))
        for name in sorted(definitions.keys() | stored.keys())
    )


@dataclass(frozen=True)
class Profile:
    """Everything the profile page shows."""

    today: date
    company: Company
    health: Health
    revenue: Revenue
    licenses: Listing
    end_users: EndUsers
    usage: Usage
    calculated_metrics: tuple[MetricValue, ...]
    related: tuple[Listing, ...]
    okrs: tuple[LinkedKeyResult, ...]
    sync_changes: tuple[Change, ...] = ()


def profile(store: ModelStore, config: Config, key: str, range_: str, today: date | None = None) -> Profile:
    """The profile of the company ``key`` names, its usage over ``range_``.

    Raises:
        NotFound: No company has ``key``.
    """
    today = today or date.today()
    company = find_company(store, key)
    licenses, *related = (listing(store, spec, company.id) for spec in LISTS)
    with read_company_usage(store, company.id):
        usage, users = company_usage(store, range_, today), end_users(store, company.id)
    return Profile(
        today=today,
        company=company,
        health=health(store, config, company),
        revenue=revenue(store, company, today),
        licenses=licenses,
        end_users=users,
        usage=usage,
        calculated_metrics=calculated_metrics(store, config, company),
        related=tuple(related),
        okrs=linked_key_results(store, config, company.keys),
        # The change log by the record's id: a filtered top-N read of one table, cheap beside the history.
        sync_changes=tuple(store.changes(record_id=company.id, limit=SYNC_CHANGES)),
    )


@dataclass(frozen=True)
class HistoryView:
    """The change history alone: read after the page (htmx), as it is the profile's slowest part (DuckLake's
    change feed over every kept snapshot of the company table)."""

    company: Company
    history: ChangeHistory


def history_view(store: ModelStore, key: str) -> HistoryView:
    """The company ``key`` names and which syncs changed which of its fields.

    Raises:
        NotFound: No company has ``key``.
    """
    company = find_company(store, key)
    return HistoryView(company, change_history(store, company.id))


@dataclass(frozen=True)
class UsageView:
    """The usage fragment alone (the range picker's htmx answer): the company and its usage over the range."""

    company: Company
    usage: Usage


def usage_view(store: ModelStore, key: str, range_: str, today: date | None = None) -> UsageView:
    """The company ``key`` names and its usage over ``range_``.

    Raises:
        NotFound: No company has ``key``.
    """
    company = find_company(store, key)
    with read_company_usage(store, company.id):
        return UsageView(company, company_usage(store, range_, today))
