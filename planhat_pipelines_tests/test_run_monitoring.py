"""A run worker killed mid-step must not keep its section's pool slot (issue 11, item 1; issue 14's pools).

The real thing end to end: `dagster-daemon run` on a temporary DAGSTER_HOME holding the shipped
dagster.yaml, runs submitted with `dagster job launch` through the queued run coordinator, a worker
SIGKILLed while its step holds its section's slot; another section's run goes on meanwhile, and the
daemon's retry of the killed run (the same section, so the same slot) must still get it and finish.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import yaml

from planhat_pipelines.config import load_config
from planhat_pipelines.defs.naming import OKR_POOL, section_pool

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GATED_STEP = "crm__gated_companies"
#: The gated section's own pool (one slot, as every pool in the shipped dagster.yaml).
GATED_POOL = "planhat_crm_gated_companies"
#: Bound against a run that never gets the slot back; the run itself takes a few seconds.
NEXT_RUN_BOUND_SECONDS = 180.0
COLUMNS = "columns={'company_key': 'VARCHAR', 'name': 'VARCHAR'}"
ROWS = "company_key,name\nc1,Acme\nc2,Beta\n"


def shipped_instance_yaml() -> dict[str, Any]:
    """The shipped dagster.yaml, with only run monitoring's poll interval cut to 1 s so the test is quick."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    if "run_monitoring" in raw:
        raw["run_monitoring"]["poll_interval_seconds"] = 1
    return raw


def write_config(tmp: Path) -> Path:
    """Two DuckDB warehouses and one CRM section each, both writing the store, each in its own pool.

    `gated_companies` reads a view over ``gate.csv``: while that path is a FIFO nobody writes to, DuckDB
    blocks opening it, so the step sits inside the pool holding the slot until the worker is killed.
    """
    gate = tmp / "gate.csv"
    gate.write_text(ROWS)
    with duckdb.connect(str(tmp / "gated.duckdb")) as con:
        con.execute(f"CREATE VIEW gated_companies AS SELECT * FROM read_csv('{gate}', header = true, {COLUMNS})")
    with duckdb.connect(str(tmp / "fast.duckdb")) as con:
        con.execute("CREATE TABLE crm_companies (company_key VARCHAR, name VARCHAR)")
        con.execute("INSERT INTO crm_companies VALUES ('c3', 'Gamma'), ('c4', 'Delta')")

    def section(name: str, connection: str, table: str) -> dict[str, Any]:
        return {
            "name": name,
            "model": "company",
            "connection": connection,
            "table": table,
            "direction": "receive",
            "keys": {"planhat": "externalId", "warehouse": "company_key"},
            "fields": [{"planhat": "name", "warehouse": "name"}],
        }

    config = {
        "store": {"catalog": str(tmp / "planhat.sqlite")},
        "connections": {
            "gated": {"type": "duckdb", "path": str(tmp / "gated.duckdb")},
            "fast": {"type": "duckdb", "path": str(tmp / "fast.duckdb")},
        },
        "crm": [
            section("gated_companies", "gated", "gated_companies"),
            section("companies", "fast", "crm_companies"),
        ],
    }
    path = tmp / "planhat_pipelines.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`dagster-daemon run` on the project's workspace.yaml in its own process group, stopped at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            # The group holds the daemon, its code server and the run workers the code server spawned.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything of the group still alive


