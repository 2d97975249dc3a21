"""``/syncs``: connections and their credential health, each section's last runs, and the rejected rows.

The rejected rows are searchable by section, key and reason (``?section=&key=&reason=``, key and reason as
case-insensitive substrings), open ones by default (``?resolved=1`` adds the resolved), 50 a page (``?page=``).
An htmx search swaps only the rejects table (``_rejects.html``).

Each section shows its newest change-log rows (``store/change_log.py``: what its runs did to which record, field
by field); ``?section=S&key=K`` (both given) also shows every kept change of that one record, the key matched
exactly as the section matches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from planhat_pipelines.config import BigQuerySettings, Config, ConnectionConfig, DuckDBSettings, SnowflakeSettings
from planhat_pipelines.sql_quoting import quote_literal
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.change_log import Change
from planhat_pipelines.web.pages.sync_health import SyncHealth, sync_health
from planhat_pipelines.web.render import error_response, read, respond, wants_json

#: Runs shown per section, newest first.
RUNS_PER_SECTION = 5
#: Change-log rows shown per section, newest first.
CHANGES_PER_SECTION = 10
#: Change-log rows shown for one record (``?section=&key=``).
RECORD_CHANGES = 100
#: Rejected rows per page.
PAGE_SIZE = 50
#: What splits a reason that carries its own fix ("... . Fix: make the key unique").
FIX_MARKER = "Fix: "

#: The fix shown for a reason that carries none, by the reason's shape (``LIKE`` patterns, first match wins):
#: the sync writes these reasons (``sync/crm/fields.py``, ``sync/crm/keys.py``, ``sync/usage/validation.py``).
REASON_FIXES: tuple[tuple[str, str], ...] = (
    ("duplicate key%", "Keep one row per key in the warehouse table (or map a unique key column)."),
    ("%occurs more than once in the source%", "Keep one row per key in the warehouse table."),
    ("%null or empty%", "Give every row a key in the warehouse."),
    ("null key%", "Give every row a key in the warehouse."),
    ("key %", "Use whole-number keys (at most 32 digits) in the key column."),
    ("%was rejected in this run%", "Fix the parent row's reject; this row goes through on the next run."),
    ("%no company has%", "Sync the company first, or correct the reference in the warehouse."),
    ("unknown %", "Sync the referenced record first, or correct the reference in the warehouse."),
    ("% matches % companies", "Make the matched company field unique, or match companies by another key."),
    ("%is not an email address%", "Correct the email address in the warehouse."),
    ("%JSON%", "Write valid JSON in the warehouse column."),
    ("missing %", "Fill in the missing column in the warehouse."),
    ("%is not a%", "Correct the value in the warehouse so it has the field's type."),
    ("%NaN%", "Write a finite number in the warehouse column."),
    ("%infinite%", "Write a finite number in the warehouse column."),
    ("%out of range%", "Write a smaller number in the warehouse column."),
)
#: The fix when no pattern matches: the row is read again on the next run.
DEFAULT_FIX = "Correct the row in the warehouse; the next run reads it again and resolves the reject."


@dataclass(frozen=True)
class Connection:
    """A configured connection and its latest credential check (no secrets: only where it points).

    Attributes:
        name: Its name in the config.
        type: duckdb, bigquery or snowflake.
        location: Where it points: a DuckDB file, a BigQuery project.dataset, a Snowflake account and database.
        status: ``ok``, ``expiring`` or ``failing`` from the latest check; None if never checked.
    """

    name: str
    type: str
    location: str
    status: str | None
    checked_at: datetime | None
    error: str | None
    fix: str | None
    expires_at: datetime | None


@dataclass(frozen=True)
class Run:
    """One sync-log run of a section; ``duration_seconds`` is None while it runs."""

    run_id: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None
    rows_read: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    sent: int
    error: str | None


@dataclass(frozen=True)
class Section:
    """A configured CRM or usage section, its latest runs (newest first) and its open rejects."""

    name: str
    domain: str  # crm | usage
    model: str
    connection: str
    table: str
    direction: str  # both | send | receive; usage sections receive
    runs: tuple[Run, ...]
    open_rejects: int
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True)
class Reject:
    """A rejected source row, its reason split from the fix (a reason may carry its own 'Fix: ...')."""

    section: str
    key: str
    reason: str
    fix: str
    value: str | None
    run_id: str | None
    first_seen: datetime | None
    last_seen: datetime | None
    resolved_at: datetime | None
    permanent: bool


@dataclass(frozen=True)
class RejectSearch:
    """What the visitor searched for (echoed into the form and the pager links)."""

    section: str = ""
    key: str = ""
    reason: str = ""
    resolved: bool = False
    page: int = 1


@dataclass(frozen=True)
class Rejects:
    """One page of the rejected rows matching ``search``, and how many match in all."""

    search: RejectSearch
    rows: tuple[Reject, ...]
    total: int
    pages: int
    page_size: int


@dataclass(frozen=True)
class RecordChanges:
    """Every kept change-log row of one record of one section (``?section=&key=``), newest first."""

    section: str
    key: str
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class Syncs:
    """Everything the syncs page shows."""

    connections: tuple[Connection, ...]
    sections: tuple[Section, ...]
    section_names: tuple[str, ...]
    rejects: Rejects
    sync_health: SyncHealth
    record: RecordChanges | None = None


def location_of(connection: ConnectionConfig) -> str:
    """Where ``connection`` points, from its non-secret settings only (never a password, key or token)."""
    s = connection.settings
    if isinstance(s, DuckDBSettings):
        return str(s.path)
    if isinstance(s, BigQuerySettings):
        return f"{s.project}.{s.dataset}" + (f" ({s.location})" if s.location else "")
    if isinstance(s, SnowflakeSettings):
        return f"{s.account} {s.database}.{s.schema}" + (f" via {s.host}:{s.port}" if s.host else "")
    return ""


_LATEST_HEALTH = (
    "SELECT connection, status, checked_at, error, fix, expires_at FROM connection_health "
    "QUALIFY row_number() OVER (PARTITION BY connection ORDER BY checked_at DESC) = 1"
)


def connections(store: ModelStore, config: Config) -> tuple[Connection, ...]:
    """Every configured connection, in config order, with its latest credential check."""
    latest = {row[0]: row[1:] for row in store.con.execute(_LATEST_HEALTH).fetchall()}
    return tuple(
        Connection(name, c.type, location_of(c), *latest.get(name, (None, None, None, None, None)))
        for name, c in config.connections.items()
    )


def sections(store: ModelStore, config: Config) -> tuple[Section, ...]:
    """Every configured CRM section, then every usage section, each with its last runs and open rejects."""
    names = [s.name for s in config.crm] + [s.name for s in config.usage]
    con = store.con
    # Ranked in a subquery, then aggregated: each section's runs come back as one list of structs (dicts).
    runs = dict(
        con.execute(
            "SELECT section, list(r ORDER BY r.started_at DESC) FROM (SELECT section, struct_pack(run_id, status, "
            "started_at, ended_at, duration_seconds := CASE WHEN ended_at IS NOT NULL THEN "
            "epoch(ended_at) - epoch(started_at) END, rows_read, inserted, updated, unchanged, rejected, sent, "
            "error) AS r, row_number() OVER (PARTITION BY section ORDER BY started_at DESC) AS newest "
            "FROM sync_runs WHERE list_contains(?, section)) WHERE newest <= ? GROUP BY section",
            [names, RUNS_PER_SECTION],
        ).fetchall()
    )
    open_rejects = dict(
        con.execute(
            "SELECT section, count(*) FROM rejected_rows WHERE resolved_at IS NULL AND list_contains(?, section) "
            "GROUP BY section",
            [names],
        ).fetchall()
    )

    def section(name: str, domain: str, model: str, connection: str, table: str, direction: str) -> Section:
        found = tuple(Run(**r) for r in runs.get(name, []))
        # Usage sections write no change log; a CRM section's newest rows are a top-N read of its own.
        changes = tuple(store.changes(section=name, limit=CHANGES_PER_SECTION)) if domain == "crm" else ()
        return Section(name, domain, model, connection, table, direction, found, open_rejects.get(name, 0), changes)

    return (
        *(section(s.name, "crm", s.model.name, s.connection, s.table, s.direction.value) for s in config.crm),
        *(section(s.name, "usage", s.model.name, s.connection, s.table, "receive") for s in config.usage),
    )


def _fix_sql() -> str:
    """SQL for a reject's fix: the reason's own 'Fix: ...' when it has one, else the fix its shape calls for."""
    marker = quote_literal(FIX_MARKER)
    shapes = " ".join(f"WHEN reason LIKE {quote_literal(p)} THEN {quote_literal(f)}" for p, f in REASON_FIXES)
    return (
        f"CASE WHEN strpos(reason, {marker}) > 0 THEN substr(reason, strpos(reason, {marker}) + {len(FIX_MARKER)}) "
        f"{shapes} ELSE {quote_literal(DEFAULT_FIX)} END"
    )


def _reason_sql() -> str:
    """SQL for a reject's reason without its 'Fix: ...' tail (and the full stop before it)."""
    marker = quote_literal(FIX_MARKER)
    before = f"rtrim(left(reason, strpos(reason, {marker}) - 1), ' .;')"
    return f"CASE WHEN strpos(reason, {marker}) > 0 THEN {before} ELSE reason END"


