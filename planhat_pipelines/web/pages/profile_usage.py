"""A company's usage on its profile: activities and active users per day, each custom-metric dimension, end users.

Everything here reads the pre-aggregated ``usage_daily`` series (see ``store/usage_daily.py``), never the raw
``user_activities`` / ``custom_metrics`` rows, so a profile stays fast at millions of usage rows. ``usage_daily``
holds one partial row per group and committed batch: every read here sums over its groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore

#: The range picker's choices: the value of ``?range=`` -> days back from today (None: all the usage kept).
RANGES: dict[str, int | None] = {"30": 30, "90": 90, "365": 365, "all": None}
DEFAULT_RANGE = "90"
#: At most this many custom-metric dimensions get a chart (the ones with the most rows in the range).
MAX_DIMENSIONS = 12
#: At most this many end users are listed (the most recently active first).
MAX_END_USERS = 50

Points = tuple[tuple[date, float], ...]


class InvalidRange(PlanhatPipelinesError):
    """``?range=`` is none of :data:`RANGES` (the page answers 400)."""


def parse_range(value: str | None) -> str:
    """The range a request asks for (:data:`DEFAULT_RANGE` when it names none).

    Raises:
        InvalidRange: ``value`` is not one of :data:`RANGES`.
    """
    if value is None or value == "":
        return DEFAULT_RANGE
    if value not in RANGES:
        raise InvalidRange(
            f"range={value!r} is not a usage range. Fix: use range={', range='.join(RANGES)} "
            f"(days back from today, or all; {DEFAULT_RANGE} when left out)"
        )
    return value


@dataclass(frozen=True)
class Dimension:
    """One custom-metric dimension: its values summed per day (days without a value are left out)."""

    name: str
    points: Points


@dataclass(frozen=True)
class Usage:
    """A company's usage over one range.

    Attributes:
        range: The picker's value (a key of :data:`RANGES`).
        since: The first day shown (None: the company has no usage at all and the range is ``all``).
        until: The last day shown (today).
        activities: Activity rows per day, every day of the range (0 on days without any); empty when the range
            holds no activity.
        active_users: Distinct End Users with an activity per day, on the same days.
        dimensions: Custom-metric dimensions, at most :data:`MAX_DIMENSIONS`, by name.
        dimension_count: How many dimensions the range holds.
    """

    range: str
    since: date | None
    until: date
    activities: Points
    active_users: Points
    dimensions: tuple[Dimension, ...]
    dimension_count: int

    @property
    def empty(self) -> bool:
        return not self.activities and not self.dimensions


#: The company's usage, read once per request (one scan of ``usage_daily``: filtering it by company reads the
#: whole ``companyId`` column, so every series below is cut from this compact table instead). Partial rows are
#: summed per group; an End User keeps its id (for distinct users and last activity), a metric its dimension.
_COMPANY_USAGE_SQL = """
SELECT kind, model, CASE WHEN model = 'enduser' THEN "recordId" END AS "recordId",
       CASE WHEN kind = 'metrics' THEN series END AS series, "day",
       sum("rows") AS "rows", sum(total) AS total, max(last_at) AS last_at
FROM usage_daily WHERE "companyId" = ?
GROUP BY ALL
"""
#: The name :func:`read_company_usage` gives that table on the request's cursor.
_USED = "__profile_usage"

# Every day of the range, with the day's activity rows and distinct End Users (0 on quiet days). The last column
# says whether any day had activity at all, so a range without any reads as "no usage", not as a flat line at 0.
_ACTIVITY_SQL = f"""
WITH used AS (
    SELECT "day", sum("rows") AS activities,
           count(DISTINCT "recordId") FILTER (WHERE model = 'enduser') AS users
    FROM {_USED}
    WHERE kind = 'activities' AND "day" BETWEEN $since AND $until
    GROUP BY "day"
), days AS (
    SELECT CAST(d AS DATE) AS "day"
    FROM generate_series(CAST($since AS DATE), CAST($until AS DATE), INTERVAL 1 DAY) t(d)
)
SELECT list(days."day" ORDER BY days."day"),
       list(CAST(COALESCE(used.activities, 0) AS DOUBLE) ORDER BY days."day"),
       list(CAST(COALESCE(used.users, 0) AS DOUBLE) ORDER BY days."day"),
       count(used."day")
