"""The company health score: weighted inputs, each mapped to 0-10 by its thresholds, as Planhat scores health.

Rules (set-based SQL, one transaction per run):

- An input's number per company: ``metric`` the calculated metric's value today (a company without a row today
  has 0 for count, sum and distinct_users: no usage is a low number, not a missing one; no value for average and
  last); ``field`` the Company field cast to a number (``custom.x`` read from the custom JSON; text that is no
  number has no value); ``days_to_renewal`` the days from today to ``renewalDate`` (negative once past; no value
  without one); ``open_issues`` the linked Issues whose status is not closed, done, resolved or won't fix (a null
  status is open); ``last_nps`` the score of the company's latest NPS response dated up to today.
- Its score: that of the last threshold whose ``at`` is at or below the number, 0 below the first, none without a
  number. The company's score: the weighted average of the scores it has, to one decimal; none when it has none.
- Every company gets one row per input and one score row for ``today`` (overwritten by a re-run the same day, so
  each day keeps one row), and its ``h`` is the score (written only where it changed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from planhat_pipelines.config.health_score import HealthInput, HealthScoreConfig
from planhat_pipelines.config.metrics import CalculatedMetric
from planhat_pipelines.metrics.calculated import ADDITIVE_OPERATIONS
from planhat_pipelines.metrics.writes import replace_rows
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.sql_quoting import quote_literal
from planhat_pipelines.store import ModelStore

#: The score bands of :attr:`HealthResult.distribution`: each from its lower bound up to (not including) the next;
#: the last includes 10.
BANDS = ("0-2", "2-4", "4-6", "6-8", "8-10")
#: Issue statuses (lower-cased) that are no longer open.
CLOSED_ISSUE_STATUSES = ("closed", "done", "resolved", "won't fix")


def _no_scores() -> dict[str, int]:
    return dict.fromkeys(BANDS, 0)


@dataclass(frozen=True)
class HealthResult:
    """What computing the health scores did.

    Attributes:
        companies: Companies with a score.
        changed: Companies whose ``h`` changed.
        average: The mean score of the scored companies (None when none is scored).
        distribution: Scored companies per band of :data:`BANDS`.
    """

    companies: int = 0
    changed: int = 0
    average: float | None = None
    distribution: dict[str, int] = field(default_factory=_no_scores)

    def metadata(self) -> dict[str, int | float]:
        """Numeric metadata for the asset's materialization (``average_score`` only when there is one)."""
        meta: dict[str, int | float] = {"companies": self.companies, "changed": self.changed}
        if self.average is not None:
            meta["average_score"] = self.average
        meta.update({f"scores_{band.replace('-', '_')}": n for band, n in self.distribution.items()})
        return meta


def _number(value: float) -> str:
    """A config number as a SQL DOUBLE literal (the config refuses NaN and infinities)."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def score_sql(health_input: HealthInput, value: str) -> str:
    """SQL: the 0-10 score of ``value`` under the input's thresholds (NULL when ``value`` is NULL)."""
    steps = " ".join(
        f"WHEN {value} >= {_number(t.at)} THEN {_number(t.score)}" for t in reversed(health_input.thresholds)
    )
    return f"CASE WHEN {value} IS NULL THEN NULL {steps} ELSE 0.0 END"


def _field_sql(ref: str) -> str:
    """SQL: Company field ``ref`` (``custom.x`` too) as a DOUBLE; NULL when it is no number."""
    if ref.startswith("custom."):
        path = '$."' + ref.removeprefix("custom.").replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"TRY_CAST(json_extract_string(c.custom, {quote_literal(path)}) AS DOUBLE)"
    # Through text: a cast from any stored type to text exists, and text that is no number becomes NULL.
    return f"TRY_CAST(CAST(c.{q(ref)} AS VARCHAR) AS DOUBLE)"


