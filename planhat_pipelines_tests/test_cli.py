"""``planhat-pipelines`` as a person types it: real subprocesses, real exit codes and output, real DuckDB files
and real Dagster instances in a temporary DAGSTER_HOME (or none at all)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef

from planhat_pipelines.demo.generate import DemoSize, seed_demo
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "planhat_pipelines.cli"]
DAGSTER = str(Path(sys.executable).parent / "dagster")
SMALL = DemoSize(companies=20, users=100, licenses=30, events=2_500, metrics=300)
RANGE_0 = "00000000000000000000000000000000-00000000000000000000000000000999"
RANGE_1 = "00000000000000000000000000001000-00000000000000000000000000001999"
RANGE_2 = "00000000000000000000000000002000-00000000000000000000000000002999"


def demo_copy(folder: Path, *, span: int = 1_000) -> Path:
    """The demo config with its store and warehouse in ``folder`` and ``span``-key ranges."""
    raw = yaml.safe_load((ROOT / "planhat_pipelines.yaml").read_text())
    raw["store"]["catalog"] = str(folder / "planhat.sqlite")
    raw["connections"]["embedded"]["path"] = str(folder / "warehouse.duckdb")
    for section in raw["usage"]:
        section["partition_span"] = span
        section["batch_size"] = min(section["batch_size"], span)
    path = folder / "planhat_pipelines.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def clean_env(dagster_home: Path | None = None) -> dict[str, str]:
    """The caller's environment without the two variables these tests control."""
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "PLANHAT_PIPELINES_CONFIG")}
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    return env


def cli(
    config: Path, *args: str, dagster_home: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--config", str(config), *args],
        env=clean_env(dagster_home),
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def instance_at(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "dagster_home"
    path.mkdir()
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = demo_copy(tmp_path)
    seed_demo(tmp_path / "warehouse.duckdb", SMALL)
    return path


# --- DAGSTER_HOME -------------------------------------------------------------------------------------------
def test_ranges_without_dagster_home_uses_the_repo_default(config: Path) -> None:
    done = cli(config, "ranges", "product_events", "--command")
    out = done.stdout + done.stderr
    assert "DagsterHomeNotSetError" not in out and "Traceback" not in out, out
    assert 'export DAGSTER_HOME=~"/dagster_home"' not in out, out
    assert done.returncode in (0, 1), out
    assert f"DAGSTER_HOME={ROOT / '.dagster_home'}" in out


def test_without_dagster_home_and_no_repo_default_it_says_how_to_set_it(tmp_path: Path) -> None:
    from planhat_pipelines.cli import resolve_dagster_home

    with pytest.raises(PlanhatPipelinesError, match=r"DAGSTER_HOME is not set.*Fix: export DAGSTER_HOME="):
        resolve_dagster_home({}, tmp_path)
    (tmp_path / ".dagster_home").mkdir()
    assert resolve_dagster_home({}, tmp_path) == (tmp_path / ".dagster_home", True)
    assert resolve_dagster_home({"DAGSTER_HOME": "/x"}, tmp_path) == (Path("/x"), False)


# --- register-ranges and the backfill it prints -------------------------------------------------------------
def test_register_ranges_then_the_printed_command_loads_them(config: Path, home: Path) -> None:
    """A first load from a terminal: no daemon, no store yet; the printed command runs as printed, quietly."""
    done = cli(config, "register-ranges", "product_events", dagster_home=home)
    assert done.returncode == 0, done.stderr
    with instance_at(home) as instance:
        assert sorted(instance.get_dynamic_partitions("usage_product_events_ranges")) == [RANGE_0, RANGE_1, RANGE_2]
    [command] = [line for line in done.stdout.splitlines() if "dagster asset materialize" in line]
    assert f"--partition-range {RANGE_0}...{RANGE_2}" in command
    assert f"DAGSTER_HOME={home}" in command and f"PLANHAT_PIPELINES_CONFIG={config}" in command

    # Registering again adds nothing and says so.
    again = cli(config, "register-ranges", "product_events", dagster_home=home)
    assert again.returncode == 0 and "0 new" in again.stdout, again.stdout

    # The command as printed, from a shell that has neither variable set.
    ran = subprocess.run(command, shell=True, env=clean_env(), capture_output=True, text=True, timeout=240)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "BetaWarning" not in ran.stdout + ran.stderr
    with ModelStore(config.parent / "planhat.sqlite", read_only=True) as store:
        [run] = store.runs(section="product_events")
        cursors = store.cursors("product_events")
    # Every row was read in that one run (they are rejected: no end users are synced in this test).
    assert (run.status, run.rows_read) == ("success", SMALL.events)
    assert len(cursors) == 3, cursors  # one cursor per range


def test_ranges_added_out_of_key_order_get_commands_that_select_only_ranges(config: Path, home: Path) -> None:
    """`--partition-range A...B` follows the instance's insertion order: a key-sorted A...B would be wrong here."""
    with instance_at(home) as instance:
        # A sensor registered the newest range, then someone typed a name into the UI's backfill dialog.
        instance.add_dynamic_partitions("usage_product_events_ranges", [RANGE_2, "my backfill"])
    done = cli(config, "register-ranges", "product_events", dagster_home=home)
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if "dagster asset materialize" in line]
    assert len(commands) == 2, done.stdout
    assert commands[0].endswith(f"--partition {RANGE_2}")
    assert commands[1].endswith(f"--partition-range {RANGE_0}...{RANGE_1}")
    listed = cli(config, "ranges", "product_events", "--command", dagster_home=home)
    assert [line for line in listed.stdout.splitlines() if "dagster asset materialize" in line] == commands

    for command in commands:
        ran = subprocess.run(command, shell=True, env=clean_env(), capture_output=True, text=True, timeout=240)
        assert ran.returncode == 0, ran.stderr[-3000:]
    with ModelStore(config.parent / "planhat.sqlite", read_only=True) as store:
        cursors = store.cursors("product_events")
    # Each range read through its last key (the rows are rejected: no end users are synced in this test).
    assert sorted(int(v) for v in cursors.values()) == [999, 1999, SMALL.events], cursors


def test_register_ranges_of_an_unknown_section_names_the_choices(config: Path, home: Path) -> None:
    done = cli(config, "register-ranges", "product_event", dagster_home=home)
    assert done.returncode == 2
    assert "unknown usage section 'product_event'" in done.stderr
    assert "product_events, company_metrics" in done.stderr


def test_dagster_asset_materialize_prints_no_beta_warning(config: Path, home: Path) -> None:
    done = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "planhat_pipelines.definitions", "--select", "crm/companies"],
        env={**clean_env(home), "PLANHAT_PIPELINES_CONFIG": str(config)},
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "BetaWarning" not in done.stdout + done.stderr
    assert "backfill_policy" not in done.stdout + done.stderr


