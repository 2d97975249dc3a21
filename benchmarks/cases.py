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

from planhat_pipelines.config import parse_config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines.sync.ranges import KeyRangeSpan
from planhat_pipelines.sync.usage import pending_ranges, run_usage
from planhat_pipelines.warehouses.base import Warehouse
from planhat_pipelines.warehouses.factory import open_warehouse

#: What the DuckDB adapter selects for the usage columns (a JSON column is read as its text).
USAGE_SELECT = "event_id, user_email, action, occurred_at, cnt, weight, CAST(to_json(info) AS VARCHAR) AS info"


def _open_warehouse(params: dict[str, Any], config: Any) -> Warehouse:
    connection = config.connection("wh")
    if connection.type == "snowflake":
        from planhat_pipelines.warehouses.snowflake import open_snowflake
        from planhat_pipelines_tests.emulators.snowflake import EMULATOR_CONNECT_ARGS

        return open_snowflake("wh", connection.settings, connect_args=EMULATOR_CONNECT_ARGS)
    return open_warehouse(connection)


def usage_engine(params: dict[str, Any]) -> dict[str, Any]:
    """run_usage over the pending ranges (or the named partition keys), as the usage asset calls it."""
    config = parse_config(params["config"], Path(params["config_path"]))
    section = config.usage[0]
    started = time.perf_counter()
    with ModelStore(config.store) as store:
        warehouse = _open_warehouse(params, config)
        try:
            if params.get("partition_keys"):
                spans = [KeyRangeSpan.parse(k) for k in params["partition_keys"]]
            else:
                spans, _ = pending_ranges(section, store, warehouse)
            planned = time.perf_counter()
            result = run_usage(section, store, warehouse, spans)
            synced = time.perf_counter()
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
    }


def limit(params: dict[str, Any]) -> dict[str, Any]:
    """The floor: the rows read as Arrow by DuckDB and appended into a primary-keyed DuckDB table, no project code.

    The same ordered read and batch size as the engine. By default one transaction around all batches (the
    fastest form); ``commit_each_batch`` commits after every batch, as an exactly-once loader must.
    """
    started = time.perf_counter()
    source = duckdb.connect(params["warehouse"], read_only=True)
    target = duckdb.connect(params["target"])
    target.execute(
        "CREATE TABLE IF NOT EXISTS usage_events (event_id BIGINT PRIMARY KEY, user_email VARCHAR, action VARCHAR, "
        "occurred_at TIMESTAMP, cnt INTEGER, weight DOUBLE, info VARCHAR)"
    )
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


CASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "usage_engine": usage_engine,
    "limit": limit,
    "dlt_resource": dlt_resource,
    "dlt_sql_table": dlt_sql_table,
    "crm_sync": crm_sync,
    "plain_read": plain_read,
}


def main() -> None:
    case, params_file, result_file = sys.argv[1:4]
    params = json.loads(Path(params_file).read_text())
    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    result = CASES[case](params)
    if profile:
        profiler.stop()
        Path(profile).write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    Path(result_file).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
