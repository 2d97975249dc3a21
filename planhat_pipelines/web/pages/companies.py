"""``/companies``: every company in one searchable, sortable, filterable, paginated table.

Search, filters and sort are bound parameters or names from a fixed list, and only the page's rows are fetched:
one filtered count and one page query over ``company``, so a page costs the same at 500 or 100,000 companies.
Archived companies (``_archived_at`` set by ``on_missing: archive``) are in no list, count or filter choice.
Last activity comes from the pre-aggregated ``usage_daily`` (never from the raw usage rows), for the page's
companies only, unless the table is sorted by it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from planhat_pipelines.store import ModelStore
from planhat_pipelines.web.render import read, respond

#: Rows per page.
PAGE_SIZE = 50
#: What the table sorts by: parameter -> SQL over the page query's columns (a fixed list: nothing typed is SQL).
SORTS = {
    "name": "lower(c.name)",
    "status": "c.status",
    "arr": "c.arr",
    "mrr": "c.mrr",
    "renewalDate": 'c."renewalDate"',
    "health": "c.h",
    "lastActivity": "a.last_activity",
    "owner": "lower(c.owner)",
}
_ACTIVITY = 'SELECT "companyId", max(last_at) AS last_activity FROM usage_daily'


class CompaniesQueryError(ValueError):
    """A parameter of ``/companies`` that is not one the page knows."""


@dataclass(frozen=True)
class CompanyFilters:
    """What a visitor asked for: search text, status, owner, renewal window, sort and page."""

    q: str = ""
    status: str = ""
    owner: str = ""
    renewal_within: int | None = None
    sort: str = "name"
    desc: bool = False
    page: int = 1

    @classmethod
    def from_params(cls, params: Any) -> CompanyFilters:
        """Read the filters from a request's query parameters.

        Raises:
            CompaniesQueryError: An unknown sort, or a page or renewal window that is not a positive whole number.
        """
        sort = params.get("sort") or "name"
        if sort not in SORTS:
            raise CompaniesQueryError(f"sort={sort!r} is not a column of the table. Fix: use one of {', '.join(SORTS)}")
        return cls(
            q=(params.get("q") or "").strip(),
            status=params.get("status") or "",
            owner=params.get("owner") or "",
            renewal_within=_positive(params, "renewal_within", None),
            sort=sort,
            desc=params.get("desc") in ("1", "true"),
            page=_positive(params, "page", 1) or 1,
        )

    def query(self, **changes: Any) -> str:
        """These filters as a query string, with ``changes`` applied (for sort and page links)."""
        values = {**dataclasses.asdict(self), **changes}
        pairs = [(k, v) for k, v in values.items() if v not in ("", None, False) and not (k == "page" and v == 1)]
        return urlencode([(k, "1" if v is True else v) for k, v in pairs])


def _positive(params: Any, name: str, default: int | None) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if not str(raw).isdigit() or int(raw) < 1:
        raise CompaniesQueryError(f"{name}={raw!r} is not a positive whole number. Fix: e.g. {name}=1")
    return int(raw)


@dataclass(frozen=True)
class CompanyRow:
    """One line of the table."""

    id: str
    key: str  # what the profile link uses: the externalId when there is one
    name: str | None
    status: str | None
    arr: Decimal | None
    mrr: Decimal | None
    renewal_date: date | None
    health: float | None
    last_activity: datetime | None
    owner: str | None


@dataclass(frozen=True)
class CompaniesPage:
    """One page of the table, with what the filter controls offer."""

    filters: CompanyFilters
    rows: tuple[CompanyRow, ...]
    total: int
    pages: int
    statuses: tuple[str, ...]
    owners: tuple[str, ...]


def _where(filters: CompanyFilters, today: date) -> tuple[str, list[Any]]:
    conditions: list[str] = ["c._archived_at IS NULL"]  # archived records (on_missing: archive) are not listed
    params: list[Any] = []
    if filters.q:
        conditions.append(
            # An escaped pattern: a visitor's % and _ match themselves.
            "(c.name ILIKE ? ESCAPE '\\' OR c.\"externalId\" ILIKE ? ESCAPE '\\' "
            "OR c.\"sourceId\" ILIKE ? ESCAPE '\\' OR c.id = ?)"
        )
        pattern = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [pattern, pattern, pattern, filters.q]
    if filters.status:
        conditions.append("c.status = ?")
        params.append(filters.status)
    if filters.owner:
        conditions.append("c.owner = ?")
        params.append(filters.owner)
    if filters.renewal_within is not None:
        conditions.append('c."renewalDate" BETWEEN CAST(? AS DATE) AND CAST(? AS DATE) + CAST(? AS INTEGER)')
        params += [today, today, filters.renewal_within]
    return " AND ".join(conditions), params


def companies_page(store: ModelStore, filters: CompanyFilters, today: date | None = None) -> CompaniesPage:
    """The page of companies ``filters`` asks for."""
    today = today or date.today()
    con = store.con
    where, params = _where(filters, today)
    total = con.execute(f"SELECT count(*) FROM company c WHERE {where}", params).fetchall()[0][0]
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(filters.page, pages)
    order = f"{SORTS[filters.sort]} {'DESC' if filters.desc else 'ASC'} NULLS LAST, c.id"
    by_activity = filters.sort == "lastActivity"
    activity_join = f'LEFT JOIN ({_ACTIVITY} GROUP BY 1) a ON a."companyId" = c.id' if by_activity else ""
    rows = con.execute(
        f'SELECT c.id, COALESCE(c."externalId", c."sourceId", c.id), c.name, c.status, c.arr, c.mrr, '
        f'c."renewalDate", c.h, {"a.last_activity" if by_activity else "NULL"}, c.owner '
        f"FROM company c {activity_join} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, PAGE_SIZE, (page - 1) * PAGE_SIZE],
    ).fetchall()
    if not by_activity and rows:
        # Only the page's companies: the aggregate reads their usage_daily rows, not every company's.
        last = dict(
            con.execute(
                f'{_ACTIVITY} WHERE list_contains(?, "companyId") GROUP BY 1', [[r[0] for r in rows]]
            ).fetchall()
        )
        rows = [(*r[:8], last.get(r[0]), r[9]) for r in rows]
    statuses = tuple(
        s
        for (s,) in con.execute(
            "SELECT DISTINCT status FROM company WHERE status IS NOT NULL AND _archived_at IS NULL ORDER BY 1"
        ).fetchall()
    )
    owners = tuple(
        o
        for (o,) in con.execute(
            "SELECT DISTINCT owner FROM company WHERE owner IS NOT NULL AND _archived_at IS NULL ORDER BY 1 LIMIT 500"
        ).fetchall()
    )
    return CompaniesPage(
        filters=dataclasses.replace(filters, page=page),
        rows=tuple(CompanyRow(*r) for r in rows),
        total=total,
        pages=pages,
        statuses=statuses,
        owners=owners,
    )


def page(request: Request) -> Response:
    """The companies table (``/companies``) or its JSON (``/api/companies``)."""
    try:
        filters = CompanyFilters.from_params(request.query_params)
    except CompaniesQueryError as exc:
        return respond(request, "companies.html", {"error": str(exc), "table": None}, status_code=400)
    table = read(request, lambda store, config: companies_page(store, filters))
    return respond(request, "companies.html", {"table": table, "error": None}, fragment="_companies_table.html")


ROUTES = [Route("/companies", page), Route("/api/companies", page)]
