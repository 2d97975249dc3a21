"""Won Opportunity -> one License: Planhat's "Opportunities, when Closed/Won, can convert into Licenses".

Every Opportunity whose ``status`` (trimmed, lower-cased) is one of ``won_statuses`` and that has a company gets
one License, inserted in one set-based statement:

- ``id``: a new native id; ``externalId``: ``key_prefix`` + the opportunity's ``externalId`` (else its ``id``);
  ``companyId``; ``opportunityId``: the opportunity's id.
- Each License field in ``fields`` takes the Opportunity field it maps; a field of ``defaults`` takes that
  constant where the mapping leaves it null (or does not map it).
- ``fromDate``: the mapped value, else the opportunity's ``closeDate``, else ``today``; ``toDate``:
  ``fromDate + term_months months - 1 day``; ``renewalStatus``: ``pending`` (mapped or default values win).
  MRR and ARR are copied as mapped, never computed: a license with only an ARR keeps a null MRR, and the
  Company MRR divides it (``store/derived.py``).

**Never twice, and the warehouse wins.** The license is the same record when it is linked to the opportunity
(``license.opportunityId = opportunity.id``) or has the key ``key_prefix`` + the opportunity's key. The behaviour
never updates an existing license and never creates a second one. So a warehouse section that sends that license
(``externalId`` ``opp:<opportunity key>``, or linked by ``opportunityId``) wins: if it arrived first, the
behaviour creates nothing (``skipped_existing``); if the behaviour created the license first, the section's next
receive matches it on ``externalId`` and updates it, its values winning field by field.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from planhat_pipelines.behaviours.result import BehaviourResult, refresh_counting_status
from planhat_pipelines.config.behaviours import WonDealBehaviour, won_deal_field_problems
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.models import MODELS
from planhat_pipelines.models.catalog import trim_sql
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.upsert import NEW_ID_SQL

NAME = "won_deal_license"

#: The won opportunities with a company, their license key and whether their license exists already.
_WON_SQL = f"""
CREATE OR REPLACE TEMP TABLE __won AS
SELECT o.*, k.__key, (lo.id IS NOT NULL OR lk.k IS NOT NULL) AS __exists
FROM opportunity o
CROSS JOIN LATERAL (SELECT $prefix || COALESCE(o."externalId", o.id) AS __key) k
LEFT JOIN (SELECT DISTINCT "opportunityId" AS id FROM license WHERE "opportunityId" IS NOT NULL) lo ON lo.id = o.id
LEFT JOIN (SELECT DISTINCT "externalId" AS k FROM license WHERE "externalId" IS NOT NULL) lk ON lk.k = k.__key
WHERE list_contains(CAST($statuses AS VARCHAR[]), lower({trim_sql("o.status")})) AND o."companyId" IS NOT NULL
"""


def _check(behaviour: WonDealBehaviour) -> None:
    problems = won_deal_field_problems(behaviour.fields, behaviour.defaults)
    if problems:
        where, problem, fix = problems[0]
        raise PlanhatPipelinesError(f"behaviours.{NAME}.{where}: {problem}. Fix: {fix}")


def _insert_sql(behaviour: WonDealBehaviour, params: dict[str, Any]) -> str:
    """The INSERT of one license per won opportunity without one (``params`` gets the defaults' values)."""
    spec = MODELS["license"]
    values: dict[str, list[str]] = {}
    for name, source in behaviour.fields.items():
        values.setdefault(name, []).append(f"o.{q(source)}")
    for i, (name, value) in enumerate(behaviour.defaults.items()):
        params[f"d{i}"] = value
        values.setdefault(name, []).append(f"$d{i}")
    values.setdefault("fromDate", []).extend(['o."closeDate"', "$today"])
    values.setdefault("renewalStatus", []).append("'pending'")

    def typed(name: str) -> str:
        field = spec.field(name)
        assert field is not None  # checked by _check
        parts = [f"CAST({v} AS {field.type.duckdb_type})" for v in values[name]]
        return parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"

    mapped = [n for n in values if n not in ("fromDate", "toDate")]
    to_date = "CAST(o.__from + to_months(CAST($term AS INTEGER)) - INTERVAL 1 DAY AS DATE)"
    if "toDate" in values:
        to_date = f"COALESCE({typed('toDate')}, {to_date})"
    columns = ['"externalId"', '"companyId"', '"opportunityId"', '"fromDate"', '"toDate"', *(q(n) for n in mapped)]
    selects = ["o.__key", 'o."companyId"', "o.id", "o.__from", to_date, *(typed(n) for n in mapped)]
    return f"""
INSERT INTO license (id, {", ".join(columns)}, _updated_at)
SELECT {NEW_ID_SQL}, {", ".join(selects)}, now()
FROM (SELECT *, {typed("fromDate")} AS __from FROM __won o WHERE NOT __exists
      QUALIFY row_number() OVER (PARTITION BY __key ORDER BY id) = 1) o
"""


def convert_won_deals(store: ModelStore, behaviour: WonDealBehaviour, today: date) -> BehaviourResult:
    """Create one License per won Opportunity that has none, in one transaction (see the module docstring).

    Args:
        store: The model store.
        behaviour: The behaviour's settings (disabled: nothing is read or written, every count is 0).
        today: The fallback ``fromDate``, and the day the Company fields are refreshed for.

    Returns:
        examined: won opportunities with a company; changed: licenses created; skipped_existing: won
        opportunities whose license exists; companies_changed: companies whose status changed.

    Raises:
        PlanhatPipelinesError: ``fields`` or ``defaults`` name a field the License or Opportunity does not have
            (the config loader refuses them first).
    """
    if not behaviour.enabled:
        return BehaviourResult(NAME)
    _check(behaviour)
    con = store.con
    params: dict[str, Any] = {"today": today, "term": behaviour.term_months}
    insert = _insert_sql(behaviour, params)
    statuses = [s.strip().lower() for s in behaviour.won_statuses]

    def work() -> BehaviourResult:
        def convert() -> tuple[int, int, int]:
            con.execute(_WON_SQL, {"prefix": behaviour.key_prefix, "statuses": statuses})
            examined, existing = con.execute("SELECT count(*), count(*) FILTER (WHERE __exists) FROM __won").fetchall()[
                0
            ]
            created = int(con.execute(insert, params).fetchall()[0][0]) if examined > existing else 0
            con.execute("DROP TABLE __won")
            return int(examined), created, int(existing)

        (examined, created, existing), companies = refresh_counting_status(con, today, convert)
        return BehaviourResult(NAME, examined, created, existing, companies)

    return store.atomic(work)