def rejects(store: ModelStore, search: RejectSearch) -> Rejects:
    """The page ``search.page`` of the rejected rows matching ``search``, newest first.

    Every searched value reaches SQL as a bound parameter; key and reason match as case-insensitive substrings.
    """
    where, params = ["TRUE"], []
    if not search.resolved:
        where.append("resolved_at IS NULL")
    if search.section:
        where.append("section = ?")
        params.append(search.section)
    if search.key:
        where.append('contains(lower("key"), lower(?))')
        params.append(search.key)
    if search.reason:
        where.append("contains(lower(reason), lower(?))")
        params.append(search.reason)
    condition = " AND ".join(where)
    con = store.con
    total = int(con.execute(f"SELECT count(*) FROM rejected_rows WHERE {condition}", params).fetchall()[0][0])
    pages = max(1, -(-total // PAGE_SIZE))
    rows = con.execute(
        f'SELECT section, "key", {_reason_sql()}, {_fix_sql()}, "value", run_id, first_seen, last_seen, resolved_at, '
        f'permanent FROM rejected_rows WHERE {condition} ORDER BY last_seen DESC NULLS LAST, section, "key" '
        "LIMIT ? OFFSET ?",
        [*params, PAGE_SIZE, (search.page - 1) * PAGE_SIZE],
    ).fetchall()
    return Rejects(search, tuple(Reject(*r) for r in rows), total, pages, PAGE_SIZE)


def syncs(store: ModelStore, config: Config, search: RejectSearch) -> Syncs:
    """The syncs page: connections, sections and one page of rejects matching ``search``."""
    found = sections(store, config)
    record = None
    if search.section and search.key:
        changes = store.changes(section=search.section, key=search.key, limit=RECORD_CHANGES)
        record = RecordChanges(search.section, search.key, tuple(changes))
    return Syncs(
        connections=connections(store, config),
        sections=found,
        section_names=tuple(s.name for s in found),
        rejects=rejects(store, search),
        sync_health=sync_health(store, config),
        record=record,
    )


class BadParameter(ValueError):
    """A query parameter that cannot be read; the message names it and the fix."""


def search_of(params: Any) -> RejectSearch:
    """The reject search the query string asks for.

    Raises:
        BadParameter: ``page`` is not a whole number of at least 1.
    """
    raw_page = params.get("page", "1") or "1"
    try:
        page = int(raw_page)
    except ValueError:
        page = 0
    if page < 1:
        raise BadParameter(f"query parameter page={raw_page!r} is not a page number. Fix: use page=1, page=2, ...")
    return RejectSearch(
        section=params.get("section", "").strip(),
        key=params.get("key", "").strip(),
        reason=params.get("reason", "").strip(),
        resolved=params.get("resolved", "") in ("1", "true", "on", "yes"),
        page=page,
    )


def page(request: Request) -> Response:
    """The syncs page (``/syncs``) or its JSON (``/api/syncs``); an htmx search gets only the rejects table."""
    try:
        search = search_of(request.query_params)
    except BadParameter as exc:
        return error_response(request, exc, 400)
    data = read(request, lambda store, config: syncs(store, config, search))
    # A history restore (back button after hx-push-url) needs the whole page even though it comes from htmx.
    restoring = request.headers.get("HX-History-Restore-Request") == "true"
    fragment = None if restoring or wants_json(request) else "_rejects.html"
    return respond(request, "syncs.html", {"syncs": data}, fragment=fragment)


ROUTES = [Route("/syncs", page), Route("/api/syncs", page)]
