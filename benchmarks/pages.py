"""The ``pages`` group: how fast the web app's pages render, at demo size and at 100,000 companies / 10M usage rows.

The parent (:func:`bench_pages`, called by run.py) builds one store per size in a child process (``cases.py
pages_store``: a generated warehouse synced with the real code, ``sync_section`` for companies, end users and
licenses, ``run_usage`` for the activities, then ``refresh_company_fields``), then measures each in another child
(``cases.py pages_requests``): the app from ``create_app`` served by uvicorn on 127.0.0.1 in a thread, and
``httpx`` requests one after another. Beside the pages, the same child times the floors: a static file (what HTTP
and Starlette cost) and a bare ``SELECT count(*) FROM company`` through the app's own read-only store view.

Last, at the large size, the profile page is requested in a loop while a usage backfill (``--reader-rows`` more
rows, keys above the loaded ones) writes the same store from another process, as ``bench_reader`` does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from common import (
    BENCH_DIR,
    COMPANIES_SQL,
    COMPANY_SECTION,
    ROOT,
    WORK,
    Measured,
    config_dict,
    fresh_copy,
    remove_store,
    run_case,
    start_case,
    usage_section,
    wait_child,
)

#: Demo size: what ``make demo`` generates (planhat_pipelines/demo/generate.py, DemoSize).
DEMO_COMPANIES, DEMO_ROWS = 500, 100_000
#: End users and licenses per company, the demo's ratios (5,000 and 900 for 500 companies).
USERS_PER_COMPANY, LICENSES_PER_5_COMPANIES = 10, 9
WARMUP = 3
#: What ``/companies?q=`` searches for: a word in one company name of eight (the search scans every name).
SEARCH_TEXT = "Globex"

# Same shapes as the demo's CRM tables, with keys wide enough for millions of rows. A user's company is
# (user - 1) % companies + 1; its email names the company so every email is unique.
END_USERS_SQL = """
CREATE OR REPLACE TABLE crm_end_users AS
SELECT 'U-' || lpad(CAST(i AS VARCHAR), 9, '0') AS user_key,
       'user' || i || '@c' || ((i - 1) % $companies + 1) || '.example' AS email,
       'C-' || lpad(CAST((i - 1) % $companies + 1 AS VARCHAR), 8, '0') AS company_key,
       (['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald'])[1 + i % 6] AS first_name,
       (['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth'])[1 + i % 6] AS last_name,
       (['Admin', 'Champion', 'User', 'Buyer'])[1 + i % 4] AS position
FROM range(1, $users + 1) r(i)
"""
# Licenses dated back from $today, so statuses, ARR and renewals ahead vary as in the demo.
LICENSES_SQL = """
CREATE OR REPLACE TABLE crm_licenses AS
SELECT 'L-' || lpad(CAST(i AS VARCHAR), 9, '0') AS license_key,
       'C-' || lpad(CAST((i - 1) % $companies + 1 AS VARCHAR), 8, '0') AS company_key,
       (['Platform', 'Analytics add-on', 'Support Plus'])[1 + i % 3] AS product,
       CAST($today AS DATE) - CAST(i * 7 % 900 AS INTEGER) AS start_date,
       CASE WHEN i % 6 = 0 THEN NULL ELSE CAST($today AS DATE) - CAST(i * 7 % 900 AS INTEGER) + 365 END AS end_date,
       CAST(100 + (i * 37) % 4900 AS DOUBLE) AS mrr,
       i % 4 = 0 AS auto_renews,
       CASE WHEN i % 9 = 0 THEN 'lost' WHEN i % 5 = 0 THEN 'renewed' ELSE 'pending' END AS renewal_status
FROM range(1, $licenses + 1) r(i)
"""
# Skewed like real usage: ten consecutive keys are one user's burst on one day (two of each action), the user is
# the cube of a hashed fraction, so low-numbered users (and their companies) are far busier than the rest (user 1
# alone has 1/cbrt(users) of the rows), and the day is hashed over the 365 days before $today.
EVENTS_SQL = """
INSERT INTO usage_events
SELECT i, 'user' || u || '@c' || ((u - 1) % $companies + 1) || '.example',
       (['login', 'view_dashboard', 'export_report', 'invite_user', 'create_project'])[1 + i % 5],
       CAST($today AS TIMESTAMP) - INTERVAL 1 DAY * (1 + hash(b, 'day') % 365) + to_seconds(i * 37 % 86400),
       CAST(1 + i % 3 AS INTEGER), 1.0,
       CAST(json_object('browser', (['chrome', 'firefox', 'safari'])[1 + i % 3]) AS JSON)
