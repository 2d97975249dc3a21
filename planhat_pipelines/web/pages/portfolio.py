"""``/``: the portfolio — revenue, customers by status, renewals ahead, health, and the sync health badge.

Every count and sum reads live companies only (``_archived_at IS NULL``): an archived company (``on_missing:
archive``) is kept in the store but counts nowhere; an archived license counts in no company's ARR (see
``store/derived.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from planhat_pipelines.config import Config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.derived import REVENUE_HISTORY_SQL
from planhat_pipelines.web.pages.sync_health import SyncHealth, sync_health
from planhat_pipelines.web.render import read, respond

#: The renewal windows the page shows, in days from today.
RENEWAL_WINDOWS = (30, 90)
#: Health score bands (the score runs 0-10): lower bound inclusive, upper exclusive (10 falls in the last).
HEALTH_BANDS = ((0, 2), (2, 4), (4, 6), (6, 8), (8, 10))


@dataclass(frozen=True)
class Renewals:
    """Companies whose renewal date falls within ``days`` from today, and their ARR."""

    days: int
    companies: int
    arr: Decimal


@dataclass(frozen=True)
class Portfolio:
    """Everything the portfolio page shows."""

    today: date
    companies: int
    arr: Decimal
    mrr: Decimal
    by_status: dict[str, int]
    renewals: tuple[Renewals, ...]
    health_bands: tuple[tuple[str, int], ...]
    unscored: int
    arr_history: tuple[tuple[date, float], ...]
    sync_health: SyncHealth


def portfolio(store: ModelStore, config: Config, today: date | None = None) -> Portfolio:
    """The portfolio as of ``today`` (the store's last committed snapshot)."""
    today = today or date.today()
    con = store.con
    companies, arr, mrr = con.execute(
        "SELECT count(*), COALESCE(sum(arr), 0), COALESCE(sum(mrr), 0) FROM company WHERE _archived_at IS NULL"
    ).fetchall()[0]
    by_status = dict(
        con.execute(
            "SELECT COALESCE(status, 'unknown'), count(*) FROM company WHERE _archived_at IS NULL "
            "GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    )
    renewals = []
    for days in RENEWAL_WINDOWS:
        n, total = con.execute(
            "SELECT count(*), COALESCE(sum(arr), 0) FROM company WHERE _archived_at IS NULL "
            'AND "renewalDate" BETWEEN CAST(? AS DATE) AND CAST(? AS DATE) + CAST(? AS INTEGER)',
            [today, today, days],
        ).fetchall()[0]
        renewals.append(Renewals(days, n, total))
    band_sql = " ".join(f"WHEN h < {high} THEN '{low}-{high}'" for low, high in HEALTH_BANDS[:-1])
    last_low, last_high = HEALTH_BANDS[-1]
    counted = dict(
        con.execute(
            f"SELECT CASE {band_sql} ELSE '{last_low}-{last_high}' END, count(*) FROM company WHERE h IS NOT NULL "
            "AND _archived_at IS NULL GROUP BY 1"
        ).fetchall()
    )
    unscored = con.execute("SELECT count(*) FROM company WHERE h IS NULL AND _archived_at IS NULL").fetchall()[0][0]
    history = con.execute(REVENUE_HISTORY_SQL, {"company": None, "today": today}).fetchall()
    return Portfolio(
        today=today,
        companies=companies,
        arr=Decimal(arr),
        mrr=Decimal(mrr),
        by_status=by_status,
        renewals=tuple(renewals),
        health_bands=tuple((f"{low}-{high}", counted.get(f"{low}-{high}", 0)) for low, high in HEALTH_BANDS),
        unscored=unscored,
        arr_history=tuple((d, arr) for d, _, arr in history),
        sync_health=sync_health(store, config),
    )


def page(request: Request) -> Response:
    """The portfolio page (``/``) or its JSON (``/api/portfolio``)."""
    data = read(request, portfolio)
    return respond(request, "portfolio.html", {"portfolio": data})


ROUTES = [Route("/", page), Route("/api/portfolio", page)]