def launch(env: dict[str, str], job: str, run_id: str) -> subprocess.Popen[bytes]:
    """Submit ``job`` to the instance's queued run coordinator (the daemon launches it)."""
    return subprocess.Popen(
        [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", job, "--run-id", run_id],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for(what: str, probe: Callable[[], Any], timeout: float, log: Path, state: Callable[[], str]) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``, the ``state`` and the daemon's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-4000:]
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {state()}\n--- daemon log ---\n{tail}")


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the run worker, from the "Started process for run (pid: N)" engine event."""
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records:
        event = record.event_log_entry.dagster_event
        pid = event.engine_event_data.metadata.get("pid") if event and event.engine_event_data else None
        if pid is not None:
            return int(str(pid.value))
    return None


def step_started(instance: dg.DagsterInstance, run_id: str, step_key: str) -> bool:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    return any(r.event_log_entry.step_key == step_key for r in records)


def holds_store_slot(instance: dg.DagsterInstance, run_id: str) -> bool:
    claimed = instance.event_log_storage.get_concurrency_info(GATED_POOL).claimed_slots
    return any(slot.run_id == run_id for slot in claimed)


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus | None:
    run = instance.get_run_by_id(run_id)
    return run.status if run else None


def retry_of(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun | None:
    """The daemon's automatic retry of ``run_id`` (run_retries), once it exists."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}), limit=1)
    return runs[0] if runs else None


def test_killed_worker_frees_the_store_slot_for_the_next_run(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(shipped_instance_yaml()))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLANHAT_PIPELINES_CONFIG": str(write_config(tmp_path)),
    }
    gate = tmp_path / "gate.csv"
    gate.unlink()
    os.mkfifo(gate)  # the gated step now blocks opening it
    log = tmp_path / "daemon.log"
    dead, following = str(uuid.uuid4()), str(uuid.uuid4())
    started = time.monotonic()

    def milestone(text: str) -> None:
        print(f"t+{time.monotonic() - started:5.1f} s  {text}")  # shown by pytest when the test fails

    with dg.DagsterInstance.from_config(str(home)) as instance:

        def finished(run_id: str) -> dg.DagsterRunStatus | None:
            run = instance.get_run_by_id(run_id)
            return run.status if run and run.is_finished else None

        def state() -> str:
            info = instance.event_log_storage.get_concurrency_info(GATED_POOL)
            retry = retry_of(instance, dead)
            return (
                f"dead run {status(instance, dead)}, next run {status(instance, following)}, "
                f"retry {retry.run_id + ' ' + str(retry.status) if retry else 'none'}; {GATED_POOL} limit "
                f"{info.limit}, held by {[(c.run_id, c.step_key) for c in info.claimed_slots]}"
            )

        with daemon(env, log):
            first = launch(env, "crm_gated_sync", dead)
            assert first.wait(timeout=120) == 0, first.stdout.read().decode() if first.stdout else ""
            milestone(f"submitted {dead}")
            wait_for(
                f"run {dead} to start {GATED_STEP}", lambda: step_started(instance, dead, GATED_STEP), 120, log, state
            )
            assert holds_store_slot(instance, dead), state()
            pid = wait_for(f"the worker pid of run {dead}", lambda: worker_pid(instance, dead), 10, log, state)
            os.kill(pid, signal.SIGKILL)
            milestone(f"killed worker {pid} inside {GATED_STEP}, holding the slot")
            # The worker is gone: later reads of the gate (the daemon's automatic retry) get plain rows.
            gate.unlink()
            gate.write_text(ROWS)

            second = launch(env, "crm_fast_sync", following)
            assert second.wait(timeout=120) == 0, second.stdout.read().decode() if second.stdout else ""
            milestone(f"submitted {following}")
            assert wait_for(
                f"run {following} to finish", lambda: finished(following), NEXT_RUN_BOUND_SECONDS, log, state
            ) == (dg.DagsterRunStatus.SUCCESS), state()
            milestone(f"next run finished: {state()}")
            assert status(instance, dead) == dg.DagsterRunStatus.FAILURE, state()
            # The daemon's automatic retry of the dead run (its section, its pool) gets the slot the killed
            # worker held.
            retry = wait_for(f"the retry of {dead}", lambda: retry_of(instance, dead), 30, log, state)
            assert wait_for(
                f"retry {retry.run_id} to finish", lambda: finished(retry.run_id), NEXT_RUN_BOUND_SECONDS, log, state
            ) == (dg.DagsterRunStatus.SUCCESS), state()
            milestone(f"retry finished: {state()}")
            assert not instance.event_log_storage.get_concurrency_info(GATED_POOL).claimed_slots, state()


def test_every_section_has_its_own_pool_of_one_slot(tmp_path: Path) -> None:
    """The shipped dagster.yaml gives every pool one slot; each section has a pool of its own."""
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    config = load_config(write_config(tmp_path))
    pools = [section_pool(s) for s in config.crm]
    assert pools == ["planhat_crm_gated_companies", "planhat_crm_companies"]
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.global_op_concurrency_default_limit == 1
        limits = {p: instance.event_log_storage.get_concurrency_info(p).limit for p in [*pools, OKR_POOL]}
        runs = instance.get_settings("concurrency")["runs"]["max_concurrent_runs"]
    assert limits == dict.fromkeys([*pools, OKR_POOL], 1)
    assert runs == 4  # sections writing at once