# --- ranges with a partition that is not a range -------------------------------------------------------------
def test_ranges_lists_a_key_that_is_not_a_range_as_invalid_and_deletes_it_on_request(config: Path, home: Path) -> None:
    with instance_at(home) as instance:
        # The UI's backfill dialog lets a person add any name as a partition.
        instance.add_dynamic_partitions("usage_product_events_ranges", [RANGE_0, RANGE_1, "my backfill"])

    listed = cli(config, "ranges", "product_events", dagster_home=home)
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    assert f"{RANGE_0}  keys 0..999" in listed.stdout and f"{RANGE_1}  keys 1000..1999" in listed.stdout
    assert "invalid" in listed.stdout and "'my backfill'" in listed.stdout
    assert f"planhat-pipelines --config {config} ranges product_events --delete-invalid" in listed.stdout

    command = cli(config, "ranges", "product_events", "--command", dagster_home=home)
    assert command.returncode == 0, command.stderr
    assert f"--partition-range {RANGE_0}...{RANGE_1}" in command.stdout
    assert "my backfill" not in command.stdout

    deleted = cli(config, "ranges", "product_events", "--delete-invalid", dagster_home=home)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted 1 partition key(s)" in deleted.stdout and "'my backfill'" in deleted.stdout
    with instance_at(home) as instance:
        assert sorted(instance.get_dynamic_partitions("usage_product_events_ranges")) == [RANGE_0, RANGE_1]


def test_ranges_with_nothing_registered_says_how_to_register(config: Path, home: Path) -> None:
    done = cli(config, "ranges", "product_events", dagster_home=home)
    assert done.returncode == 1
    assert f"planhat-pipelines --config {config} register-ranges product_events" in done.stdout + done.stderr


