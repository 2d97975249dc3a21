"""Shared pieces of the benchmark: paths, data generation, section configs and the child-process runner.

Every case runs in a fresh Python process (``cases.py``) so its peak RSS is its own: the parent reaps it
with ``os.wait4`` and reads ``ru_maxrss`` from that child's rusage (DuckDB's memory included, which
tracemalloc would not see). The child times only the work itself and writes a JSON result file.
"""

from __future__ import annotations

import json
import os
import shutil
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
    """A warehouse file holding exactly ``rows`` usage rows (keys 1..rows), made once and reused."""
    path = WORK / f"warehouse_{rows}.duckdb"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        append_events(tmp, 1, rows)
        tmp.rename(path)
    return path


def companies_warehouse(companies: int) -> Path:
    path = WORK / f"companies_{companies}.duckdb"
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute(COMPANIES_SQL, {"companies": companies})
    finally:
        con.close()
    return path


def usage_section(name: str = "events", *, batch_size: int, span: int) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "activities",
        "model": "enduser",
        "connection": "wh",
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


def config_dict(
    store: Path,
    connection: dict[str, Any],
    *,
    usage: list[dict[str, Any]] | None = None,
    crm: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A config document (what planhat_pipelines.yaml would hold) with one connection named ``wh``."""
    return {"store": {"path": str(store)}, "connections": {"wh": connection}, "usage": usage or [], "crm": crm or []}


def template_store() -> Path:
    """An empty, migrated model store holding the end users the usage rows reference."""
    path = WORK / "store_template.duckdb"
    if path.exists():
        return path
    import pyarrow as pa

    from planhat_pipelines.store import ModelStore

    with ModelStore(path) as store:
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
        store.con.execute("CHECKPOINT")
    return path


def fresh_copy(src: Path, name: str) -> Path:
    """A copy of a DuckDB file (the model store) under .work/, replacing an older one."""
    dst = WORK / name
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


def run_child(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800) -> Measured:
    """Run a process to completion and return its wall time and peak RSS (its own and reaped descendants')."""
    log = WORK / "logs" / f"{int(time.time() * 1000)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(f"\n--- {' '.join(argv[:4])} failed (exit {proc.returncode}); log {log}:\n")
        sys.stderr.write(log.read_text(errors="replace")[-4000:] + "\n")
    # ru_maxrss is in kilobytes on Linux.
    return Measured({}, wall, usage.ru_maxrss / 1024, proc.returncode)


def run_case(case: str, params: dict[str, Any], *, env: dict[str, str] | None = None) -> Measured:
    """Run ``cases.py CASE`` in a fresh interpreter; its JSON result is read back."""
    params_file = WORK / "params.json"
    result_file = WORK / "result.json"
    result_file.unlink(missing_ok=True)
    params_file.write_text(json.dumps(params, default=str))
    measured = run_child(
        [sys.executable, str(BENCH_DIR / "cases.py"), case, str(params_file), str(result_file)], env=env
    )
    if measured.returncode == 0 and result_file.exists():
        measured.result = json.loads(result_file.read_text())
    return measured
