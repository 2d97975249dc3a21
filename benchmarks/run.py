"""Benchmark the sync engine against the limits (DuckDB's own Arrow path into a DuckDB file and into a DuckLake)
and dlt, in one run on this machine; plus reader latency during writes, two sections in parallel and a
simulated month of ticks with maintenance.

    .venv/bin/python benchmarks/run.py                  # defaults: 5M usage rows, 1M companies (~13 min)
    .venv/bin/python benchmarks/run.py --quick          # small sizes, a smoke run (~4 min)
    .venv/bin/python benchmarks/run.py --only usage,crm # some groups only

Prints one table (rows/s, seconds, peak RSS, ratio to the limit and to dlt) and writes every figure to
benchmarks/results.json (quick runs: benchmarks/.work/results-quick.json). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import yaml
from changelog import bench_change_log, change_log_summary
from common import (
    BENCH_DIR,
    COMPANIES_CHANGE_SQL,
    COMPANY_SECTION,
    WORK,
    Measured,
    append_events,
    companies_warehouse,
    config_dict,
    events_warehouse,
    fresh_copy,
    remove_store,
    run_case,
    run_child,
    start_case,
    store_files,
    template_store,
    usage_section,
    wait_child,
)
from pages import bench_pages, pages_summary

from planhat_pipelines.config import DEFAULT_USAGE_BATCH_SIZE

GROUPS = (
    "usage",
    "dlt",
    "tick",
    "crm",
    "memory",
    "emulators",
    "dagster",
    "reader",
    "parallel",
    "month",
    "pages",
    "changelog",
)


class Results:
    """Every measured case, by name, in the order they ran."""

    def __init__(self) -> None:
        self.cases: dict[str, dict[str, Any]] = {}

    def add(
        self, name: str, measured: Measured, *, label: str, rows: int | None = None, rate: bool = True, **extra: Any
    ) -> None:
        """Record a case; ``rate=False`` for a case whose rows are not throughput (the reader's queries)."""
        res = measured.result
        ok = measured.returncode == 0 and bool(res)
        seconds = res.get("seconds", measured.wall_seconds) if ok else None
        n = rows if rows is not None else res.get("rows")
        entry: dict[str, Any] = {
            "label": label,
            "ok": ok,
            "rows": n,
            "seconds": None if seconds is None else round(seconds, 3),
            "rows_per_s": round(n / seconds) if rate and ok and n and seconds else None,
            "wall_seconds": round(measured.wall_seconds, 3),
            # The child's own VmHWM when it reports one (cases.py does), else its ru_maxrss.
            "peak_rss_mb": res.get("peak_rss_mb") or round(measured.peak_rss_mb, 1),
            "ru_maxrss_mb": round(measured.peak_rss_mb, 1),
        }
        entry.update({k: v for k, v in res.items() if k not in ("seconds", "rows", "peak_rss_mb")})
        entry.update(extra)
        self.cases[name] = entry
        status = (
            f"{entry['seconds']:.2f} s, {entry['rows_per_s'] or 0:,} rows/s, {entry['peak_rss_mb']:.0f} MB"
            if ok
            else "FAILED"
        )
        print(f"  {label}: {status}", flush=True)

    def skip(self, name: str, label: str, reason: str) -> None:
        self.cases[name] = {"label": label, "ok": False, "skipped": reason}
        print(f"  {label}: skipped ({reason})", flush=True)

    def rps(self, name: str) -> float | None:
        case = self.cases.get(name, {})
        return case.get("rows_per_s") if case.get("ok") else None

    def seconds(self, name: str) -> float | None:
        case = self.cases.get(name, {})
        return case.get("seconds") if case.get("ok") else None


def _ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def _write_config(name: str, doc: dict[str, Any]) -> Path:
    path = WORK / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _usage_params(store: Path, warehouse_conn: dict[str, Any], section: dict[str, Any], name: str) -> dict[str, Any]:
    doc = config_dict(store, warehouse_conn, usage=[section])
    return {"config": doc, "config_path": str(_write_config(name, doc))}


def _duckdb_conn(path: Path) -> dict[str, Any]:
    return {"type": "duckdb", "path": str(path)}


# --- groups ----------------------------------------------------------------------------------------------------
def bench_usage(args: argparse.Namespace, res: Results, warehouse: Path) -> Path:
    """The engine's usage ingest of N rows and the limit on the same rows; returns the loaded store."""
    print(f"usage ingest of {args.rows:,} rows (batch {args.batch_size:,}, span {args.span:,})", flush=True)
    section = usage_section(batch_size=args.batch_size, span=args.span)
    store = fresh_copy(template_store(), "store_ingest.sqlite")
    params = _usage_params(store, _duckdb_conn(warehouse), section, "usage_ingest")
    res.add("usage_ingest", run_case("usage_engine", params), label=f"usage ingest, engine (run_usage) {args.rows:,}")
    target = fresh_copy(Path("/nonexistent"), "limit.duckdb")
    res.add(
        "limit",
        run_case("limit", {"warehouse": str(warehouse), "target": str(target), "batch_size": args.batch_size}),
        label="limit: DuckDB Arrow read -> INSERT into PK table, 1 tx",
    )
    target = fresh_copy(Path("/nonexistent"), "limit.duckdb")
    params = {"warehouse": str(warehouse), "target": str(target), "batch_size": args.batch_size}
    res.add(
        "limit_commit_each_batch",
        run_case("limit", {**params, "commit_each_batch": True}),
        label="limit, committing every batch (exactly-once floor)",
    )
    for name, each, what in (
        ("limit_ducklake", False, "1 tx"),
        ("limit_ducklake_commit_each_batch", True, "commit every batch"),
    ):
        target = fresh_copy(Path("/nonexistent"), "limit_ducklake.sqlite")
        params = {
            "warehouse": str(warehouse),
            "target": str(target),
            "data_path": str(store_files(target)),
            "target_kind": "ducklake",
            "batch_size": args.batch_size,
            "commit_each_batch": each,
        }
        res.add(name, run_case("limit", params), label=f"DuckLake limit: Arrow -> append, SQLite catalog, {what}")
    limit_store = fresh_copy(template_store(), "store_limit.sqlite")
    params = _usage_params(limit_store, _duckdb_conn(warehouse), section, "store_limit")
    res.add(
        "store_limit",
        run_case("store_limit", {**params, "warehouse": str(warehouse), "rows": args.rows}),
        label="store limit: same batches -> store's user_activities, commit each batch, no validation",
    )
    remove_store(limit_store)
    return store


def _dlt_params(warehouse: Path, batch_size: int, pipeline: str, fresh: bool = True) -> dict[str, Any]:
    destination = WORK / f"{pipeline}.duckdb"
    pipelines_dir = WORK / "dlt_pipelines"
    if fresh:
        destination.unlink(missing_ok=True)
        shutil.rmtree(pipelines_dir / pipeline, ignore_errors=True)
    return {
        "warehouse": str(warehouse),
        "destination": str(destination),
        "pipelines_dir": str(pipelines_dir),
        "pipeline": pipeline,
        "batch_size": batch_size,
    }


def bench_dlt(args: argparse.Namespace, res: Results, warehouse: Path) -> None:
    print("dlt on the same rows (merge on event_id, incremental on event_id)", flush=True)
    res.add(
        "dlt_resource",
        run_case("dlt_resource", _dlt_params(warehouse, args.batch_size, "bench_arrow")),
        label="dlt: Arrow resource, incremental, merge",
    )
    if args.no_sql_table:
        res.skip("dlt_sql_table", "dlt: sql_table backend=pyarrow, merge", "--no-sql-table")
        return
    try:
        import duckdb_engine  # noqa: F401
    except ImportError:
        res.skip(
            "dlt_sql_table",
            "dlt: sql_table backend=pyarrow, merge",
            "duckdb-engine is not installed (pip install duckdb-engine)",
        )
        return
    res.add(
        "dlt_sql_table",
        run_case("dlt_sql_table", _dlt_params(warehouse, args.batch_size, "bench_sql_table")),
        label="dlt: sql_table backend=pyarrow, merge",
    )


def bench_tick(args: argparse.Namespace, res: Results, warehouse: Path, ingest_store: Path | None) -> None:
    """Incremental ticks on top of N loaded rows: 1 % new, 0.1 % new, nothing new; and 1 % of N on a smaller base."""
    if ingest_store is None or not ingest_store.exists():
        res.skip("tick_1pct", "tick", "needs the usage group (its loaded store)")
        return
    print("incremental ticks", flush=True)
    section = usage_section(batch_size=args.batch_size, span=args.span)
    tick_wh = fresh_copy(warehouse, "warehouse_tick.duckdb")
    store = fresh_copy(ingest_store, "store_tick.sqlite")
    new = max(1, args.rows // 100)
    steps = [("tick_1pct", new, "1 %"), ("tick_0p1pct", max(1, args.rows // 1000), "0.1 %"), ("tick_empty", 0, "no")]
    top = args.rows
    dlt_state = _dlt_params(tick_wh, args.batch_size, "bench_arrow", fresh=False)
    for name, count, what in steps:
        append_events(tick_wh, top + 1, top + count)
        top += count
        params = _usage_params(store, _duckdb_conn(tick_wh), section, name)
        res.add(
            name, run_case("usage_engine", params), label=f"tick, engine: {what} new rows ({count:,}) on {args.rows:,}"
        )
        if name == "tick_1pct" and res.cases.get("dlt_resource", {}).get("ok"):
            res.add(
                "dlt_tick_1pct",
                run_case("dlt_resource", dlt_state),
                label=f"tick, dlt Arrow resource: 1 % new rows ({count:,})",
            )
    # The same number of new rows on a table 1/5 the size: the tick's time should not change.
    base = min(args.memory_rows)
    if base < args.rows:
        small_wh = fresh_copy(events_warehouse(base), "warehouse_tick_small.duckdb")
        small_store = fresh_copy(template_store(), "store_tick_small.sqlite")
        params = _usage_params(small_store, _duckdb_conn(small_wh), section, "tick_small_base_load")
        run_case("usage_engine", params)
        append_events(small_wh, base + 1, base + new)
        res.add(
            "tick_1pct_small_base",
            run_case("usage_engine", params),
            label=f"tick, engine: {new:,} new rows on {base:,}",
        )


def bench_crm(args: argparse.Namespace, res: Results) -> None:
    print(f"CRM receive of {args.companies:,} companies", flush=True)
    warehouse = companies_warehouse(args.companies)
    store = fresh_copy(Path("/nonexistent"), "store_crm.sqlite")
    doc = config_dict(store, _duckdb_conn(warehouse), crm=[COMPANY_SECTION])
    params = {"config": doc, "config_path": str(_write_config("crm", doc))}
    res.add(
        "crm_plain_read",
        run_case("plain_read", {"warehouse": str(warehouse), "table": "crm_companies", "batch_size": 50_000}),
        label="CRM baseline: plain Arrow read, all columns",
    )
    res.add("crm_full", run_case("crm_sync", params), label="CRM receive: first full sync")
    res.add("crm_nochange", run_case("crm_sync", params), label="CRM receive: re-sync, no change")
    con = duckdb.connect(str(warehouse))
    changed = con.execute(COMPANIES_CHANGE_SQL).fetchall()[0][0]
    con.close()
    res.add("crm_1pct", run_case("crm_sync", params), label=f"CRM receive: re-sync, 1 % changed ({changed:,})")


def bench_memory(args: argparse.Namespace, res: Results) -> None:
    print(f"peak memory of the usage sync, batch {args.batch_size:,}", flush=True)
    section = usage_section(batch_size=args.batch_size, span=args.span)
    for rows in args.memory_rows:
        warehouse = events_warehouse(rows)
        store = fresh_copy(template_store(), f"store_mem_{rows}.sqlite")
        params = _usage_params(store, _duckdb_conn(warehouse), section, f"memory_{rows}")
        res.add(f"memory_{rows}", run_case("usage_engine", params), label=f"usage sync memory at {rows:,} rows")
        res.add(
            f"check_{rows}",
            run_case("check_cost", {**params, "warehouse": str(warehouse), "through": rows}),
            label=f"row_count_matches_source at {rows:,} source rows (s = the check's queries)",
        )
        remove_store(store)


def bench_emulators(args: argparse.Namespace, res: Results) -> None:
    import emulators

    rows = args.emulator_rows
    print(f"usage ingest of {rows:,} rows from each warehouse adapter", flush=True)
    section = usage_section(batch_size=min(args.batch_size, rows), span=args.span)
    warehouse = events_warehouse(rows)
    store = fresh_copy(template_store(), "store_adapter_duckdb.sqlite")
    params = _usage_params(store, _duckdb_conn(warehouse), section, "adapter_duckdb")
    res.add("adapter_duckdb", run_case("usage_engine", params), label=f"usage ingest {rows:,}, DuckDB adapter")
    data = emulators.usage_rows(warehouse)
    try:
        with emulators.snowflake_server() as conn:
            seed = emulators.seed_snowflake(conn, data)
            store = fresh_copy(template_store(), "store_adapter_snowflake.sqlite")
            params = _usage_params(store, conn, section, "adapter_snowflake")
            env = {**os.environ, **emulators.SNOWFLAKE_ENV}
            res.add(
                "adapter_snowflake",
                run_case("usage_engine", params, env=env),
                label=f"usage ingest {rows:,}, Snowflake adapter (fakesnow)",
                seed_seconds=round(seed, 2),
            )
    except Exception as exc:  # an emulator that cannot start must not lose the other figures
        res.skip("adapter_snowflake", "usage ingest, Snowflake adapter (fakesnow)", f"{type(exc).__name__}: {exc}")
    try:
        with emulators.bigquery_server() as emulator:
            conn, seed = emulators.seed_bigquery(emulator, data)
            store = fresh_copy(template_store(), "store_adapter_bigquery.sqlite")
            params = _usage_params(store, conn, section, "adapter_bigquery")
            res.add(
                "adapter_bigquery",
                run_case("usage_engine", params),
                label=f"usage ingest {rows:,}, BigQuery adapter (local-bigquery)",
                seed_seconds=round(seed, 2),
            )
    except Exception as exc:
        res.skip("adapter_bigquery", "usage ingest, BigQuery adapter (local-bigquery)", f"{type(exc).__name__}: {exc}")


def _dagster(home: Path, config: Path, partition_args: list[str]) -> Measured:
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PLANHAT_PIPELINES_CONFIG": str(config)}
    argv = [str(dagster), "asset", "materialize", "-m", "planhat_pipelines.definitions", "--select", "usage/events"]
    return run_child([*argv, *partition_args], env=env)


def _dagster_home(name: str, partition_keys: list[str]) -> Path:
    import dagster as dg

    from planhat_pipelines.defs.usage import usage_partitions
    from planhat_pipelines.sync.ranges import KeyRangeSpan  # noqa: F401  (keeps the import cost out of timing)

    home = WORK / "dagster" / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("usage_events_ranges", partition_keys)
    assert usage_partitions  # the partitions' name above is the one usage_partitions() builds
    return home


def _stored(store: Path) -> int:
    from planhat_pipelines.store import ModelStore, StoreLocation

    with ModelStore(StoreLocation.of_file(store, store_files(store)), read_only=True) as model_store:
        return int(model_store.con.execute("SELECT count(*) FROM user_activities").fetchall()[0][0])


def bench_dagster(args: argparse.Namespace, res: Results, warehouse: Path) -> None:
    from planhat_pipelines.sync.ranges import range_of

    span = max(1, args.rows // args.ranges)
    batch = min(args.batch_size, span)
    keys = [range_of(i * span, span).partition_key for i in range(args.ranges)]
    print(f"Dagster's share: {args.ranges} ranges of {span:,} keys (batch {batch:,})", flush=True)
    section = usage_section(batch_size=batch, span=span)
    cases = [
        ("one", keys[1:2], ["--partition", keys[1]]),
        ("backfill", keys, ["--partition-range", f"{keys[0]}...{keys[-1]}"]),
    ]
    startup_params = _usage_params(
        fresh_copy(template_store(), "store_startup.sqlite"), _duckdb_conn(warehouse), section, "startup"
    )
    res.add(
        "dagster_startup", run_case("dagster_startup", startup_params), label="Dagster run start: imports + definitions"
    )
    for what, part_keys, cli in cases:
        label = "1 range" if what == "one" else f"backfill of {len(part_keys)} ranges (single run)"
        store = fresh_copy(template_store(), f"store_engine_{what}.sqlite")
        params = _usage_params(store, _duckdb_conn(warehouse), section, f"engine_{what}")
        res.add(
            f"engine_{what}",
            run_case("usage_engine", {**params, "partition_keys": part_keys}),
            label=f"engine alone, {label}",
        )
        rows = res.cases[f"engine_{what}"].get("rows")
        store = fresh_copy(template_store(), f"store_dagster_{what}.sqlite")
        params = _usage_params(store, _duckdb_conn(warehouse), section, f"dagster_{what}")
        home = _dagster_home(what, keys)
        measured = _dagster(home, Path(params["config_path"]), cli)
        stored = _stored(store) if measured.returncode == 0 else None
        measured.result = {"seconds": measured.wall_seconds, "stored": stored} if measured.returncode == 0 else {}
        res.add(f"dagster_{what}", measured, label=f"dagster asset materialize, {label}", rows=stored)
        if stored is not None and rows is not None and stored != rows:
            print(f"  warning: Dagster stored {stored} rows, the engine read {rows}", flush=True)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_reader(args: argparse.Namespace, res: Results) -> None:
    """A read-only reader querying every 100 ms while two sections' run_usage each backfill --reader-rows rows
    (three processes: two writers, one reader)."""
    rows = args.reader_rows
    print(f"reader latency while two sections write {rows:,} rows each (query every 100 ms)", flush=True)
    wa = events_warehouse(rows)
    wb = fresh_copy(wa, "warehouse_reader_b.duckdb")
    sections = [
        usage_section("events_a", batch_size=args.batch_size, span=args.span, connection="wa"),
        usage_section("events_b", batch_size=args.batch_size, span=args.span, connection="wb"),
    ]
    store = fresh_copy(template_store(), "store_reader.sqlite")
    doc = config_dict(store, connections={"wa": _duckdb_conn(wa), "wb": _duckdb_conn(wb)}, usage=sections)
    params = {"config": doc, "config_path": str(_write_config("reader_writer", doc))}
    stop, ready = WORK / "reader.stop", WORK / "reader.ready"
    stop.unlink(missing_ok=True)
    ready.unlink(missing_ok=True)
    reader_params = {
        "catalog": str(store),
        "data_path": str(store_files(store)),
        "stop": str(stop),
        "ready": str(ready),
        "interval": 0.1,
    }
    reader = start_case("reader", reader_params, tag="reader")
    deadline = time.perf_counter() + 120
    while not ready.exists() and reader.proc.poll() is None and time.perf_counter() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # queries with no writer: the idle baseline
    running = [start_case("usage_engine", {**params, "section_index": i}, tag=f"reader_writer{i}") for i in (0, 1)]
    writers = [wait_child(r) for r in running]
    time.sleep(0.5)
    stop.touch()
    measured = wait_child(reader)
    for i, writer in enumerate(writers):
        res.add(f"reader_writer_{'ab'[i]}", writer, label=f"section {'ab'[i]} backfill {rows:,} beside the reader")
    if not (all(w.returncode == 0 and w.result for w in writers) and measured.returncode == 0 and measured.result):
        res.skip("reader_latency", "reader latency during writes", "a writer or the reader failed")
        return
    # While both write: from the later start to the earlier end.
    lo = max(w.result["write_from"] for w in writers)
    hi = min(w.result["write_to"] for w in writers)
    queries = measured.result.pop("queries")
    during = [w for at, w in queries if lo <= at <= hi]
    idle = [w for at, w in queries if at < lo]
    measured.result = {
        "seconds": _percentile(during, 0.95) or 0.0,
        "rows": len(during),
        "queries_during_write": len(during),
        "wait_p50_s": _round(_percentile(during, 0.5)),
        "wait_p95_s": _round(_percentile(during, 0.95)),
        "wait_max_s": _round(max(during) if during else None),
        "idle_queries": len(idle),
        "idle_wait_p50_s": _round(_percentile(idle, 0.5)),
        "idle_wait_max_s": _round(max(idle) if idle else None),
        "write_seconds": round(hi - lo, 2),
        "reader_errors": len(measured.result["errors"]),
        "reader_error_examples": measured.result["errors"][:3],
        "attach_seconds": round(measured.result["attach_seconds"], 3),
        "peak_rss_mb": measured.result.get("peak_rss_mb"),
    }
    res.add(
        "reader_latency",
        measured,
        label="reader every 100 ms while both write (rows = queries, s = p95 wait)",
        rate=False,
    )
    r = res.cases["reader_latency"]
    print(
        f"    {r['queries_during_write']} queries during {r['write_seconds']} s of writes: p50 {r['wait_p50_s']} s, "
        f"p95 {r['wait_p95_s']} s, max {r['wait_max_s']} s; idle p50 {r['idle_wait_p50_s']} s; "
        f"{r['reader_errors']} errors",
        flush=True,
    )


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def bench_parallel(args: argparse.Namespace, res: Results) -> None:
    """Two usage sections (two warehouse files) written by two processes at once, against one alone."""
    rows = args.parallel_rows
    print(f"two sections in parallel, {rows:,} rows each, against one alone", flush=True)
    wa = events_warehouse(rows)
    wb = fresh_copy(wa, "warehouse_parallel_b.duckdb")
    sections = [
        usage_section("events_a", batch_size=args.batch_size, span=args.span, connection="wa"),
        usage_section("events_b", batch_size=args.batch_size, span=args.span, connection="wb"),
    ]
    connections = {"wa": _duckdb_conn(wa), "wb": _duckdb_conn(wb)}

    def params_for(store: Path, name: str) -> dict[str, Any]:
        doc = config_dict(store, connections=connections, usage=sections)
        return {"config": doc, "config_path": str(_write_config(name, doc))}

    alone = run_case("usage_engine", params_for(fresh_copy(template_store(), "store_alone.sqlite"), "alone"))
    res.add("parallel_alone", alone, label=f"one section alone, {rows:,} rows")
    both = fresh_copy(template_store(), "store_parallel.sqlite")
    params = params_for(both, "parallel")
    started = time.perf_counter()
    running = [start_case("usage_engine", {**params, "section_index": i}, tag=f"parallel{i}") for i in (0, 1)]
    measured = [wait_child(r) for r in running]
    wall = time.perf_counter() - started
    for i, m in enumerate(measured):
        res.add(f"parallel_{'ab'[i]}", m, label=f"two sections at once: section {'ab'[i]} ({rows:,} rows)")
    if not all(m.returncode == 0 and m.result for m in measured):
        res.skip("parallel_combined", "two sections at once, combined", "a writer failed")
        return
    lo = min(m.result["write_from"] for m in measured)
    hi = max(m.result["write_to"] for m in measured)
    total = sum(m.result["rows"] for m in measured)
    stored = _stored(both)
    combined = Measured(
        {
            "seconds": hi - lo,
            "rows": total,
            "stored": stored,
            "processes_wall_seconds": round(wall, 2),
            "peak_rss_mb": max(m.result.get("peak_rss_mb") or 0 for m in measured),
        },
        wall,
        max(m.peak_rss_mb for m in measured),
        0,
    )
    res.add("parallel_combined", combined, label="two sections at once, combined (first start to last end)")
    if stored != 2 * rows:
        print(f"  warning: the store holds {stored} rows, expected {2 * rows}", flush=True)


def bench_month(args: argparse.Namespace, res: Results) -> None:
    """A month of 5-minute ticks, scaled down: --ticks run_usage calls of --tick-rows rows, then maintenance."""
    ticks, per = args.ticks, args.tick_rows
    print(
        f"a month of ticks, simulated: {ticks} ticks of {per} rows, then a full scan vs maintained vs fresh", flush=True
    )
    warehouse = events_warehouse(ticks * per)
    section = usage_section(batch_size=args.batch_size, span=args.span)
    ticked = _usage_params(fresh_copy(template_store(), "store_ticked.sqlite"), _duckdb_conn(warehouse), section, "t")
    fresh = _usage_params(fresh_copy(template_store(), "store_fresh.sqlite"), _duckdb_conn(warehouse), section, "f")
    params = {
        "ticked_config": ticked["config"],
        "ticked_config_path": ticked["config_path"],
        "fresh_config": fresh["config"],
        "fresh_config_path": fresh["config_path"],
        "ticks": ticks,
        "tick_rows": per,
    }
    res.add("month_ticks", run_case("month_ticks", params), label=f"{ticks} ticks of {per} rows (run_usage each)")
    case = res.cases["month_ticks"]
    if case.get("ok"):
        b, a, f = (case[k] for k in ("scan_ticked_before_maintain", "scan_ticked_after_maintain", "scan_fresh_load"))
        print(
            f"    full scan median: ticked {b['median_s']} s ({b['data_files']} files, {b['snapshots']} snapshots), "
            f"after maintain {a['median_s']} s ({a['data_files']} files), fresh load {f['median_s']} s "
            f"({f['data_files']} files); maintain took {case['maintain_seconds']} s; tick median first 10 "
            f"{case['tick_first10_median_s']} s, last 10 {case['tick_last10_median_s']} s, after maintain "
            f"{case['tick_after_maintain_median_s']} s",
            flush=True,
        )


# --- report ------------------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    import pyarrow

    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
    }
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        info["memory_gib"] = round(int(meminfo[0].split()[1]) / 1024 / 1024, 1)
        cpu = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")]
        info["cpu"] = cpu[0].split(":", 1)[1].strip() if cpu else None
    except OSError:
        pass
    for module in ("dlt", "dagster", "fakesnow"):
        try:
            info[module] = __import__(module).__version__
        except Exception:
            info[module] = None
    return info


def derive(args: argparse.Namespace, res: Results) -> dict[str, Any]:
    """Ratios and target checks from this run's figures (reported, never asserted)."""
    usage, limit, dlt = res.rps("usage_ingest"), res.rps("limit"), res.rps("dlt_resource")
    ducklake_limit = res.rps("limit_ducklake_commit_each_batch")
    out: dict[str, Any] = {
        "usage_vs_limit": _ratio(usage, limit, 3),
        "usage_vs_ducklake_limit": _ratio(usage, ducklake_limit, 3),
        "usage_vs_ducklake_limit_1tx": _ratio(usage, res.rps("limit_ducklake"), 3),
        "ducklake_limit_vs_duckdb_limit": _ratio(ducklake_limit, res.rps("limit_commit_each_batch"), 3),
        "usage_vs_dlt": _ratio(usage, dlt, 3),
        "usage_vs_dlt_sql_table": _ratio(usage, res.rps("dlt_sql_table"), 3),
    }
    tick, tick_small, tick01 = res.seconds("tick_1pct"), res.seconds("tick_1pct_small_base"), res.seconds("tick_0p1pct")
    empty = res.seconds("tick_empty")
    out["tick"] = {
        "tick_1pct_seconds": tick,
        "tick_0p1pct_seconds": tick01,
        "tick_empty_seconds": empty,
        "tick_1pct_small_base_seconds": tick_small,
        "tick_1pct_rows_per_s": res.rps("tick_1pct"),
        "tick_1pct_vs_small_base": _ratio(tick, tick_small),
        "tick_1pct_vs_0p1pct": _ratio(tick, tick01),
    }
    plain, nochange = res.seconds("crm_plain_read"), res.seconds("crm_nochange")
    out["crm_nochange_vs_plain_read"] = _ratio(nochange, plain)
    mem = [res.cases.get(f"memory_{r}", {}).get("peak_rss_mb") for r in args.memory_rows]
    mem_ok = [m for m in mem if m]
    out["memory_peak_mb"] = dict(zip([str(r) for r in args.memory_rows], mem, strict=True))
    out["memory_growth"] = round(max(mem_ok) / min(mem_ok) - 1, 3) if len(mem_ok) > 1 else None
    d1, e1 = res.seconds("dagster_one"), res.seconds("engine_one")
    db, eb = res.seconds("dagster_backfill"), res.seconds("engine_backfill")
    out["dagster"] = {
        "one_range_overhead_seconds": round(d1 - e1, 2) if d1 and e1 else None,
        "one_range_ratio": _ratio(d1, e1),
        "backfill_overhead_seconds": round(db - eb, 2) if db and eb else None,
        "backfill_ratio": _ratio(db, eb),
    }
    reader = res.cases.get("reader_latency", {})
    out["reader"] = {k: reader.get(k) for k in ("queries_during_write", "wait_p50_s", "wait_p95_s", "wait_max_s")}
    out["reader"]["idle_wait_p50_s"] = reader.get("idle_wait_p50_s")
    alone, combined = res.rps("parallel_alone"), res.rps("parallel_combined")
    out["parallel"] = {
        "alone_seconds": res.seconds("parallel_alone"),
        "alone_rows_per_s": alone,
        "both_seconds": res.seconds("parallel_combined"),
        "combined_rows_per_s": combined,
        "speedup": _ratio(combined, alone),
    }
    month = res.cases.get("month_ticks", {})
    if month.get("ok"):
        b, a, f = (month[k] for k in ("scan_ticked_before_maintain", "scan_ticked_after_maintain", "scan_fresh_load"))
        out["month"] = {
            "ticks": month["ticks"],
            "tick_rows": month["tick_rows"],
            "tick_p50_s": month["tick_p50_s"],
            "tick_first10_median_s": month["tick_first10_median_s"],
            "tick_last10_median_s": month["tick_last10_median_s"],
            "tick_after_maintain_median_s": month["tick_after_maintain_median_s"],
            "snapshots": {"ticked": b["snapshots"], "fresh": f["snapshots"]},
            "scan_median_s": {"ticked": b["median_s"], "maintained": a["median_s"], "fresh": f["median_s"]},
            "scan_first_s": {"ticked": b["first_s"], "maintained": a["first_s"], "fresh": f["first_s"]},
            "data_files": {"ticked": b["data_files"], "maintained": a["data_files"], "fresh": f["data_files"]},
            "ticked_vs_fresh": _ratio(b["median_s"], f["median_s"]),
            "maintained_vs_fresh": _ratio(a["median_s"], f["median_s"]),
            "maintain_seconds": month["maintain_seconds"],
        }
    store_limit = res.rps("store_limit")
    out["usage_vs_store_limit"] = _ratio(usage, store_limit, 3)
    crm_1pct = res.seconds("crm_1pct")
    out["crm_1pct_vs_plain_read"] = _ratio(crm_1pct, plain)
    startup = res.cases.get("dagster_startup", {})
    out["dagster"]["run_start"] = {
        k: startup.get(k) for k in ("import_dagster_s", "import_definitions_s", "build_definitions_s")
    }
    checks = {}
    for rows in args.memory_rows:
        c = res.cases.get(f"check_{rows}", {})
        if c.get("ok"):
            checks[str(rows)] = {
                "check_s": c["check_s"],
                "aggregate_s": c["aggregate_s"],
                "streamed_before_s": c["streamed_s"],
                "check_vs_aggregate": _ratio(c["check_s"], c["aggregate_s"]),
                "passed": c["passed"],
            }
    out["check_cost"] = checks
    out["pages"] = pages_summary(res)
    out["change_log"] = change_log_summary(res)
    # What the check costs beyond the warehouse's own aggregate (the store's statistics, the describe): it must
    # not grow with the source.
    beyond = [v["check_s"] - v["aggregate_s"] for v in checks.values()]
    for v in checks.values():
        v["beyond_aggregate_s"] = round(v["check_s"] - v["aggregate_s"], 4)
    out["issue16_targets"] = {
        "1_usage_ingest_at_least_0.75x_store_limit": _check(out["usage_vs_store_limit"], lambda v: v >= 0.75),
        "1_usage_ingest_at_least_1.5x_dlt": _check(out["usage_vs_dlt"], lambda v: v >= 1.5),
        "2_crm_nochange_within_2x_plain_read": _check(out["crm_nochange_vs_plain_read"], lambda v: v <= 2),
        "2_crm_1pct_within_3x_plain_read": _check(out["crm_1pct_vs_plain_read"], lambda v: v <= 3),
        "3_memory_flat_within_20pct": _check(out["memory_growth"], lambda v: v <= 0.2),
        "4_dagster_one_range_within_3x_engine": _check(out["dagster"]["one_range_ratio"], lambda v: v <= 3),
        "5_reader_p95_under_200ms_two_writers": _check(out["reader"]["wait_p95_s"], lambda v: v < 0.2),
        # Beyond the warehouse's aggregate the check costs a constant: within 1.5x from the smallest to the largest.
        "6_check_cost_beyond_aggregate_flat": (max(beyond) <= 1.5 * min(beyond)) if len(beyond) > 1 else None,
    }
    tick_linear = None
    if tick and tick_small:
        tick_linear = abs(tick / tick_small - 1) <= 0.5
    out["targets"] = {
        "usage_ingest_at_least_50pct_of_limit": _check(out["usage_vs_limit"], lambda v: v >= 0.5),
        "usage_ingest_at_least_3x_dlt": _check(out["usage_vs_dlt"], lambda v: v >= 3),
        "tick_time_independent_of_table_size": tick_linear,
        "crm_nochange_within_2x_plain_read": _check(out["crm_nochange_vs_plain_read"], lambda v: v <= 2),
        "memory_flat_within_20pct": _check(out["memory_growth"], lambda v: v <= 0.2),
        "usage_ingest_at_least_50pct_of_ducklake_limit": _check(out["usage_vs_ducklake_limit"], lambda v: v >= 0.5),
    }
    return out


def _check(value: float | None, test: Any) -> bool | None:
    return None if value is None else bool(test(value))


def print_table(res: Results) -> None:
    """rows/s against the DuckDB-file limit (one transaction), the store limit (the same batches appended to the
    store's own table, commit every batch: issue 16's limit) and dlt."""
    limit, dlt = res.rps("limit"), res.rps("dlt_resource")
    lake = res.rps("store_limit")
    head = (
        f"{'case':<62} {'rows':>11} {'seconds':>9} {'rows/s':>11} {'peak MB':>8} {'x limit':>8} {'x st lim':>8} "
        f"{'x dlt':>7}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for case in res.cases.values():
        if not case.get("ok"):
            print(f"{case['label']:<62} {'skipped: ' + case['skipped'] if 'skipped' in case else 'FAILED'}")
            continue
        rps = case.get("rows_per_s")
        xl, xk, xd = _ratio(rps, limit), _ratio(rps, lake), _ratio(rps, dlt)
        print(
            f"{case['label'][:62]:<62} {case['rows'] or 0:>11,} {case['seconds']:>9.2f} {rps or 0:>11,} "
            f"{case['peak_rss_mb']:>8.0f} {xl if xl is not None else '':>8} {xk if xk is not None else '':>8} "
            f"{xd if xd is not None else '':>7}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=lambda s: int(float(s)), default=5_000_000, help="usage rows N (default 5e6)")
    p.add_argument(
        "--batch-size",
        type=lambda s: int(float(s)),
        default=DEFAULT_USAGE_BATCH_SIZE,
        help="usage batch size (default: the config default)",
    )
    p.add_argument("--span", type=lambda s: int(float(s)), default=1_000_000, help="usage partition span (keys)")
    p.add_argument("--companies", type=lambda s: int(float(s)), default=1_000_000, help="CRM companies")
    p.add_argument("--memory-rows", default="1e6,5e6,1e7", help="usage sizes for the memory check")
    p.add_argument("--emulator-rows", type=lambda s: int(float(s)), default=200_000, help="rows per emulator")
    p.add_argument("--ranges", type=int, default=100, help="ranges in the Dagster backfill")
    p.add_argument(
        "--reader-rows", type=lambda s: int(float(s)), default=3_000_000, help="rows written beside the reader"
    )
    p.add_argument("--parallel-rows", type=lambda s: int(float(s)), default=2_000_000, help="rows per parallel section")
    p.add_argument("--ticks", type=int, default=100, help="ticks in the simulated month")
    p.add_argument("--tick-rows", type=int, default=200, help="rows per simulated tick")
    p.add_argument("--page-companies", type=lambda s: int(float(s)), default=100_000, help="companies (pages)")
    p.add_argument("--page-usage-rows", type=lambda s: int(float(s)), default=10_000_000, help="usage rows (pages)")
    p.add_argument("--page-requests", type=int, default=50, help="timed requests per page (pages)")
    p.add_argument("--changelog-companies", type=lambda s: int(float(s)), default=100_000, help="companies (changelog)")
    p.add_argument("--changelog-repeats", type=int, default=3, help="runs per case, alternating (changelog)")
    p.add_argument("--only", default=",".join(GROUPS), help=f"groups to run, of {','.join(GROUPS)}")
    p.add_argument("--no-sql-table", action="store_true", help="skip dlt sql_table (slow)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.companies, args.emulator_rows = 200_000, 50_000, 20_000
        args.memory_rows, args.span, args.batch_size = "50e3,100e3,200e3", 50_000, 10_000
        args.reader_rows, args.parallel_rows, args.ticks = 200_000, 100_000, 40
        args.page_companies, args.page_usage_rows = 5_000, 200_000
        args.changelog_companies = 10_000
    args.memory_rows = [int(float(x)) for x in str(args.memory_rows).split(",")]
    args.only = [g.strip() for g in args.only.split(",") if g.strip()]
    if args.out is None:
        args.out = WORK / "results-quick.json" if args.quick else BENCH_DIR / "results.json"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    res = Results()
    print("generating data under benchmarks/.work/ (cached between runs)", flush=True)
    warehouse = events_warehouse(args.rows)
    template_store()
    ingest_store = None
    if "usage" in args.only:
        ingest_store = bench_usage(args, res, warehouse)
    if "dlt" in args.only:
        bench_dlt(args, res, warehouse)
    if "dagster" in args.only:
        bench_dagster(args, res, warehouse)
    if "tick" in args.only:
        bench_tick(args, res, warehouse, ingest_store)
    if "crm" in args.only:
        bench_crm(args, res)
    if "memory" in args.only:
        bench_memory(args, res)
    if "emulators" in args.only:
        bench_emulators(args, res)
    if "reader" in args.only:
        bench_reader(args, res)
    if "parallel" in args.only:
        bench_parallel(args, res)
    if "month" in args.only:
        bench_month(args, res)
    if "pages" in args.only:
        bench_pages(args, res)
    if "changelog" in args.only:
        bench_change_log(args, res)
    derived = derive(args, res)
    print_table(res)
    print("\n" + json.dumps({k: v for k, v in derived.items()}, indent=2))
    report = {
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "total_seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        **derived,
        "cases": res.cases,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out} ({report['total_seconds']} s)")


if __name__ == "__main__":
    main()
