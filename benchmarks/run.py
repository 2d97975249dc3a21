"""Benchmark the sync engine against the limit (DuckDB's own Arrow path) and dlt, in one run on this machine.

    .venv/bin/python benchmarks/run.py                  # defaults: 5M usage rows, 1M companies (~10 min)
    .venv/bin/python benchmarks/run.py --quick          # small sizes, a smoke run (~1-2 min)
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
    run_case,
    run_child,
    template_store,
    usage_section,
)

from planhat_pipelines.config import DEFAULT_USAGE_BATCH_SIZE

GROUPS = ("usage", "dlt", "tick", "crm", "memory", "emulators", "dagster")


class Results:
    """Every measured case, by name, in the order they ran."""

    def __init__(self) -> None:
        self.cases: dict[str, dict[str, Any]] = {}

    def add(self, name: str, measured: Measured, *, label: str, rows: int | None = None, **extra: Any) -> None:
        res = measured.result
        ok = measured.returncode == 0 and bool(res)
        seconds = res.get("seconds", measured.wall_seconds) if ok else None
        n = rows if rows is not None else res.get("rows")
        entry: dict[str, Any] = {
            "label": label,
            "ok": ok,
            "rows": n,
            "seconds": None if seconds is None else round(seconds, 3),
            "rows_per_s": round(n / seconds) if ok and n and seconds else None,
            "wall_seconds": round(measured.wall_seconds, 3),
            "peak_rss_mb": round(measured.peak_rss_mb, 1),
        }
        entry.update({k: v for k, v in res.items() if k not in ("seconds", "rows")})
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
    store = fresh_copy(template_store(), "store_ingest.duckdb")
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
    store = fresh_copy(ingest_store, "store_tick.duckdb")
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
        small_store = fresh_copy(template_store(), "store_tick_small.duckdb")
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
    store = fresh_copy(Path("/nonexistent"), "store_crm.duckdb")
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
        store = fresh_copy(template_store(), f"store_mem_{rows}.duckdb")
        params = _usage_params(store, _duckdb_conn(warehouse), section, f"memory_{rows}")
        res.add(f"memory_{rows}", run_case("usage_engine", params), label=f"usage sync memory at {rows:,} rows")
        store.unlink(missing_ok=True)


def bench_emulators(args: argparse.Namespace, res: Results) -> None:
    import emulators

    rows = args.emulator_rows
    print(f"usage ingest of {rows:,} rows from each warehouse adapter", flush=True)
    section = usage_section(batch_size=min(args.batch_size, rows), span=args.span)
    warehouse = events_warehouse(rows)
    store = fresh_copy(template_store(), "store_adapter_duckdb.duckdb")
    params = _usage_params(store, _duckdb_conn(warehouse), section, "adapter_duckdb")
    res.add("adapter_duckdb", run_case("usage_engine", params), label=f"usage ingest {rows:,}, DuckDB adapter")
    data = emulators.usage_rows(warehouse)
    try:
        with emulators.snowflake_server() as conn:
            seed = emulators.seed_snowflake(conn, data)
            store = fresh_copy(template_store(), "store_adapter_snowflake.duckdb")
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
            store = fresh_copy(template_store(), "store_adapter_bigquery.duckdb")
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
    con = duckdb.connect(str(store), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM user_activities").fetchall()[0][0])
    finally:
        con.close()


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
    for what, part_keys, cli in cases:
        label = "1 range" if what == "one" else f"backfill of {len(part_keys)} ranges (single run)"
        store = fresh_copy(template_store(), f"store_engine_{what}.duckdb")
        params = _usage_params(store, _duckdb_conn(warehouse), section, f"engine_{what}")
        res.add(
            f"engine_{what}",
            run_case("usage_engine", {**params, "partition_keys": part_keys}),
            label=f"engine alone, {label}",
        )
        rows = res.cases[f"engine_{what}"].get("rows")
        store = fresh_copy(template_store(), f"store_dagster_{what}.duckdb")
        params = _usage_params(store, _duckdb_conn(warehouse), section, f"dagster_{what}")
        home = _dagster_home(what, keys)
        measured = _dagster(home, Path(params["config_path"]), cli)
        stored = _stored(store) if measured.returncode == 0 else None
        measured.result = {"seconds": measured.wall_seconds, "stored": stored} if measured.returncode == 0 else {}
        res.add(f"dagster_{what}", measured, label=f"dagster asset materialize, {label}", rows=stored)
        if stored is not None and rows is not None and stored != rows:
            print(f"  warning: Dagster stored {stored} rows, the engine read {rows}", flush=True)


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
    out: dict[str, Any] = {
        "usage_vs_limit": _ratio(usage, limit, 3),
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
    tick_linear = None
    if tick and tick_small:
        tick_linear = abs(tick / tick_small - 1) <= 0.5
    out["targets"] = {
        "usage_ingest_at_least_50pct_of_limit": _check(out["usage_vs_limit"], lambda v: v >= 0.5),
        "usage_ingest_at_least_3x_dlt": _check(out["usage_vs_dlt"], lambda v: v >= 3),
        "tick_time_independent_of_table_size": tick_linear,
        "crm_nochange_within_2x_plain_read": _check(out["crm_nochange_vs_plain_read"], lambda v: v <= 2),
        "memory_flat_within_20pct": _check(out["memory_growth"], lambda v: v <= 0.2),
    }
    return out


def _check(value: float | None, test: Any) -> bool | None:
    return None if value is None else bool(test(value))


def print_table(res: Results) -> None:
    limit, dlt = res.rps("limit"), res.rps("dlt_resource")
    head = f"{'case':<62} {'rows':>11} {'seconds':>9} {'rows/s':>11} {'peak MB':>8} {'x limit':>8} {'x dlt':>7}"
    print("\n" + head + "\n" + "-" * len(head))
    for case in res.cases.values():
        if not case.get("ok"):
            print(f"{case['label']:<62} {'skipped: ' + case['skipped'] if 'skipped' in case else 'FAILED'}")
            continue
        rps = case.get("rows_per_s")
        xl, xd = _ratio(rps, limit), _ratio(rps, dlt)
        print(
            f"{case['label'][:62]:<62} {case['rows'] or 0:>11,} {case['seconds']:>9.2f} {rps or 0:>11,} "
            f"{case['peak_rss_mb']:>8.0f} {xl if xl is not None else '':>8} {xd if xd is not None else '':>7}"
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
    p.add_argument("--only", default=",".join(GROUPS), help=f"groups to run, of {','.join(GROUPS)}")
    p.add_argument("--no-sql-table", action="store_true", help="skip dlt sql_table (slow)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.companies, args.emulator_rows = 200_000, 50_000, 20_000
        args.memory_rows, args.span, args.batch_size = "50e3,100e3,200e3", 50_000, 10_000
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
