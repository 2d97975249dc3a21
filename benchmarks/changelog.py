"""The ``changelog`` group: what the per-record change log (issue 19) costs a CRM receive.

On one DuckDB warehouse of ``--changelog-companies`` companies (the ``crm`` group's shape) and a store synced from
it once, each case is ``sync_section`` in a fresh interpreter on a fresh copy of that store:

- **no change**: a re-sync with nothing new. The engine returns before any write, so the log adds nothing; the
  case runs with the log and with it switched off, side by side.
- **10 % changed**: 10 % of the companies get a new name and a new ``tier`` custom field; the re-sync writes
  those updates with their change-log rows, and again with the log switched off.

"Switched off" is this module's doing, not a production flag: the case wraps ``ModelStore.upsert_staged`` so
the engine's ``log=LogContext(...)`` arrives as ``None`` (the upsert's own no-log path), everything else the
same. Each pair runs ``--changelog-repeats`` (3) times alternately, log first then not; the medians are
reported with their ratio: the whole sync's wall and CPU time, and the store write's (``upsert_staged``, where
the log is written) alone. CPU time is steadier than wall time on a loaded machine.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import duckdb
from common import COMPANY_SECTION, WORK, config_dict, fresh_copy, make_companies, remove_store, run_case

from planhat_pipelines.config import parse_config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines.warehouses.factory import open_warehouse

#: A new name and a new custom tier for every tenth company (key ending in 7): 10 % of the rows, two fields each.
CHANGE_10PCT_SQL = (
    "UPDATE crm_companies SET name = name || ' (renamed)', "
    'attributes = CAST(json_merge_patch(attributes, \'{"tier": "platinum"}\') AS JSON) '
    "WHERE CAST(substr(company_key, 3) AS BIGINT) % 10 = 7"
)


def changelog_sync(params: dict[str, Any]) -> dict[str, Any]:
    """``sync_section`` (receive) of the companies section; ``params["log"]`` false switches the change log off."""
    original = ModelStore.upsert_staged
    spent = {"wall": 0.0, "cpu": 0.0}

    def timed(self: ModelStore, *args: Any, **kwargs: Any) -> Any:
        if not params["log"]:
            kwargs["log"] = None
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent["wall"] += time.perf_counter() - wall
            spent["cpu"] += time.process_time() - cpu

    ModelStore.upsert_staged = timed  # type: ignore[method-assign]
    config = parse_config(params["config"], Path(params["config_path"]))
    started, cpu_started = time.perf_counter(), time.process_time()
    with ModelStore(config.store) as store:
        warehouse = open_warehouse(config.connection("wh"))
        try:
            result = sync_section(config.crm[0], store, warehouse, full=False)
        finally:
            warehouse.close()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        logged = int(store.con.execute("SELECT count(*) FROM change_log").fetchall()[0][0])
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "upsert_seconds": spent["wall"],
        "upsert_cpu_seconds": spent["cpu"],
        "rows": result.rows_read,
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "change_log_rows": logged,
    }


#: What each run reports: the whole sync's wall and CPU time, and the store write's (``upsert_staged``) alone.
MEASURES = ("seconds", "cpu_seconds", "upsert_seconds", "upsert_cpu_seconds")


def changelog_reads(params: dict[str, Any]) -> dict[str, Any]:
    """The web app's change-log reads on a synced store, read-only, each ``repeats`` times: p50/max ms.

    ``record``: a company's rows by record id (the profile's "Sync changes"); ``section_key``: one record by
    section and key (``/syncs?section=&key=``, the CLI's ``--section --key``); ``section_newest``: a section's
    newest 10 (each CRM section on ``/syncs``); ``count``: a bare ``count(*)`` of ``company``, the floor.
    """
    config = parse_config(params["config"], Path(params["config_path"]))
    repeats = params["repeats"]
    out: dict[str, Any] = {}
    with ModelStore(config.store, read_only=True) as store:
        record_id, key = store.con.execute(
            'SELECT record_id, "key" FROM change_log WHERE op = \'update\' ORDER BY "key" LIMIT 1'
        ).fetchall()[0]
        reads = {
            "count": lambda: store.con.execute("SELECT count(*) FROM company").fetchall(),
            "record": lambda: store.changes(record_id=record_id, limit=20),
            "section_key": lambda: store.changes(section="companies", key=key, limit=100),
            "section_newest": lambda: store.changes(section="companies", limit=10),
        }
        for name, read in reads.items():
            read()  # warm-up
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                read()
                times.append((time.perf_counter() - started) * 1000)
            out[f"{name}_p50_ms"] = round(statistics.median(times), 1)
            out[f"{name}_max_ms"] = round(max(times), 1)
        out["change_log_rows"] = int(store.con.execute("SELECT count(*) FROM change_log").fetchall()[0][0])
    return {"seconds": 0.0, **out}


def _params(name: str, store: Path, warehouse: Path) -> dict[str, Any]:
    import yaml

    doc = config_dict(store, {"type": "duckdb", "path": str(warehouse)}, crm=[COMPANY_SECTION])
    path = WORK / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return {"config": doc, "config_path": str(path)}


def _pair(res: Any, base: Path, warehouse: Path, tag: str, label: str, repeats: int) -> None:
    """``repeats`` alternating runs with and without the log, each on a fresh copy of ``base``; medians kept."""
    times: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for i in range(repeats):
        for log in (True, False):
            store = fresh_copy(base, f"store_changelog_{tag}.sqlite")
            name = f"changelog_{tag}_{'log' if log else 'nolog'}"
            measured = run_case("changelog_sync", {**_params(name, store, warehouse), "log": log})
            times[log].append({k: measured.result.get(k, float("nan")) for k in MEASURES})
            if i == repeats - 1:
                which = "with the change log" if log else "change log off"
                res.add(name, measured, label=f"{label}, {which} (last of {repeats})")
    for log, runs in times.items():
        case = res.cases[f"changelog_{tag}_{'log' if log else 'nolog'}"]
        for measure in MEASURES:
            case[f"median_{measure}"] = round(statistics.median(r[measure] for r in runs), 3)
        case["all_seconds"] = [round(r["seconds"], 3) for r in runs]


def bench_change_log(args: Any, res: Any) -> None:
    companies, repeats = args.changelog_companies, args.changelog_repeats
    print(f"change log: CRM receive of {companies:,} companies, {repeats} runs per case", flush=True)
    warehouse = WORK / f"changelog_companies_{companies}.duckdb"
    warehouse.unlink(missing_ok=True)
    make_companies(warehouse, companies)
    base = WORK / "store_changelog_base.sqlite"
    remove_store(base)
    res.add(
        "changelog_full",
        run_case("changelog_sync", {**_params("changelog_full", base, warehouse), "log": True}),
        label="change log: first full sync (inserts logged)",
    )
    _pair(res, base, warehouse, "nochange", "change log: re-sync, no change", repeats)
    con = duckdb.connect(str(warehouse))
    changed = con.execute(CHANGE_10PCT_SQL).fetchall()[0][0]
    con.close()
    _pair(res, base, warehouse, "10pct", f"change log: re-sync, 10 % changed ({changed:,})", repeats)
    res.cases["changelog_10pct_log"]["changed_rows"] = changed
    # A fresh copy re-synced with the log holds the inserts and the 10 % updates: the pages' reads on it.
    store = fresh_copy(base, "store_changelog_reads.sqlite")
    run_case("changelog_sync", {**_params("changelog_reads_store", store, warehouse), "log": True})
    reads = run_case("changelog_reads", {**_params("changelog_reads", store, warehouse), "repeats": 20})
    res.add("changelog_reads", reads, label="change log: the web app's reads (ms, see results)", rate=False)


def change_log_summary(res: Any) -> dict[str, Any]:
    """Medians per case and the with/without ratios, for results.json."""
    out: dict[str, Any] = {}
    for tag in ("nochange", "10pct"):
        with_log, without = res.cases.get(f"changelog_{tag}_log", {}), res.cases.get(f"changelog_{tag}_nolog", {})
        out[tag] = {}
        for measure in MEASURES:
            a, b = with_log.get(f"median_{measure}"), without.get(f"median_{measure}")
            out[tag][measure] = {"with_log": a, "without_log": b, "ratio": round(a / b, 3) if a and b else None}
    return out
