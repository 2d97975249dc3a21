"""While a usage backfill writes the store from another process, the profile page still answers.

The test measures that it does (every answer a 200 with the company, many answers while the writer ran, the new
usage shown once it is written); ``benchmarks/run.py --only pages`` measures how fast.

The store: the demo warehouse (seeded), its companies, end users and licenses received and its usage loaded by the
real syncs; then the warehouse's usage table grows by :data:`COPIES` copies of its rows under new keys (so every
company's usage grows) and ``run_usage`` loads them in a subprocess, committing batch after batch, while this
process reads the profile through the app. A reader holding a lock the writer waits for would stop the writer (it
would not finish in time); a writer blocking the readers would leave no answer inside the write.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest
from starlette.testclient import TestClient

from planhat_pipelines.config import Config, CrmSection, DuckDBSettings, UsageSection
from planhat_pipelines.demo.generate import seed_demo
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines.sync.usage import pending_ranges, run_usage
from planhat_pipelines.warehouses.factory import open_warehouse
from planhat_pipelines.web.app import create_app
from planhat_pipelines_tests.web.conftest import demo_config_in

#: The demo sections this store needs: a company's profile with its end users, licenses and activities.
CRM_SECTIONS = ("companies", "end_users", "licenses")
USAGE_SECTION = "product_events"
#: The demo's 100,000 usage rows are copied this many times under new keys: 1M rows for the backfill.
COPIES = 10
#: Profile answers that must fall inside the write (started after it began, finished before it ended). A reader
#: blocked for the whole write would have none (each would end after the writer); a few more than none, as the
#: answers slow down on a busy machine as much as the writer does.
MIN_DURING = 3
#: Seconds the backfill may take (about 10 s on an idle machine, a minute or two on a crowded one): a writer
#: waiting on a lock a reader holds does not finish by then.
WRITER_TIMEOUT_S = 200

# The backfill, as the usage asset runs it: pending ranges, then run_usage, which commits every batch. The markers
# bracket run_usage alone (opening the store and the warehouse come before "writing").
WRITER = """
import sys
from planhat_pipelines.config import load_config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.usage import pending_ranges, run_usage
from planhat_pipelines.warehouses.factory import open_warehouse

config = load_config(sys.argv[1])
section = next(s for s in config.usage if s.name == sys.argv[2])
with ModelStore(config.store) as store, open_warehouse(config.connection(section.connection)) as warehouse:
    spans, _ = pending_ranges(section, store, warehouse)
    print("writing", flush=True)
    result = run_usage(section, store, warehouse, spans)
    print("written", result.inserted, result.batches, flush=True)
"""


def _crm_section(config: Config, name: str) -> CrmSection:
    return next(s for s in config.crm if s.name == name)


def _usage_section(config: Config) -> UsageSection:
    return next(s for s in config.usage if s.name == USAGE_SECTION)


def _warehouse_path(config: Config) -> str:
    settings = config.connection(_usage_section(config).connection).settings
    assert isinstance(settings, DuckDBSettings)
    return str(settings.path)


def _loaded_store(folder: Path) -> Config:
    """The demo warehouse, seeded, and a store holding its companies, end users, licenses and usage."""
    config = demo_config_in(folder)
    usage = _usage_section(config)
    seed_demo(_warehouse_path(config))
    with ModelStore(config.store) as store, open_warehouse(config.connection(usage.connection)) as warehouse:
        for name in CRM_SECTIONS:
            sync_section(_crm_section(config, name), store, warehouse, full=True)
        spans, _ = pending_ranges(usage, store, warehouse)
        run_usage(usage, store, warehouse, spans)
        store.refresh_company_fields()
    return config


def _grow_warehouse(path: str) -> int:
    """Append :data:`COPIES` copies of the usage rows with keys above the current maximum; returns how many."""
    con = duckdb.connect(path)
    try:
        top, rows = con.execute("SELECT max(event_id), count(*) FROM usage_events").fetchall()[0]
        con.execute(
            "INSERT INTO usage_events SELECT CAST(? AS BIGINT) + row_number() OVER (ORDER BY c.i, u.event_id), "
            "u.user_email, u.action, u.occurred_at, u.cnt, u.weight, u.info "
            "FROM usage_events u, range(?) c(i)",
            [top, COPIES],
        )
        return int(rows) * COPIES
    finally:
        con.close()


@dataclass(frozen=True)
class Answer:
    """One profile request: when it started and ended (monotonic), its status, and whether it named the company."""

    started: float
    ended: float
    status: int
    names_company: bool
    activity_rows: float | None


class Writer:
    """The backfill subprocess, with the times its markers arrived (monotonic)."""

    def __init__(self, config_path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(config_path), USAGE_SECTION],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.began: float | None = None
        self.ended: float | None = None
        self.written = ""
        self._lines = threading.Thread(target=self._read, daemon=True)
        self._lines.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("writing"):
                self.began = time.monotonic()
            elif line.startswith("written"):
                self.ended = time.monotonic()
                self.written = line.strip()

    def running(self) -> bool:
        return self.proc.poll() is None

    def finish(self) -> str:
        """Wait for the writer (killed if it is still running); its stderr, for a failure's message."""
        if self.running():
            self.proc.kill()
        _, err = self.proc.communicate(timeout=30)
        self._lines.join(timeout=10)
        return err


