"""What a behaviour did (:class:`BehaviourResult`), and the company refresh every license-changing one ends with.

A behaviour that changes licenses refreshes the derived Company fields in its own transaction and counts the
companies whose stored ``status`` the run changed (see :func:`refresh_counting_status`). That count compares
with the status as stored before the run, so it includes what the day moving on since the last refresh changed
(a churned company's period ending): it is what the run moved, as a person looking at the companies sees it.
The Company status reads Churn records directly (``store/derived.py``), so a Churn receive has usually moved
the company to canceled already and :func:`~planhat_pipelines.behaviours.apply_churns` finds it there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from typing import TypeVar

import duckdb

from planhat_pipelines.store.company_daily import record_company_day
from planhat_pipelines.store.derived import refresh_company_fields

T = TypeVar("T")


@dataclass(frozen=True)
class BehaviourResult:
    """The counts of one behaviour run.

    Attributes:
        name: The behaviour (its key under ``behaviours:``).
        examined: The records it started from (Churn records; won Opportunities or done Tasks with a company).
        changed: The records it wrote (licenses set lost; licenses or conversations created).
        skipped_existing: The records it left alone because the result was there already (a license already
            lost; an opportunity or task whose license or conversation exists, made by a run before or sent by
            the warehouse).
        companies_changed: The companies whose stored status the run changed (see the module docstring).
    """

    name: str
    examined: int = 0
    changed: int = 0
    skipped_existing: int = 0
    companies_changed: int = 0

    def metadata(self) -> dict[str, int]:
        """The counts by name, for the Dagster asset's metadata."""
        return {k: v for k, v in asdict(self).items() if isinstance(v, int)}


def refresh_counting_status(con: duckdb.DuckDBPyConnection, today: date, work: Callable[[], T]) -> tuple[T, int]:
    """Run ``work``, then refresh the derived Company fields for ``today`` and write the day's row of the company
    series (as :meth:`ModelStore.refresh_company_fields` does); returns ``work``'s result and how many companies'
    stored status changed.

    Call inside the behaviour's transaction: it may run again from the start (the status snapshot is a temp
    table it replaces).
    """
    con.execute("CREATE OR REPLACE TEMP TABLE __behaviour_status AS SELECT id, status FROM company")
    result = work()
    refresh_company_fields(con, today)
    record_company_day(con, today)
    changed = con.execute(
        "SELECT count(*) FROM company c JOIN __behaviour_status s ON s.id = c.id "
        "WHERE c.status IS DISTINCT FROM s.status"
    ).fetchall()[0][0]
    con.execute("DROP TABLE __behaviour_status")
    return result, int(changed)
