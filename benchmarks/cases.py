"""One benchmark case, run in its own process: ``python benchmarks/cases.py CASE PARAMS.json RESULT.json``.

Each case times only its work (opening the store and the warehouse included, interpreter start-up and
imports excluded) and writes ``{"seconds": ..., "rows": ..., ...}`` to RESULT.json. The parent measures
the process's wall time and peak RSS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from changelog import changelog_reads, changelog_sync
from pages import measure_pages as pages_requests
from pages_store import build_store as pages_store

from planhat_pipelines.config import parse_config
from planhat_pipelines.sql_quoting import quote_literal
from planhat_pipelines.store import ModelStore, StoreLocation
from planhat_pipelines.store.extensions import load_extensions
from planhat_pipelines.store.maintenance import maintain
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines.sync.ranges import KeyRangeSpan
from planhat_pipelines.sync.usage import pending_ranges, run_usage
from planhat_pipelines.warehouses.base import Warehouse
from planhat_pipelines.warehouses.factory import open_warehouse

#: What the DuckDB adapter selects for the usage columns (a JSON column is read as its text).
USAGE_SELECT = "event_id, user_email, action, occurred_at, cnt, weight, CAST(to_json(info) AS VARCHAR) AS info"


def _open_warehouse(config: Any, name: str = "wh") -> Warehouse:
    connection = config.connection(name)
    if connection.type == "snowflake":
        # The emulator's connect arguments live with the tests, in the checkout (not installed).
        root = str(Path(__file__).resolve().parent.parent)
        if root not in sys.path:
            sys.path.insert(0, root)
        from planhat_pipelines.warehouses.snowflake import open_snowflake
        from planhat_pipelines_tests.emulators.snowflake import EMULATOR_CONNECT_ARGS

        return open_snowflake("wh", connection.settings, connect_args=EMULATOR_CONNECT_ARGS)
    return open_warehouse(connection)


def usage_engine(params: dict[str, Any]) -> dict[str, Any]:
    """run_usage over the pending ranges (or the named partition keys), as the usage asset calls it."""
    config = parse_config(params["config"], Path(params["config_path"]))
    section = config.usage[params.get("section_index", 0)]
    started = time.perf_counter()
    with ModelStore(config.store) as store:
        warehouse = _open_warehouse(config, section.connection)
        try:
            if params.get("partition_keys"):
                spans = [KeyRangeSpan.parse(k) for k in params["partition_keys"]]
            else:
                spans, _ = pending_ranges(section, store, warehouse)
            planned = time.perf_counter()
            write_from = time.time()
            result = run_usage(section, store, warehouse, spans)
            synced = time.perf_counter()
            write_to = time.time()
        finally:
            warehouse.close()
        stored = store.con.execute("SELECT count(*) FROM user_activities").fetchall()[0][0]
    # "seconds" is run_usage alone (what the Dagster asset runs); planning the ranges is what the sensor does.
    return {
        "seconds": synced - planned,
        "plan_seconds": round(planned - started, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
        "rows": result.rows_read,
        "inserted": result.inserted,
        "rejected": result.rejected,
        "ranges": len(result.ranges),
        "batches": result.batches,
        "stored": int(stored),
        # Wall-clock bounds of run_usage, for a reader running beside it (reader latency during writes).
        "write_from": write_from,
        "write_to": write_to,
    }


LIMIT_COLUMNS = (
    "event_id BIGINT{pk}, user_email VARCHAR, action VARCHAR, occurred_at TIMESTAMP, cnt INTEGER, weight DOUBLE, "
    "info VARCHAR"
)


def _limit_target(params: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """The limit's target table: a primary-keyed table in a DuckDB file, or a DuckLake table (SQLite catalog).

    DuckLake has no primary keys, so its table has none (the engine keeps keys unique with an anti-join).
    """
    if params.get("target_kind", "duckdb") == "duckdb":
        target = duckdb.connect(params["target"])
        target.execute(f"CREATE TABLE IF NOT EXISTS usage_events ({LIMIT_COLUMNS.format(pk=' PRIMARY KEY')})")
        return target
    catalog, data = Path(params["target"]), Path(params["data_path"])
    data.mkdir(parents=True, exist_ok=True)
    import sqlite3

    lite = sqlite3.connect(catalog)  # WAL, as the store's own SQLite catalogs are made
    lite.execute("PRAGMA journal_mode=WAL")
    lite.close()
    target = duckdb.connect()
    load_extensions(target, "ducklake", "sqlite_scanner")
    target.execute(
        f"ATTACH {quote_literal('ducklake:sqlite:' + str(catalog))} AS s "
        f"(DATA_PATH {quote_literal(str(data.resolve()) + os.sep)})"
    )
    target.execute("USE s")
    target.execute(f"CREATE TABLE IF NOT EXISTS usage_events ({LIMIT_COLUMNS.format(pk='')})")
    return target


#: The limit's INSERT into the store's own ``user_activities``: the engine's twelve columns, no validation.
STORE_LIMIT_INSERT = (
    "INSERT INTO user_activities SELECT 'events', event_id, 'enduser', NULL, NULL, user_email, action, occurred_at, "
    "cnt, weight, CAST(info AS JSON), 'limit' FROM __batch"
)


def store_limit(params: dict[str, Any]) -> dict[str, Any]:
    """The limit issue 16 names: the same Arrow batches (the engine's ordered read per key range, same batch size)
    appended to the same table (the store's ``user_activities``, a DuckLake with a SQLite catalog), one commit per
    batch, no validation, no cursor, no sync log."""
    config = parse_config(params["config"], Path(params["config_path"]))
    section = config.usage[0]
    started = time.perf_counter()
    rows = 0
    with ModelStore(config.store) as store:
        source = duckdb.connect(params["warehouse"], read_only=True)
        for start in range(0, params["rows"] + 1, section.partition_span):
            source.execute(
                f"SELECT {USAGE_SELECT} FROM usage_events WHERE event_id > ? AND event_id <= ? ORDER BY event_id",
                [start - 1, start + section.partition_span - 1],
            )
            for batch in source.to_arrow_reader(section.batch_size):
                store.con.execute("BEGIN TRANSACTION")
                store.con.register("__batch", batch)
                store.con.execute(STORE_LIMIT_INSERT)
                store.con.unregister("__batch")
                store.con.execute("COMMIT")
                rows += batch.num_rows
        source.close()
        stored = store.con.execute("SELECT count(*) FROM user_activities").fetchall()[0][0]
    return {"seconds": time.perf_counter() - started, "rows": rows, "stored": int(stored)}


def check_cost(params: dict[str, Any]) -> dict[str, Any]:
    """``row_count_matches_source``'s work on a loaded section, against the warehouse's own aggregate.

    ``check_s``: the check's queries (the store's key statistics and the source's one aggregate, as
    ``defs/checks.py`` runs them); ``streamed_s``: the source counted the way the check did before (its key column
    streamed through the process); ``aggregate_s``: the bare ``count(*), count(DISTINCT key)`` in the warehouse.
    """
    from planhat_pipelines.defs.checks import count_source_keys
    from planhat_pipelines.warehouses.base import KeyRange

    config = parse_config(params["config"], Path(params["config_path"]))
    section = config.usage[0]
    through = int(params["through"])
    with ModelStore(config.store, read_only=True) as store:
        warehouse = _open_warehouse(config, section.connection)
        try:
            started = time.perf_counter()
            stored, _, accounted = store.usage_key_stats(section.name, "user_activities", through)
            source_rows, source_keys = count_source_keys(warehouse, section, through)
            check_s = time.perf_counter() - started
            started = time.perf_counter()
            streamed = 0
            for batch in warehouse.read_batches(
                section.table, [section.key], batch_size=500_000, key_range=KeyRange(section.key, through=through)
            ):
                streamed += batch.num_rows
            streamed_s = time.perf_counter() - started
        finally:
            warehouse.close()
    con = duckdb.connect(params["warehouse"], read_only=True)
    started = time.perf_counter()
    con.execute("SELECT count(*), count(DISTINCT event_id) FROM usage_events WHERE event_id <= ?", [through]).fetchall()
    aggregate_s = time.perf_counter() - started
    con.close()
    return {
        "seconds": check_s,
        "rows": source_rows,
        "passed": int(accounted) == source_keys,
        "stored": int(stored),
        "check_s": round(check_s, 4),
        "streamed_s": round(streamed_s, 4),
        "streamed_rows": streamed,
        "aggregate_s": round(aggregate_s, 4),
    }


def dagster_startup(params: dict[str, Any]) -> dict[str, Any]:
    """Where a Dagster run's fixed cost goes, in this process: importing Dagster, importing the project's
    definitions module and building the definitions from the config (what every run worker does first)."""
    import os as _os

    _os.environ["PLANHAT_PIPELINES_CONFIG"] = params["config_path"]
    started = time.perf_counter()
    import dagster  # noqa: F401

    imported = time.perf_counter()
    from planhat_pipelines import definitions

    module = time.perf_counter()
    built = definitions.build_definitions(parse_config(params["config"], Path(params["config_path"])))
    built.get_repository_def()
    ready = time.perf_counter()
    return {
        "seconds": ready - started,
        "rows": 0,
        "import_dagster_s": round(imported - started, 3),
        "import_definitions_s": round(module - imported, 3),
        "build_definitions_s": round(ready - module, 3),
    }


def limit(params: dict[str, Any]) -> dict[str, Any]:
    """The floor: the rows read as Arrow by DuckDB and appended into a table, no project code.

    The same ordered read and batch size as the engine. ``target_kind`` ``duckdb`` (default): a primary-keyed
    table in a DuckDB file; ``ducklake``: a DuckLake table with a SQLite catalog (``target`` the catalog,
    ``data_path`` its files). By default one transaction around all batches (the fastest form);
    ``commit_each_batch`` commits after every batch, as an exactly-once loader must (on DuckLake each commit is
    a snapshot and at least one Parquet file).
    """
    started = time.perf_counter()
    source = duckdb.connect(params["warehouse"], read_only=True)
    target = _limit_target(params)
    each = bool(params.get("commit_each_batch"))
    rel = source.sql(f"SELECT {USAGE_SELECT} FROM usage_events ORDER BY event_id")
    rows = 0
    if not each:
        target.execute("BEGIN TRANSACTION")
    for batch in rel.to_arrow_reader(params["batch_size"]):
        target.register("__batch", batch)
        target.execute("INSERT INTO usage_events SELECT * FROM __batch")
        target.unregister("__batch")
        rows += batch.num_rows
    if not each:
        target.execute("COMMIT")
    stored = target.execute("SELECT count(*) FROM usage_events").fetchall()[0][0]
    target.close()
    source.close()
    return {"seconds": time.perf_counter() - started, "rows": rows, "stored": int(stored)}


def _dlt_pipeline(params: dict[str, Any]) -> Any:
    import dlt

    return dlt.pipeline(
        pipeline_name=params["pipeline"],
        destination=dlt.destinations.duckdb(params["destination"]),
        dataset_name="usage",
        pipelines_dir=params["pipelines_dir"],
        progress="log" if os.environ.get("BENCH_DLT_PROGRESS") else None,
    )


def _dlt_counts(pipeline: Any, started: float) -> dict[str, Any]:
    seconds = time.perf_counter() - started
    with pipeline.sql_client() as client:
        stored = client.execute_sql("SELECT count(*) FROM usage_events")[0][0]
    return {"seconds": seconds, "stored": int(stored)}


def dlt_resource(params: dict[str, Any]) -> dict[str, Any]:
    """dlt's fastest path: a resource yielding Arrow batches, incremental on the key, merge on the key."""
    import dlt

    rows = 0

    @dlt.resource(name="usage_events", primary_key="event_id", write_disposition="merge")
    def usage_events(
        # dlt binds the incremental from the default argument (its documented pattern).
        cursor: Any = dlt.sources.incremental("event_id", initial_value=0, primary_key=(), row_order="asc"),  # noqa: B008
    ) -> Iterator[pa.RecordBatch]:
        nonlocal rows
        con = duckdb.connect(params["warehouse"], read_only=True)
        try:
            rel = con.sql(
                f"SELECT {USAGE_SELECT} FROM usage_events WHERE event_id > $last ORDER BY event_id",
                params={"last": cursor.last_value},
            )
            reader = rel.to_arrow_reader(params["batch_size"])
            for batch in reader:
                rows += batch.num_rows
                yield batch
        finally:
            con.close()

    started = time.perf_counter()
    pipeline = _dlt_pipeline(params)
    pipeline.run(usage_events())
    return {**_dlt_counts(pipeline, started), "rows": rows}


def dlt_sql_table(params: dict[str, Any]) -> dict[str, Any]:
    """dlt's sql_table, backend pyarrow, over duckdb-engine (the table declared: reflection fails on duckdb 2)."""
    import dlt
    import sqlalchemy as sa
    from dlt.sources.sql_database import sql_table

    started = time.perf_counter()
    metadata = sa.MetaData()
    sa.Table(
        "usage_events",
        metadata,
        sa.Column("event_id", sa.BigInteger, primary_key=True),
        sa.Column("user_email", sa.String),
        sa.Column("action", sa.String),
        sa.Column("occurred_at", sa.DateTime),
        sa.Column("cnt", sa.Integer),
        sa.Column("weight", sa.Float),
        sa.Column("info", sa.String),  # declared text: dlt would decode and re-encode JSON (~4x slower)
    )
    engine = sa.create_engine(f"duckdb:///{params['warehouse']}", connect_args={"read_only": True})
    resource = sql_table(
        credentials=engine,
        table="usage_events",
        metadata=metadata,
        backend="pyarrow",
        chunk_size=params["batch_size"],
        reflection_level="minimal",
        incremental=dlt.sources.incremental("event_id", initial_value=0, primary_key=(), row_order="asc"),
        write_disposition="merge",
        primary_key="event_id",
    )
    pipeline = _dlt_pipeline(params)
    pipeline.run(resource)
    rows = pipeline.last_trace.last_normalize_info.row_counts.get("usage_events", 0)
    return {**_dlt_counts(pipeline, started), "rows": rows}


def crm_sync(params: dict[str, Any]) -> dict[str, Any]:
    """sync_section (receive only) of the companies section, as the hourly CRM asset run calls it."""
    config = parse_config(params["config"], Path(params["config_path"]))
    section = config.crm[0]
    started = time.perf_counter()
    with ModelStore(config.store) as store:
        warehouse = open_warehouse(config.connection("wh"))
        try:
            result = sync_section(section, store, warehouse, full=False)  # the hourly sync
        finally:
            warehouse.close()
    return {
        "seconds": time.perf_counter() - started,
        "rows": result.rows_read,
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "rejected": result.rejected,
    }


def plain_read(params: dict[str, Any]) -> dict[str, Any]:
    """Read every column of the source table as Arrow batches (the baseline for a no-change re-sync)."""
    started = time.perf_counter()
    con = duckdb.connect(params["warehouse"], read_only=True)
    rows = 0
    for batch in con.sql(f"SELECT * FROM {params['table']}").to_arrow_reader(params["batch_size"]):
        rows += batch.num_rows
    con.close()
    return {"seconds": time.perf_counter() - started, "rows": rows}


def reader(params: dict[str, Any]) -> dict[str, Any]:
    """A reader attached read-only, querying every ``interval`` s until the ``stop`` file appears.

    Each query is a count per section of ``user_activities`` (a full scan of the section column); its start
    (epoch) and wait are recorded, so the parent can keep those that ran while the writer wrote.
    """
    location = StoreLocation.of_file(Path(params["catalog"]), params["data_path"])
    stop, ready = Path(params["stop"]), Path(params["ready"])
    queries: list[tuple[float, float]] = []
    errors: list[str] = []
    attach_started = time.perf_counter()
    with ModelStore(location, read_only=True) as store:
        attach_seconds = time.perf_counter() - attach_started
        ready.touch()
        while not stop.exists():
            at = time.time()
            started = time.perf_counter()
            try:
                store.con.execute("SELECT section, count(*) FROM user_activities GROUP BY section").fetchall()
            except duckdb.Error as exc:  # counted, never fatal: the figure is how often a reader fails
                errors.append(str(exc).splitlines()[0])
            queries.append((at, time.perf_counter() - started))
            time.sleep(params.get("interval", 0.1))
    return {"seconds": 0.0, "rows": 0, "attach_seconds": attach_seconds, "queries": queries, "errors": errors}


SCAN_SQL = (
    'SELECT section, count(*), count(DISTINCT "key"), sum("count"), min("date"), max("date"), '
    "count(DISTINCT action), max(length(CAST(info AS VARCHAR))) FROM user_activities GROUP BY section"
)


def _scan(location: StoreLocation, repeats: int = 5) -> dict[str, float]:
    """A full-scan query on a fresh read-only attach: the first run (cold, attach included) and the median."""
    started = time.perf_counter()
    with ModelStore(location, read_only=True) as store:
        attached = time.perf_counter()
        store.con.execute(SCAN_SQL).fetchall()
        first = time.perf_counter() - attached
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            store.con.execute(SCAN_SQL).fetchall()
            runs.append(time.perf_counter() - t)
        files = int(
            store.con.execute(
                "SELECT count(*) FROM __ducklake_metadata_store.ducklake_data_file WHERE end_snapshot IS NULL"
            ).fetchall()[0][0]
        )
        snapshots = int(store.con.execute("SELECT count(*) FROM store.snapshots()").fetchall()[0][0])
    runs.sort()
    return {
        "attach_s": round(attached - started, 4),
        "first_s": round(first, 4),
        "median_s": round(runs[len(runs) // 2], 4),
        "data_files": files,
        "snapshots": snapshots,
    }


def _median(values: list[float]) -> float | None:
    return round(sorted(values)[len(values) // 2], 4) if values else None


def month_ticks(params: dict[str, Any]) -> dict[str, Any]:
    """A month of 5-minute ticks, scaled: ``ticks`` run_usage calls of ``tick_rows`` new keys each, one process.

    Each tick is what the usage asset does on its cadence (run_usage over the new keys: sync log, batch and
    cursor commits), minus the process and Dagster start. Then a full-scan query on the ticked store, before
    and after :func:`maintain`, ``ticks_after`` (10) more ticks on the maintained store, and the same query on
    a store loaded from the same rows in one run (default batch size).
    """
    ticked = parse_config(params["ticked_config"], Path(params["ticked_config_path"]))
    fresh = parse_config(params["fresh_config"], Path(params["fresh_config_path"]))
    ticks, per = params["ticks"], params["tick_rows"]
    durations = []
    started = time.perf_counter()
    with ModelStore(ticked.store) as store:
        section = ticked.usage[0]
        warehouse = open_warehouse(ticked.connection("wh"))
        try:
            for i in range(ticks):
                t = time.perf_counter()
                run_usage(section, store, warehouse, [KeyRangeSpan(i * per + 1, (i + 1) * per)])
                durations.append(time.perf_counter() - t)
        finally:
            warehouse.close()
        stored = int(store.con.execute("SELECT count(*) FROM user_activities").fetchall()[0][0])
    tick_seconds = time.perf_counter() - started
    before = _scan(ticked.store)
    t = time.perf_counter()
    with ModelStore(ticked.store) as store:
        report = maintain(store)
    maintain_seconds = time.perf_counter() - t
    after = _scan(ticked.store)
    # A few more ticks on the maintained store: does maintenance bring the tick time back?
    after_ticks = []
    with ModelStore(ticked.store) as store:
        warehouse = open_warehouse(ticked.connection("wh"))
        try:
            for i in range(ticks, ticks + params.get("ticks_after", 10)):
                t = time.perf_counter()
                run_usage(ticked.usage[0], store, warehouse, [KeyRangeSpan(i * per + 1, (i + 1) * per)])
                after_ticks.append(time.perf_counter() - t)
        finally:
            warehouse.close()
    with ModelStore(fresh.store) as store:
        warehouse = open_warehouse(fresh.connection("wh"))
        try:
            run_usage(fresh.usage[0], store, warehouse, [KeyRangeSpan(1, (ticks + len(after_ticks)) * per)])
        finally:
            warehouse.close()
    loaded = _scan(fresh.store)
    first, last = _median(durations[:10]), _median(durations[-10:])
    durations.sort()
    return {
        "seconds": tick_seconds,
        "rows": stored,
        "ticks": ticks,
        "tick_rows": per,
        "tick_p50_s": round(durations[len(durations) // 2], 4),
        "tick_p95_s": round(durations[int(len(durations) * 0.95)], 4),
        "tick_first10_median_s": first,
        "tick_last10_median_s": last,
        "tick_after_maintain_median_s": _median(after_ticks),
        "maintain_seconds": round(maintain_seconds, 3),
        "maintenance": report.metadata(),
        "scan_ticked_before_maintain": before,
        "scan_ticked_after_maintain": after,
        "scan_fresh_load": loaded,
    }


CASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "usage_engine": usage_engine,
    "limit": limit,
    "store_limit": store_limit,
    "check_cost": check_cost,
    "dagster_startup": dagster_startup,
    "dlt_resource": dlt_resource,
    "dlt_sql_table": dlt_sql_table,
    "crm_sync": crm_sync,
    "plain_read": plain_read,
    "reader": reader,
    "month_ticks": month_ticks,
    "pages_store": pages_store,
    "pages_requests": pages_requests,
    "changelog_sync": changelog_sync,
    "changelog_reads": changelog_reads,
}


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def main() -> None:
    case, params_file, result_file = sys.argv[1:4]
    params = json.loads(Path(params_file).read_text())
    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    result = CASES[case](params)
    # This process's own peak RSS (DuckDB's memory included). The parent's ru_maxrss of a child is at least
    # the parent's own high-water RSS (Linux keeps it across exec), so the child reads its VmHWM itself.
    result["peak_rss_mb"] = _vm_hwm_mb()
    if profile:
        profiler.stop()
        Path(profile).write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    Path(result_file).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