def input_sql(health_input: HealthInput, metrics: dict[str, CalculatedMetric]) -> str:
    """SELECT of one input for every company: ``"companyId"``, ``input``, ``"value"``, ``score``, ``weight``.

    Parameters: ``$today``, ``$hi`` (the day after today).

    Raises:
        ValueError: a ``metric`` input names no company metric (the config check refuses it first).
    """
    join, value = "", "NULL"
    if health_input.source == "metric":
        metric = metrics.get(health_input.ref or "")
        if metric is None or metric.model != "company":
            raise ValueError(f"health input '{health_input.name}' reads '{health_input.ref}', no company metric")
        join = (
            'LEFT JOIN (SELECT "recordId", "value" FROM calculated_metric_values WHERE metric = '
            f"{quote_literal(metric.name)} AND model = 'company' AND \"day\" = CAST($today AS DATE)) j "
            'ON j."recordId" = c.id'
        )
        value = 'COALESCE(j."value", 0.0)' if metric.operation in ADDITIVE_OPERATIONS else 'j."value"'
    elif health_input.source == "field":
        value = _field_sql(health_input.ref or "")
    elif health_input.source == "days_to_renewal":
        value = "date_diff('day', CAST($today AS DATE), c.\"renewalDate\")"
    elif health_input.source == "open_issues":
        closed = ", ".join(quote_literal(s) for s in CLOSED_ISSUE_STATUSES)
        join = (
            'LEFT JOIN (SELECT ic."companyId", count(DISTINCT ic."issueId") AS n FROM issue_company ic '
            f"JOIN issue i ON i.id = ic.\"issueId\" WHERE lower(COALESCE(i.status, '')) NOT IN ({closed}) "
            'GROUP BY 1) j ON j."companyId" = c.id'
        )
        value = "COALESCE(j.n, 0)"
    elif health_input.source == "last_nps":
        join = (
            "LEFT JOIN (SELECT \"companyId\", arg_max(score, {'d': \"date\", 'i': id}) AS score FROM nps "
            'WHERE "companyId" IS NOT NULL AND score IS NOT NULL AND "date" < CAST($hi AS TIMESTAMP) GROUP BY 1) j '
            'ON j."companyId" = c.id'
        )
        value = "j.score"
    raw = f'SELECT c.id AS "companyId", CAST({value} AS DOUBLE) AS "value" FROM company c {join}'
    score = score_sql(health_input, '"value"')
    return (
        f'SELECT "companyId", {quote_literal(health_input.name)} AS input, "value", {score} AS score, '
        f"{_number(health_input.weight)} AS weight FROM ({raw}) r"
    )


def compute_health_scores(
    store: ModelStore, health: HealthScoreConfig, metrics: tuple[CalculatedMetric, ...], today: date
) -> HealthResult:
    """Score every company for ``today`` and keep the score, its inputs and the company's ``h``.

    One transaction: a run that loses a commit race runs again whole and writes the same.

    Args:
        store: The model store.
        health: The health score's inputs (disabled or without inputs: nothing is computed).
        metrics: The declared calculated metrics (``metric`` inputs read their series).
        today: The day scored.

    Returns:
        What was scored and changed, for the asset's metadata.
    """
    if not health.enabled or not health.inputs:
        return HealthResult()
    by_name = {m.name: m for m in metrics}
    inputs_sql = " UNION ALL ".join(input_sql(i, by_name) for i in health.inputs)

    def compute() -> HealthResult:
        con = store.con
        sql = (
            "CREATE OR REPLACE TEMP TABLE __health_inputs AS "
            f'SELECT CAST($today AS DATE) AS "day", i.* FROM ({inputs_sql}) i'
        )
        # DuckDB refuses a named parameter the statement does not use, and only some inputs use $hi.
        given: dict[str, object] = {"today": today, "hi": today + timedelta(days=1)}
        con.execute(sql, {name: value for name, value in given.items() if f"${name}" in sql})
        con.execute(
            'CREATE OR REPLACE TEMP TABLE __health_scores AS SELECT "day", "companyId", '
            "round(sum(weight * score) / sum(weight) FILTER (WHERE score IS NOT NULL), 1) AS score "
            'FROM __health_inputs GROUP BY "day", "companyId"'
        )
        day = {"today": today}
        replace_rows(
            con,
            target="health_score_inputs",
            new="__health_inputs",
            keys=("day", "companyId", "input"),
            values=("value", "score", "weight"),
            scope='"day" = CAST($today AS DATE)',
            params=day,
        )
        replace_rows(
            con,
            target="health_scores",
            new="__health_scores",
            keys=("day", "companyId"),
            values=("score",),
            scope='"day" = CAST($today AS DATE)',
            params=day,
        )
        return HealthResult(*_summary(store), distribution=_distribution(store))

    return store.atomic(compute)


def _summary(store: ModelStore) -> tuple[int, int, float | None]:
    """Write ``h`` where it changed; return the scored companies, the changed ones and the mean score."""
    con = store.con
    con.execute(
        'CREATE OR REPLACE TEMP TABLE __health_changed AS SELECT s."companyId", s.score FROM __health_scores s '
        'JOIN company c ON c.id = s."companyId" WHERE c.h IS DISTINCT FROM s.score'
    )
    changed = int(con.execute("SELECT count(*) FROM __health_changed").fetchall()[0][0])
    if changed:
        con.execute(
            "UPDATE company SET h = s.score, _updated_at = now() "
            'FROM __health_changed s WHERE company.id = s."companyId"'
        )
    scored, average = con.execute("SELECT count(score), avg(score) FROM __health_scores").fetchall()[0]
    return int(scored), changed, None if average is None else float(average)


def _distribution(store: ModelStore) -> dict[str, int]:
    """Scored companies per band of :data:`BANDS`."""
    counts = ", ".join(
        f"count(*) FILTER (WHERE score >= {2 * i}" + (f" AND score < {2 * i + 2})" if i < len(BANDS) - 1 else ")")
        for i in range(len(BANDS))
    )
    row = store.con.execute(f"SELECT {counts} FROM __health_scores").fetchall()[0]
    return {band: int(n) for band, n in zip(BANDS, row, strict=True)}
