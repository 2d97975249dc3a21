"""Shared pieces of the benchmark: paths, data generation, section configs and the child-process runner.

Every case runs in a fresh Python process (``cases.py``) so its peak RSS is its own: the parent reaps it
with ``os.wait4`` and reads ``ru_maxrss`` from that child's rusage (DuckDB's memory included, which
tracemalloc would not see). The child times only the work itself and writes a JSON result file.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK = BENCH_DIR / ".work"

#: Columns of the usage source table, as the activities section maps them.
USAGE_FIELDS = {
    "record": "user_email",
    "action": "action",
    "date": "occurred_at",
    "count": "cnt",
    "weight": "weight",
    "info": "info",
}
USAGE_COLUMNS = ["event_id", *USAGE_FIELDS.values()]

EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS usage_events (event_id BIGINT, user_email VARCHAR, action VARCHAR, "
    "occurred_at TIMESTAMP, cnt INTEGER, weight DOUBLE, info JSON)"
)
# The same shape as the demo generator (planhat_pipelines/demo/generate.py), with every email matching
# one of $users end users seeded into the store.
EVENTS_SQL = """
INSERT INTO usage_events
SELECT i, 'user' || (i % $users + 1) || '@customer.example',
       (['login', 'view_dashboard', 'export_report', 'invite_user', 'create_project'])[1 + i % 5],
       TIMESTAMP '2026-01-01' + to_seconds(i * 17), CAST(1 + i % 3 AS INTEGER), 1.0,
       CAST(json_object('browser', (['chrome', 'firefox', 'safari'])[1 + i % 3]) AS JSON)
FROM range($first, $last + 1) r(i)
"""
# The demo's crm_companies shape, with keys wide enough for millions of rows.
COMPANIES_SQL = """
CREATE OR REPLACE TABLE crm_companies AS
SELECT 'C-' || lpad(CAST(i AS VARCHAR), 8, '0') AS company_key,
       (['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Vandelay', 'Stark', 'Wayne'])[1 + i % 8]
           || ' ' || (['Labs', 'Corp', 'Group', 'Systems', 'AB'])[1 + i % 5] || ' ' || i AS name,
       CASE WHEN i > 20 AND i % 10 = 0 THEN 'C-' || lpad(CAST(i % 20 + 1 AS VARCHAR), 8, '0') END AS parent_key,
       (['onboarding', 'adoption', 'expansion', 'renewal'])[1 + i % 4] AS phase,
       (['alice@vendor.io', 'bob@vendor.io', 'carol@vendor.io'])[1 + i % 3] AS owner,
       (['SE', 'DE', 'US', 'GB', 'FR'])[1 + i % 5] AS country,
       CAST(json_object('tier', (['gold', 'silver', 'bronze'])[1 + i % 3], 'seats', 5 + i % 200,
                        'health', json_object('score', 40 + i % 60)) AS JSON) AS attributes
