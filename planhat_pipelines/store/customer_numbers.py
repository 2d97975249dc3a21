"""Read-only queries for the customer numbers a summary shows: statuses, revenue, behaviours, metrics, health."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from planhat_pipelines.store.transactions import Transactional


@dataclass(frozen=True)
class CustomerNumbers:
    """The store's customer numbers at a glance.

    Attributes:
        statuses: Companies per status, most first.
        arr: Total ARR of all companies.
        churned_licenses: Licenses whose renewal status is lost.
        licenses_from_won_deals: Licenses linked to an opportunity (created from a won deal or sent linked).
        conversations_from_tasks: Conversations linked to a task.
        metric_totals: Per calculated metric, (records with a value today, their sum), by metric name.
        health: (companies scored, average, lowest, highest) of the companies' ``h``.
    """

    statuses: list[tuple[str, int]]
    arr: Decimal
    churned_licenses: int
    licenses_from_won_deals: int
    conversations_from_tasks: int
    metric_totals: dict[str, tuple[int, float]]
    health: tuple[int, float | None, float | None, float | None]


class CustomerNumberReads(Transactional):
    """The queries behind :class:`CustomerNumbers`."""

    def customer_numbers(self) -> CustomerNumbers:
        """Read every number of :class:`CustomerNumbers` (the latest day of each metric counts as today)."""
        statuses = self.con.execute(
            "SELECT coalesce(status, 'none'), count(*) FROM company GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        arr, lost, won, done = self.con.execute(
            "SELECT (SELECT coalesce(sum(arr), 0) FROM company), "
            "(SELECT count(*) FROM license WHERE lower(trim(\"renewalStatus\")) = 'lost'), "
            '(SELECT count(*) FROM license WHERE "opportunityId" IS NOT NULL), '
            '(SELECT count(*) FROM conversation WHERE "taskId" IS NOT NULL)'
        ).fetchall()[0]
        metrics = self.con.execute(
            'SELECT metric, count("value"), coalesce(sum("value"), 0) FROM calculated_metric_values '
            'WHERE ("metric", "day") IN (SELECT (metric, max("day")) FROM calculated_metric_values GROUP BY metric) '
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
        health = self.con.execute("SELECT count(h), avg(h), min(h), max(h) FROM company").fetchall()[0]
        return CustomerNumbers(
            [(str(s), int(n)) for s, n in statuses],
            Decimal(arr),
            int(lost),
            int(won),
            int(done),
            {str(m): (int(n), float(total)) for m, n, total in metrics},
            (int(health[0]), *(None if v is None else float(v) for v in health[1:])),  # type: ignore[arg-type]
        )
