"""Churn -> lost licenses: Planhat's "a Churn sets the corresponding License(s) to status Lost".

Each Churn record sets ``renewalStatus = 'lost'`` on the licenses it names (``licenseIds``), or, when it names
none, on every license of its company that ran on the churn date (the rule and the SQL are
:data:`planhat_pipelines.store.derived.CHURN_HITS_SQL`, the same the Company status reads, so a churn dated before
a license started leaves that later license alone). Only licenses not already lost (trimmed, case-insensitive)
are written, so a second run changes nothing. The company fields are refreshed in the same transaction.

The warehouse and this behaviour do not compete: a license the warehouse sends as lost is simply skipped, and
one it later sends with another ``renewalStatus`` is overwritten by the receive, then set lost again by the next
run while the Churn record names or covers it (the Churn record is the fact; delete it to un-churn).
"""

from __future__ import annotations

from datetime import date

from planhat_pipelines.behaviours.result import BehaviourResult, refresh_counting_status
from planhat_pipelines.config.behaviours import ChurnBehaviour
from planhat_pipelines.models.catalog import trim_sql
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.derived import CHURN_HITS_SQL

NAME = "churn_licenses"

_LOST = f"""COALESCE(lower({trim_sql('license."renewalStatus"')}) = 'lost', FALSE)"""

_HIT_SQL = f"""
CREATE OR REPLACE TEMP TABLE __churn_hits AS
SELECT DISTINCT license.id, {_LOST} AS already_lost
FROM ({CHURN_HITS_SQL}) h JOIN license ON license.id = h.id
"""

_UPDATE_SQL = """
UPDATE license SET "renewalStatus" = 'lost', _updated_at = now()
FROM __churn_hits h WHERE license.id = h.id AND NOT h.already_lost
"""


def apply_churns(store: ModelStore, behaviour: ChurnBehaviour, today: date) -> BehaviourResult:
    """Set the licenses every Churn record names or covers to ``renewalStatus = 'lost'``, in one transaction.

    Args:
        store: The model store.
        behaviour: The behaviour's settings (disabled: nothing is read or written, every count is 0).
        today: The day the Company fields are refreshed for.

    Returns:
        examined: Churn records; changed: licenses set lost; skipped_existing: licenses already lost;
        companies_changed: companies whose status changed.
    """
    if not behaviour.enabled:
        return BehaviourResult(NAME)
    con = store.con

    def work() -> BehaviourResult:
        def churn() -> tuple[int, int, int]:
            examined = int(con.execute("SELECT count(*) FROM churn").fetchall()[0][0])
            con.execute(_HIT_SQL)
            hits, already = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE already_lost) FROM __churn_hits"
            ).fetchall()[0]
            changed = int(con.execute(_UPDATE_SQL).fetchall()[0][0]) if hits > already else 0
            con.execute("DROP TABLE __churn_hits")
            return examined, changed, int(already)

        (examined, changed, already), companies = refresh_counting_status(con, today, churn)
        return BehaviourResult(NAME, examined, changed, already, companies)

    return store.atomic(work)