# --- read-only commands ----------------------------------------------------------------------------------------
def test_read_only_commands_without_a_store_say_so_and_create_nothing(config: Path) -> None:
    store = config.parent / "planhat.sqlite"
    for args in (["summary"], ["logs"]):
        done = cli(config, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert f"no store yet at {store}: run a sync first (make demo)" in done.stderr
        assert not store.exists()


_WRITER = """
import sys, time
from planhat_pipelines.store import ModelStore
store = ModelStore(sys.argv[1])
store.con.execute("INSERT INTO company (id, name) SELECT 'c' || i, 'committed' FROM range(3) t(i)")
store.con.execute("BEGIN TRANSACTION")
store.con.execute("INSERT INTO company (id, name) SELECT 'w' || i, 'uncommitted' FROM range(1000) t(i)")
print("writing", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_read_only_commands_answer_at_once_while_another_process_writes(config: Path) -> None:
    store_path = config.parent / "planhat.sqlite"
    ModelStore(store_path).close()
    # Another process in the middle of a write transaction (as a sync is between its commits).
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(store_path), "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        for args in (["summary"], ["logs"]):
            done = cli(config, *args, timeout=60)
            assert done.returncode == 0, (args, done.stderr)
        summary = cli(config, "summary").stdout
        assert re.search(r"^company\s+3$", summary, re.M), summary  # the last committed snapshot only
    finally:
        writer.kill()
        writer.wait(timeout=30)


# --- who holds a DuckDB-file catalog (single process) -----------------------------------------------------------
def _hold(path: Path, seconds: float, *, read_only: bool = False, argv: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """A real process with the catalog file open for ``seconds`` (``argv`` are extra words on its command line)."""
    script = (
        f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only={read_only}); "
        f"print('held', flush=True); time.sleep({seconds})"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, *argv], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def store_path(config: Path) -> Iterator[Path]:
    """The config's store as a DuckDB-file catalog (the single-process kind, which one process locks)."""
    path = config.parent / "planhat.duckdb"
    raw = yaml.safe_load(config.read_text())
    raw["store"]["catalog"] = str(path)
    config.write_text(yaml.safe_dump(raw))
    ModelStore(path).close()
    yield path


def test_a_sql_shell_holding_the_store_is_named_and_told_to_close(config: Path, store_path: Path) -> None:
    shell = _hold(store_path, 120)
    try:
        started = time.monotonic()
        done = cli(config, "summary", timeout=60)
        waited = time.monotonic() - started
    finally:
        shell.kill()
        shell.wait(timeout=30)
    assert done.returncode == 2, done.stdout
    assert f"PID {shell.pid}" in done.stderr and "python" in done.stderr
    assert "not a Dagster run" in done.stderr and "close it" in done.stderr.lower()
    assert waited < 29, "a person's shell does not let go by itself: the full 30 s run wait is not spent on it"


def test_a_dagster_run_holding_the_store_is_waited_for(config: Path, store_path: Path) -> None:
    # A process whose command line is a Dagster run worker's (`... api execute_run <args>`), holding the store 8 s:
    # longer than the grace given to a shell, so the command only succeeds if it waits as it does for a run.
    run = _hold(store_path, 8, argv=("api", "execute_run", "{}"))
    try:
        done = cli(config, "summary", timeout=60)
    finally:
        run.wait(timeout=30)
    assert done.returncode == 0, done.stderr


def test_the_message_for_a_run_that_stays_says_to_wait(store_path: Path) -> None:
    run = _hold(store_path, 60, argv=("api", "execute_run", "{}"))
    try:
        with pytest.raises(PlanhatPipelinesError) as caught:
            ModelStore(store_path, lock_timeout=1)
    finally:
        run.kill()
        run.wait(timeout=30)
    message = str(caught.value)
    assert f"PID {run.pid}" in message and "Dagster run" in message and "wait" in message
    assert "its section's pool" in message


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["/venv/bin/python", "-m", "dagster", "api", "execute_run", "{}"], "run"),
        (["/venv/bin/dagster", "asset", "materialize", "-m", "planhat_pipelines.definitions"], "run"),
        (["/venv/bin/python", "-m", "planhat_pipelines.cli", "demo"], "run"),
        (["/venv/bin/python", "-m", "dagster", "api", "grpc", "--lazy-load-user-code"], "dagster"),
        (["/venv/bin/dagster-daemon", "run"], "dagster"),
        (["/venv/bin/planhat-pipelines", "checkin", "leads", "3"], "dagster"),
        (["duckdb", "/data/planhat.duckdb"], "other"),
        (["/usr/bin/python3", "-m", "jupyter", "lab"], "other"),
        (["/venv/bin/python"], "other"),
    ],
)
def test_lock_holders_are_told_apart_by_their_command_line(argv: list[str], kind: str) -> None:
    from planhat_pipelines.store.lock import classify

    assert classify(argv).value == kind