FROM (SELECT i, b, 1 + CAST(floor($users * pow((hash(b) % 1000000007) / 1000000007.0, 3)) AS BIGINT) AS u
      FROM (SELECT i, i // 10 AS b FROM range($first, $last + 1) r(i)))
"""
EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS usage_events (event_id BIGINT, user_email VARCHAR, action VARCHAR, "
    "occurred_at TIMESTAMP, cnt INTEGER, weight DOUBLE, info JSON)"
)

END_USER_SECTION: dict[str, Any] = {
    "name": "end_users",
    "model": "enduser",
    "connection": "wh",
    "table": "crm_end_users",
    "direction": "receive",
    "keys": {"planhat": "externalId", "warehouse": "user_key"},
    "company_match": "externalId",
    "fields": [
        {"planhat": "email", "warehouse": "email"},
        {"planhat": "companyId", "warehouse": "company_key"},
        {"planhat": "firstName", "warehouse": "first_name"},
        {"planhat": "lastName", "warehouse": "last_name"},
        {"planhat": "position", "warehouse": "position"},
    ],
}
LICENSE_SECTION: dict[str, Any] = {
    "name": "licenses",
    "model": "license",
    "connection": "wh",
    "table": "crm_licenses",
    "direction": "receive",
    "keys": {"planhat": "externalId", "warehouse": "license_key"},
    "company_match": "externalId",
    "fields": [
        {"planhat": "companyId", "warehouse": "company_key"},
        {"planhat": "product", "warehouse": "product"},
        {"planhat": "fromDate", "warehouse": "start_date"},
        {"planhat": "toDate", "warehouse": "end_date"},
        {"planhat": "mrr", "warehouse": "mrr"},
        {"planhat": "autoRenews", "warehouse": "auto_renews"},
        {"planhat": "renewalStatus", "warehouse": "renewal_status"},
    ],
}


# --- warehouse (in a child process) -------------------------------------------------------------------------------
def make_warehouse(path: str, companies: int, rows: int, today: str) -> None:
    """The CRM tables for ``companies`` companies and usage rows with keys 1..``rows`` (``today``: ISO date)."""
    con = duckdb.connect(path)
    try:
        con.execute(COMPANIES_SQL, {"companies": companies})
        con.execute(END_USERS_SQL, {"companies": companies, "users": companies * USERS_PER_COMPANY})
        licenses = companies * LICENSES_PER_5_COMPANIES // 5
        con.execute(LICENSES_SQL, {"companies": companies, "licenses": licenses, "today": date.fromisoformat(today)})
    finally:
        con.close()
    append_events(path, companies, 1, rows, today)


def append_events(path: str, companies: int, first: int, last: int, today: str) -> None:
    """Append usage rows with keys ``first..last`` (inclusive), for ``companies`` companies' end users."""
    con = duckdb.connect(path)
    try:
        con.execute(EVENTS_DDL)
        params = {"companies": companies, "users": companies * USERS_PER_COMPANY, "today": date.fromisoformat(today)}
        con.execute(EVENTS_SQL, {**params, "first": first, "last": last})
    finally:
        con.close()


def _in_child(function: str, *args: object) -> None:
    """Run ``function(*args)`` of this module in a child process (its memory stays out of run.py's peak RSS)."""
    code = f"import sys; sys.path.insert(0, {str(BENCH_DIR)!r}); import pages; pages.{function}(*{args!r})"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- cases (run by cases.py in a child process) ---------------------------------------------------------------
def build_store(params: dict[str, Any]) -> dict[str, Any]:
    """The CRM sections' receive, ``run_usage`` over the pending ranges and ``refresh_company_fields``, timed each;
    then the store's sizes and the key of the company with the most usage (the profile measured)."""
    from planhat_pipelines.config import parse_config
    from planhat_pipelines.store import ModelStore
    from planhat_pipelines.sync.crm import sync_section
    from planhat_pipelines.sync.usage import pending_ranges, run_usage
    from planhat_pipelines.warehouses.factory import open_warehouse

    config = parse_config(params["config"], Path(params["config_path"]))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with ModelStore(config.store) as store, open_warehouse(config.connection("wh")) as warehouse:
        for section in config.crm:
            t = time.perf_counter()
            sync_section(section, store, warehouse, full=True)
            timings[f"crm_{section.name}_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        usage = config.usage[0]
        spans, _ = pending_ranges(usage, store, warehouse)
        result = run_usage(usage, store, warehouse, spans)
        timings["run_usage_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        store.refresh_company_fields()
        timings["refresh_company_fields_s"] = round(time.perf_counter() - t, 2)
        con = store.con
        sizes = {
            table: int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
            for table in ("company", "enduser", "license", "user_activities", "usage_daily")
        }
        top_id, top_rows = con.execute(
            'SELECT "companyId", sum("rows") FROM usage_daily WHERE "companyId" IS NOT NULL GROUP BY 1 '
            "ORDER BY 2 DESC, 1 LIMIT 1"
        ).fetchall()[0]
        key, name = con.execute(
            'SELECT COALESCE("externalId", id), name FROM company WHERE id = ?', [top_id]
        ).fetchall()[0]
    return {
        "seconds": time.perf_counter() - started,
        "rows": result.rows_read,
        "rejected": result.rejected,
        **timings,
        "sizes": sizes,
        "profile_key": key,
        "profile_name": name,
        "profile_usage_rows": int(top_rows),
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/max in milliseconds (None when nothing was measured)."""
    if not values:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None, "n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000, 2)

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": round(ordered[-1] * 1000, 2), "n": len(ordered)}


def _serve(app: Any) -> tuple[Any, threading.Thread, int]:
    """``app`` under uvicorn on 127.0.0.1 (a free port) in a thread; returns the server, its thread and the port."""
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start within 60 s")
        time.sleep(0.02)
    return server, thread, port


def _time_get(client: Any, url: str, expect: str | None) -> tuple[float, int, int, bool]:
    """One GET: seconds, status, body bytes, and whether the body holds ``expect``."""
    t = time.perf_counter()
    response = client.get(url)
    seconds = time.perf_counter() - t
    return seconds, response.status_code, len(response.content), expect is None or expect in response.text


def measure_pages(params: dict[str, Any]) -> dict[str, Any]:
    """Serve the store and time each page (``pages``: name -> url) ``requests`` times after :data:`WARMUP` requests.

    With ``stop``/``ready`` files: request only the profile in a loop (``ready`` after the warm-up) until ``stop``
    appears, recording when each request started, for the parent to keep those made while a writer wrote.
    """
    import httpx

    from planhat_pipelines.config import parse_config
    from planhat_pipelines.web.app import create_app

    config = parse_config(params["config"], Path(params["config_path"]))
    app = create_app(config)
    server, thread, port = _serve(app)
    started = time.perf_counter()
    # The machine's load beside the figures: other processes' work slows every page alike.
    out: dict[str, Any] = {"rows": 0, "load_avg_before": os.getloadavg()}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            if params.get("stop"):
                out.update(_loop_profile(client, params))
            else:
                out.update(_each_page(client, app, params))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    out["seconds"] = time.perf_counter() - started
    out["load_avg_after"] = os.getloadavg()
    return out


def _each_page(client: Any, app: Any, params: dict[str, Any]) -> dict[str, Any]:
    n, pages = params["requests"], dict(params["pages"])
    routes = {getattr(route, "path", None) for route in app.routes}
    if "/api/explorer" not in routes:  # the explorer page is another engineer's, and may not have landed
        pages.pop("explorer", None)
    timed: dict[str, Any] = {}
    for name, url in pages.items():
        expect = params["profile_name"] if name == "profile" else None
        for _ in range(WARMUP):
            _time_get(client, url, expect)
        runs = [_time_get(client, url, expect) for _ in range(n)]
        bad = [status for _, status, _, ok in runs if status != 200 or not ok]
        timed[name] = {
            "url": url,
            **_percentiles([s for s, *_ in runs]),
            "bytes": runs[-1][2],
            "failed": len(bad),
            "statuses": sorted(set(bad)),
        }
    # The floor a page's SQL adds to: a bare count through the same read-only store (a fresh cursor, as read() has).
    reader = app.state.reader

    def count() -> float:
        t = time.perf_counter()
        with reader.view() as store:
            store.con.execute("SELECT count(*) FROM company").fetchall()
        return time.perf_counter() - t

    for _ in range(WARMUP):
        count()
    timed["baseline_count"] = {"url": None, **_percentiles([count() for _ in range(n)]), "failed": 0}
    return {"pages": timed, "rows": n * len(pages)}


def _loop_profile(client: Any, params: dict[str, Any]) -> dict[str, Any]:
    url, name = params["pages"]["profile"], params["profile_name"]
    for _ in range(WARMUP):
        _time_get(client, url, name)
    Path(params["ready"]).touch()
    stop = Path(params["stop"])
    requests: list[tuple[float, float, bool]] = []
    while not stop.exists():
        at = time.time()
        seconds, status, _, ok = _time_get(client, url, name)
        requests.append((at, seconds, status == 200 and ok))
    return {"requests": requests, "rows": len(requests)}


# --- the group (run.py's parent process) ----------------------------------------------------------------------
def _urls(profile_key: str) -> dict[str, str]:
    from urllib.parse import quote

    return {
        "static_floor": "/static/app.css",
        "portfolio": "/",
        "companies": "/companies",
        "companies_search": f"/companies?q={SEARCH_TEXT}",
        "companies_by_activity": "/companies?sort=lastActivity&desc=1",
        "profile": f"/companies/{quote(profile_key, safe='')}",
        "explorer": "/api/explorer?model=company&group=status&agg=sum:arr",
    }


def _params(store: Path, warehouse: Path, args: argparse.Namespace, name: str) -> dict[str, Any]:
    import yaml

    section = usage_section(batch_size=args.batch_size, span=args.span)
    doc = config_dict(
        store,
        {"type": "duckdb", "path": str(warehouse)},
        usage=[section],
        crm=[COMPANY_SECTION, END_USER_SECTION, LICENSE_SECTION],
    )
    path = WORK / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return {"config": doc, "config_path": str(path)}


def _size_label(companies: int, rows: int) -> str:
    return f"{companies:,} co / {rows:,} rows"


def bench_pages(args: argparse.Namespace, res: Any) -> None:
    """Page render times at demo size and at ``--page-companies`` / ``--page-usage-rows``, then the profile
    during a backfill of ``--reader-rows`` rows at the larger size."""
    today = date.today()
    sizes = [("demo", DEMO_COMPANIES, DEMO_ROWS), ("large", args.page_companies, args.page_usage_rows)]
    print(f"page render times over uvicorn ({args.page_requests} requests each, after {WARMUP})", flush=True)
    for tag, companies, rows in sizes:
        size = _size_label(companies, rows)
        warehouse = fresh_copy(Path("/nonexistent"), f"pages_warehouse_{tag}.duckdb")
        print(f"  {size}: generating the warehouse, syncing it into a store", flush=True)
        _in_child("make_warehouse", str(warehouse), companies, rows, today.isoformat())
        store = fresh_copy(Path("/nonexistent"), f"store_pages_{tag}.sqlite")
        params = _params(store, warehouse, args, f"pages_{tag}")
        res.add(f"pages_build_{tag}", run_case("pages_store", params), label=f"pages store build, {size}", rate=False)
        built = res.cases[f"pages_build_{tag}"]
        if not built.get("ok"):
            res.skip(f"pages_{tag}", f"pages, {size}", "the store build failed")
            continue
        measured = run_case(
            "pages_requests",
            {
                **params,
                "pages": _urls(built["profile_key"]),
                "requests": args.page_requests,
                "profile_name": built["profile_name"],
            },
        )
        _add_pages(res, tag, size, measured)
        if tag == "large":
            _during_backfill(args, res, params, built, warehouse, companies, rows, today)
        remove_store(store)


def _add_pages(res: Any, tag: str, size: str, measured: Measured) -> None:
    if measured.returncode != 0 or not measured.result:
        res.skip(f"pages_{tag}", f"pages, {size}", "the measuring process failed")
        return
    timed = measured.result["pages"]
    base = timed["baseline_count"]["p50_ms"]
    print(f"    {'page':<24} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9} {'x count':>8} {'KB':>7} failed", flush=True)
    for name, t in timed.items():
        ratio = round(t["p50_ms"] / base, 1) if base and t["p50_ms"] is not None else None
        t["p50_vs_count"] = ratio
        kb = round(t["bytes"] / 1024, 1) if t.get("bytes") is not None else ""
        shown = "" if ratio is None else ratio
        print(
            f"    {name:<24} {t['p50_ms']:>9} {t['p95_ms']:>9} {t['max_ms']:>9} {shown:>8} {kb:>7} {t['failed']}",
            flush=True,
        )
        one = Measured(
            {**t, "seconds": (t["p50_ms"] or 0) / 1000, "rows": t["n"]}, 0.0, 0.0, 0 if not t["failed"] else 1
        )
        res.add(f"pages_{tag}_{name}", one, label=f"page {name}, {size} (s = p50)", rate=False, size=tag)


def _during_backfill(
    args: argparse.Namespace,
    res: Any,
    params: dict[str, Any],
    built: dict[str, Any],
    warehouse: Path,
    companies: int,
    rows: int,
    today: date,
) -> None:
    """The profile in a loop while ``run_usage`` loads ``--reader-rows`` new rows into the same store."""
    extra = args.reader_rows
    print(f"  profile while a backfill of {extra:,} rows writes the store", flush=True)
    _in_child("append_events", str(warehouse), companies, rows + 1, rows + extra, today.isoformat())
    stop, ready = WORK / "pages.stop", WORK / "pages.ready"
    stop.unlink(missing_ok=True)
    ready.unlink(missing_ok=True)
    loop = {
        **params,
        "pages": _urls(built["profile_key"]),
        "profile_name": built["profile_name"],
        "stop": str(stop),
        "ready": str(ready),
    }
    reader = start_case("pages_requests", loop, tag="pages_reader")
    deadline = time.perf_counter() + 300
    while not ready.exists() and reader.proc.poll() is None and time.perf_counter() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # profile requests with no writer: the idle baseline
    writer = wait_child(start_case("usage_engine", params, tag="pages_writer"))
    time.sleep(0.5)
    stop.touch()
    measured = wait_child(reader)
    res.add("pages_backfill_writer", writer, label=f"usage backfill of {extra:,} rows beside the profile requests")
    if not (writer.returncode == 0 and writer.result and measured.returncode == 0 and measured.result):
        res.skip("pages_profile_during_backfill", "profile during a backfill", "the writer or the reader failed")
        return
    lo, hi = writer.result["write_from"], writer.result["write_to"]
    requests = measured.result.pop("requests")
    during = [(s, ok) for at, s, ok in requests if lo <= at <= hi]
    idle = [s for at, s, _ in requests if at < lo]
    stats = _percentiles([s for s, _ in during])
    measured.result = {
        **stats,
        "seconds": (stats["p50_ms"] or 0) / 1000,
        "rows": len(during),
        "failed": sum(1 for _, ok in during if not ok),
        "idle": _percentiles(idle),
        "write_seconds": round(hi - lo, 2),
        "backfill_rows": writer.result.get("rows"),
        "peak_rss_mb": measured.result.get("peak_rss_mb"),
    }
    res.add(
        "pages_profile_during_backfill",
        measured,
        label=f"profile during a {extra:,}-row backfill (rows = requests, s = p50)",
        rate=False,
    )
    r = res.cases["pages_profile_during_backfill"]
    print(
        f"    {r['n']} profile requests during {r['write_seconds']} s of writes: p50 {r['p50_ms']} ms, "
        f"p95 {r['p95_ms']} ms, max {r['max_ms']} ms, {r['failed']} failed; idle p50 {r['idle']['p50_ms']} ms",
        flush=True,
    )


def pages_summary(res: Any) -> dict[str, Any]:
    """The group's figures for results.json: per size, each page's p50/p95/max ms and p50 over the bare count."""
    out: dict[str, Any] = {}
    for tag in ("demo", "large"):
        build = res.cases.get(f"pages_build_{tag}", {})
        if not build.get("ok"):
            continue
        pages = {
            name[len(f"pages_{tag}_") :]: {
                k: case.get(k) for k in ("p50_ms", "p95_ms", "max_ms", "p50_vs_count", "failed")
            }
            for name, case in res.cases.items()
            if name.startswith(f"pages_{tag}_") and "p50_ms" in case
        }
        out[tag] = {"sizes": build.get("sizes"), "profile_usage_rows": build.get("profile_usage_rows"), "pages": pages}
    during = res.cases.get("pages_profile_during_backfill", {})
    if during.get("ok"):
        out["profile_during_backfill"] = {
            k: during.get(k) for k in ("n", "p50_ms", "p95_ms", "max_ms", "failed", "write_seconds", "idle")
        }
    return out