def _ask(client: TestClient, key: str, name: str, as_json: bool) -> Answer:
    """The profile page, or its JSON twin over all the usage kept (with the sum of its activities per day)."""
    started = time.monotonic()
    if not as_json:
        page = client.get(f"/companies/{quote(key, safe='')}")
        return Answer(started, time.monotonic(), page.status_code, name in page.text, None)
    answer = client.get(f"/api/companies/{quote(key, safe='')}?range=all")
    ended = time.monotonic()
    if answer.status_code != 200:
        return Answer(started, ended, answer.status_code, False, None)
    found = answer.json()["profile"]
    rows = sum(value for _, value in found["usage"]["activities"])
    return Answer(started, ended, answer.status_code, found["company"]["name"] == name, rows)


def _stored_activity_rows(config: Config, company_id: str) -> int:
    """The company's raw activity rows in the store (what the profile's series must add up to)."""
    sql = 'SELECT count(*) FROM user_activities WHERE "companyId" = ?'
    with ModelStore(config.store, read_only=True) as store:
        return int(store.con.execute(sql, [company_id]).fetchall()[0][0])


@pytest.mark.timeout(400)
def test_profile_answers_while_a_usage_backfill_writes(tmp_path: Path) -> None:
    config = _loaded_store(tmp_path)
    with ModelStore(config.store, read_only=True) as store:
        # The company with the most usage (its profile reads the most usage_daily rows).
        company_id, key, name = store.con.execute(
            'SELECT c.id, c."externalId", c.name FROM company c JOIN user_activities a ON a."companyId" = c.id '
            "GROUP BY ALL ORDER BY count(*) DESC, c.id LIMIT 1"
        ).fetchall()[0]
    added = _grow_warehouse(_warehouse_path(config))
    before_stored = _stored_activity_rows(config, company_id)

    with TestClient(create_app(config)) as client:
        before = _ask(client, key, name, as_json=True)
        assert before.status == 200 and before.names_company
        assert before.activity_rows == before_stored
        writer = Writer(config.path)
        deadline = time.monotonic() + WRITER_TIMEOUT_S
        answers: list[Answer] = []
        while writer.running() and time.monotonic() < deadline:
            # The page and its JSON twin in turn: the page must render, the JSON says which snapshot it read.
            answers.append(_ask(client, key, name, as_json=len(answers) % 2 == 1))
        timed_out = writer.running()
        err = writer.finish()
        assert not timed_out, f"the backfill did not finish in {WRITER_TIMEOUT_S} s beside the reader: {err}"
        assert writer.proc.returncode == 0, err
        after = _ask(client, key, name, as_json=True)

    # Every row the warehouse gained was loaded, in many committed batches.
    _, inserted, batches = writer.written.split()
    assert int(inserted) == added and int(batches) > 10
    assert writer.began is not None and writer.ended is not None
    failed = [a for a in answers if a.status != 200 or not a.names_company]
    assert not failed, failed[:3]
    during = [a for a in answers if writer.began <= a.started and a.ended <= writer.ended]
    assert len(during) >= MIN_DURING, (
        f"only {len(during)} profile answers inside {writer.ended - writer.began:.1f} s of writes "
        f"({len(answers)} in all): a reader waited for the writer"
    )
    # Once written, the profile shows the new usage, counted once: each copy added the company's rows again.
    after_stored = _stored_activity_rows(config, company_id)
    assert after_stored == before_stored * (COPIES + 1)
    assert after.activity_rows == after_stored
    # Each answer showed a committed state (never less than before, more than all, or going back), and answers
    # inside the write saw batches committed after the reader started: the reader follows the writer's commits.
    seen = [a.activity_rows for a in answers if a.activity_rows is not None]
    assert seen == sorted(seen) and all(before_stored <= x <= after_stored for x in seen)
    assert any(before_stored < a.activity_rows < after_stored for a in during if a.activity_rows is not None), seen