FROM days LEFT JOIN used USING ("day")
"""

# One row per dimension: its days and summed values, the busiest dimensions first, and how many there are.
_DIMENSIONS_SQL = f"""
SELECT series, list("day" ORDER BY "day"), list(total ORDER BY "day"), count(*) OVER ()
FROM (
    SELECT series, "day", sum(total) AS total, sum("rows") AS n
    FROM {_USED}
    WHERE kind = 'metrics' AND "day" BETWEEN $since AND $until
    GROUP BY series, "day"
)
GROUP BY series
ORDER BY sum(n) DESC, series
LIMIT $limit
"""


@contextmanager
def read_company_usage(store: ModelStore, company_id: str) -> Iterator[None]:
    """Read the company's usage once, for :func:`company_usage` and :func:`end_users` inside the block."""
    con = store.con
    con.register(_USED, con.execute(_COMPANY_USAGE_SQL, [company_id]).to_arrow_table())
    try:
        yield
    finally:
        con.unregister(_USED)


def company_usage(store: ModelStore, range_: str, today: date | None = None) -> Usage:
    """The usage over ``range_`` (a key of :data:`RANGES`) ending ``today``, inside :func:`read_company_usage`."""
    today = today or date.today()
    con = store.con
    days = RANGES[range_]
    if days is None:
        since = con.execute(f'SELECT min("day") FROM {_USED}').fetchall()[0][0]
    else:
        since = today - timedelta(days=days - 1)
    if since is None:
        return Usage(range_, None, today, (), (), (), 0)
    params = {"since": since, "until": today}
    day_list, activities, users, active_days = con.execute(_ACTIVITY_SQL, params).fetchall()[0]
    dimension_rows = con.execute(_DIMENSIONS_SQL, {**params, "limit": MAX_DIMENSIONS}).fetchall()
    dimensions = tuple(
        Dimension(name or "(no dimension)", tuple(zip(d, v, strict=True))) for name, d, v, _ in dimension_rows
    )
    return Usage(
        range=range_,
        since=since,
        until=today,
        activities=tuple(zip(day_list, activities, strict=True)) if active_days else (),
        active_users=tuple(zip(day_list, users, strict=True)) if active_days else (),
        dimensions=dimensions,
        dimension_count=dimension_rows[0][3] if dimension_rows else 0,
    )


@dataclass(frozen=True)
class EndUser:
    """One End User of the company and the time of its last activity (from ``usage_daily``)."""

    id: str
    name: str | None
    email: str | None
    position: str | None
    last_activity: datetime | None


@dataclass(frozen=True)
class EndUsers:
    """The company's End Users, the most recently active first, at most :data:`MAX_END_USERS`."""

    users: tuple[EndUser, ...]
    total: int


def end_users(store: ModelStore, company_id: str) -> EndUsers:
    """The live (not archived) End Users of ``company_id`` with their last activity, inside
    :func:`read_company_usage`."""
    rows = store.con.execute(
        "SELECT e.id, NULLIF(trim(concat_ws(' ', e.\"firstName\", e.\"lastName\")), ''), e.email, e.position, "
        "u.last_at, count(*) OVER () "
        f'FROM enduser e LEFT JOIN (SELECT "recordId", max(last_at) AS last_at FROM {_USED} GROUP BY 1) u '
        'ON u."recordId" = e.id '
        'WHERE e."companyId" = $company AND e._archived_at IS NULL '
        "ORDER BY u.last_at DESC NULLS LAST, e.email, e.id LIMIT $limit",
        {"company": company_id, "limit": MAX_END_USERS},
    ).fetchall()
    return EndUsers(tuple(EndUser(*row[:5]) for row in rows), rows[0][5] if rows else 0)