FROM range(1, $companies + 1) r(i)
"""
#: Changes 1 % of the companies (a new name) for the "1 % changed" re-sync.
COMPANIES_CHANGE_SQL = (
    "UPDATE crm_companies SET name = name || ' (renamed)' WHERE CAST(substr(company_key, 3) AS BIGINT) % 100 = 7"
)
USERS = 10_000


def append_events(path: Path, first: int, last: int) -> None:
    """Append usage rows with keys ``first..last`` (inclusive) to the warehouse file."""
    con = duckdb.connect(str(path))
    try:
        con.execute(EVENTS_DDL)
        if last >= first:
            con.execute(EVENTS_SQL, {"users": USERS, "first": first, "last": last})
    finally:
        con.close()


def events_warehouse(rows: int) -> Path:
    """A warehouse file holding exactly ``rows`` usage rows (keys 1..rows), made once and reused.

    The cache is per DuckDB version: a file written by another version may be unreadable by this one.
    """
    path = WORK / f"warehouse_{rows}_v{duckdb.__version__}.duckdb"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        _in_child(f"append_events(Path({str(tmp)!r}), 1, {rows})")
        tmp.rename(path)
    return path


def _in_child(call: str) -> None:
    """Run ``call`` (on this module's names) in a child process, so its memory never counts in the parent's.

    A child's ru_maxrss is at least its parent's high-water RSS: generating millions of rows in the parent would
    raise it for every later case.
    """
    code = f"import sys; sys.path.insert(0, {str(BENCH_DIR)!r}); from pathlib import Path; from common import *; {call}"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def companies_warehouse(companies: int) -> Path:
    path = WORK / f"companies_{companies}.duckdb"
    path.unlink(missing_ok=True)
    _in_child(f"make_companies(Path({str(path)!r}), {companies})")
    return path


def make_companies(path: Path, companies: int) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(COMPANIES_SQL, {"companies": companies})
    finally:
        con.close()


def usage_section(name: str = "events", *, batch_size: int, span: int, connection: str = "wh") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "activities",
        "model": "enduser",
        "connection": connection,
        "table": "usage_events",
        "key": "event_id",
        "record_match": "email",
        "unknown_reference": "reject",
        "fields": dict(USAGE_FIELDS),
        "batch_size": batch_size,
        "partition_span": span,
        "cadence": {"every_minutes": 5},
    }


COMPANY_SECTION: dict[str, Any] = {
    "name": "companies",
    "model": "company",
    "connection": "wh",
    "table": "crm_companies",
    "direction": "receive",
    "keys": {"planhat": "externalId", "warehouse": "company_key"},
    "fields": [
        {"planhat": "name", "warehouse": "name"},
        {"planhat": "phase", "warehouse": "phase"},
        {"planhat": "owner", "warehouse": "owner"},
        {"planhat": "country", "warehouse": "country"},
        {"planhat": "parentId", "warehouse": "parent_key"},
        {"planhat": "custom", "warehouse": "attributes"},
        {"planhat": "custom.health_score", "warehouse": "attributes", "path": "health.score"},
    ],
}


def store_files(catalog: Path) -> Path:
    """The data path of a benchmark store: ``<catalog stem>_files/`` beside its SQLite catalog."""
    return catalog.with_name(catalog.stem + "_files")


def config_dict(
    store: Path,
    connection: dict[str, Any] | None = None,
    *,
    usage: list[dict[str, Any]] | None = None,
    crm: list[dict[str, Any]] | None = None,
    connections: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A config document (what planhat_pipelines.yaml would hold) with one connection named ``wh``.

    ``store`` is the DuckLake's SQLite catalog; its data path is :func:`store_files` of it. ``connections``
    names several warehouses instead of the one ``wh``.
    """
    return {
        "store": {"catalog": str(store), "data_path": str(store_files(store))},
        "connections": connections if connections is not None else {"wh": connection},
        "usage": usage or [],
        "crm": crm or [],
    }


def template_store() -> Path:
    """An empty, migrated model store (SQLite-catalog DuckLake) holding the end users the usage rows reference."""
    path = WORK / "store_template.sqlite"
    if not path.exists():
        _in_child(f"make_template(Path({str(path)!r}))")
    return path


def make_template(path: Path) -> None:
    import pyarrow as pa

    from planhat_pipelines.store import ModelStore, StoreLocation

    tmp = WORK / "store_template_tmp.sqlite"
    remove_store(tmp)
    with ModelStore(StoreLocation.of_file(tmp, store_files(tmp))) as store:
        ids = range(1, USERS + 1)
        store.upsert_arrow(
            "enduser",
            pa.table(
                {
                    "externalId": [f"U-{i:06d}" for i in ids],
                    "email": [f"user{i}@customer.example" for i in ids],
                    "firstName": ["Ada"] * USERS,
                }
            ),
            "externalId",
        )
    copy_store(tmp, path)
    remove_store(tmp)


def remove_store(catalog: Path) -> None:
    """Delete a DuckLake store: its SQLite catalog (with WAL side files) and its data path."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(catalog) + suffix).unlink(missing_ok=True)
    shutil.rmtree(store_files(catalog), ignore_errors=True)


def copy_store(src: Path, dst: Path) -> None:
    """Copy a closed DuckLake store (SQLite catalog and data path) to ``dst``, pointing the copy at its own data.

    The catalog records its data path; the copy's is rewritten to ``<dst stem>_files/`` (DuckLake refuses an
    ATTACH whose DATA_PATH differs from the recorded one). File paths inside are relative to it.
    """
    remove_store(dst)
    con = sqlite3.connect(src)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    shutil.copyfile(src, dst)
    if store_files(src).exists():
        shutil.copytree(store_files(src), store_files(dst))
    con = sqlite3.connect(dst)
    try:
        data = str(store_files(dst).resolve()) + os.sep
        con.execute("UPDATE ducklake_metadata SET value = ? WHERE key = 'data_path'", [data])
        con.commit()
    finally:
        con.close()


def fresh_copy(src: Path, name: str) -> Path:
    """A copy under .work/ replacing an older one: a DuckLake store for ``.sqlite`` names, else a DuckDB file.

    A source that does not exist gives an empty destination (the store or file is created on first use).
    """
    dst = WORK / name
    if dst.suffix == ".sqlite":
        remove_store(dst)
        if src.exists():
            copy_store(src, dst)
        return dst
    dst.unlink(missing_ok=True)
    Path(str(dst) + ".wal").unlink(missing_ok=True)
    if src.exists():
        shutil.copyfile(src, dst)
    return dst


@dataclass
class Measured:
    """One child process: its result file, wall time and peak RSS."""

    result: dict[str, Any]
    wall_seconds: float
    peak_rss_mb: float
    returncode: int


@dataclass
class Running:
    """A child process started by :func:`start_child`, to be reaped by :func:`wait_child`."""

    argv: list[str]
    proc: subprocess.Popen[bytes]
    log: Path
    started: float
    timeout: float
    result_file: Path | None = None


def start_child(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800) -> Running:
    """Start a process (its output to a log under .work/logs/) without waiting for it."""
    log = WORK / "logs" / f"{time.time_ns()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return Running(argv, proc, log, started, timeout)


def wait_child(running: Running) -> Measured:
    """Reap a started child: its wall time (from its start) and peak RSS (its own and reaped descendants')."""
    proc, deadline = running.proc, running.started + running.timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    wall = time.perf_counter() - running.started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(f"\n--- {' '.join(running.argv[:4])} failed (exit {proc.returncode}); log {running.log}:\n")
        sys.stderr.write(running.log.read_text(errors="replace")[-4000:] + "\n")
    # ru_maxrss is in kilobytes on Linux.
    measured = Measured({}, wall, usage.ru_maxrss / 1024, proc.returncode)
    if running.result_file is not None and proc.returncode == 0 and running.result_file.exists():
        measured.result = json.loads(running.result_file.read_text())
    return measured


def run_child(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800) -> Measured:
    """Run a process to completion and return its wall time and peak RSS (its own and reaped descendants')."""
    return wait_child(start_child(argv, env=env, timeout=timeout))


def start_case(case: str, params: dict[str, Any], *, env: dict[str, str] | None = None, tag: str = "case") -> Running:
    """Start ``cases.py CASE`` in a fresh interpreter; ``tag`` keeps the files of cases running at once apart."""
    params_file = WORK / f"params-{tag}.json"
    result_file = WORK / f"result-{tag}.json"
    result_file.unlink(missing_ok=True)
    params_file.write_text(json.dumps(params, default=str))
    running = start_child(
        [sys.executable, str(BENCH_DIR / "cases.py"), case, str(params_file), str(result_file)], env=env
    )
    running.result_file = result_file
    return running


def run_case(case: str, params: dict[str, Any], *, env: dict[str, str] | None = None) -> Measured:
    """Run ``cases.py CASE`` in a fresh interpreter; its JSON result is read back."""
    return wait_child(start_case(case, params, env=env))
