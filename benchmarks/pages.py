"""The ``pages`` group: how fast the web app's pages render, at demo size and at 100,000 companies / 10M usage rows.

The parent (:func:`bench_pages`, called by run.py) builds one store per size in a child process (``cases.py
pages_store``, see ``pages_store.py``: a generated warehouse synced with the real code, ``sync_section`` for
companies, end users and licenses, ``run_usage`` for the activities, then ``refresh_company_fields``), then
measures each in another child (``cases.py pages_requests``): the app from ``create_app`` served by uvicorn on
127.0.0.1 in a thread, and ``httpx`` requests one after another. Beside the pages, the same child times the floors:
a static file (what HTTP and Starlette cost) and a bare ``SELECT count(*) FROM company`` through the app's own
read-only store view.

Last, at the large size, the profile page is requested in a loop while a usage backfill (``--reader-rows`` more
rows, keys above the loaded ones) writes the same store from another process, as ``bench_reader`` does.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

from common import (
    COMPANY_SECTION,
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
from pages_store import DEMO_COMPANIES, DEMO_ROWS, END_USER_SECTION, LICENSE_SECTION, in_child

WARMUP = 3
#: What ``/companies?q=`` searches for: a word in one company name of eight (the search scans every name).
SEARCH_TEXT = "Globex"


# --- measuring (a case run by cases.py in a child process) ------------------------------------------------------
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
        in_child("make_warehouse", str(warehouse), companies, rows, today.isoformat())
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
    load = {k: measured.result.get(k) for k in ("load_avg_before", "load_avg_after")}
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
        res.add(f"pages_{tag}_{name}", one, label=f"page {name}, {size} (s = p50)", rate=False, size=tag, **load)


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
    in_child("append_events", str(warehouse), companies, rows + 1, rows + extra, today.isoformat())
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
    # Profile requests with no writer, the idle baseline: 2 s, or about five requests at the profile's p50.
    idle_p50 = res.cases.get("pages_large_profile", {}).get("p50_ms") or 0
    time.sleep(max(2.0, 5 * idle_p50 / 1000))
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
        "load_avg_before": measured.result.get("load_avg_before"),
        "load_avg_after": measured.result.get("load_avg_after"),
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
        load = res.cases.get(f"pages_{tag}_baseline_count", {}).get("load_avg_before")
        out[tag] = {
            "sizes": build.get("sizes"),
            "profile_usage_rows": build.get("profile_usage_rows"),
            "load_avg_before": load,
            "pages": pages,
        }
    during = res.cases.get("pages_profile_during_backfill", {})
    if during.get("ok"):
        out["profile_during_backfill"] = {
            k: during.get(k)
            for k in ("n", "p50_ms", "p95_ms", "max_ms", "failed", "write_seconds", "idle", "load_avg_before")
        }
    return out
