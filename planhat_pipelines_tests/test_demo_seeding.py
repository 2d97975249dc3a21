"""Demo data goes only where it belongs: the shipped demo configs (or a config named with ``--demo``).

Through the real command line and the real ``make dev`` (a Dagster web server on a free port in a
temporary DAGSTER_HOME), against real DuckDB warehouse files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from planhat_pipelines_tests.test_cli import ROOT, clean_env, cli, demo_copy
from tools.emulators.processes import free_port


def _tables(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {n: int(con.execute(f'SELECT count(*) FROM "{n}"').fetchall()[0][0]) for n in names}
    finally:
        con.close()


@pytest.fixture
def user_config(tmp_path: Path) -> Path:
    """A person's own config (a copy of the demo's, edited) whose warehouse holds their own table."""
    path = demo_copy(tmp_path)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("CREATE TABLE accounts AS SELECT 'a1' AS account_key, 'Acme' AS name")
    con.close()
    return path


def test_seed_demo_refuses_a_config_that_is_not_a_demo_config(user_config: Path) -> None:
    done = cli(user_config, "seed-demo")
    assert done.returncode == 2, done.stdout
    assert str(user_config) in done.stderr and "not a demo config" in done.stderr and "--demo" in done.stderr
    assert _tables(user_config.parent / "warehouse.duckdb") == {"accounts": 1}


def test_demo_refuses_a_config_that_is_not_a_demo_config(user_config: Path, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    done = cli(user_config, "demo", dagster_home=home)
    assert done.returncode == 2, done.stdout
    assert "not a demo config" in done.stderr
    assert _tables(user_config.parent / "warehouse.duckdb") == {"accounts": 1}


def test_if_missing_leaves_a_user_config_alone_and_succeeds(user_config: Path) -> None:
    done = cli(user_config, "seed-demo", "--if-missing")
    assert done.returncode == 0, done.stderr
    assert "not a demo config" in done.stdout
    assert _tables(user_config.parent / "warehouse.duckdb") == {"accounts": 1}


def test_if_missing_seeds_a_demo_warehouse_once(tmp_path: Path) -> None:
    config = demo_copy(tmp_path)
    first = cli(config, "seed-demo", "--demo", "--if-missing")
    assert first.returncode == 0, first.stderr
    assert _tables(tmp_path / "warehouse.duckdb")["usage_events"] == 100_000
    second = cli(config, "seed-demo", "--demo", "--if-missing")
    assert second.returncode == 0, second.stderr
    assert "exists" in second.stdout
    assert _tables(tmp_path / "warehouse.duckdb")["usage_events"] == 100_000


def test_seed_demo_grows_a_demo_warehouse_by_2_percent_each_time(tmp_path: Path) -> None:
    """What `make demo` does on every run."""
    config = demo_copy(tmp_path)
    for expected in (100_000, 102_000):
        done = cli(config, "seed-demo", "--demo")
        assert done.returncode == 0, done.stderr
        assert _tables(tmp_path / "warehouse.duckdb")["usage_events"] == expected


def test_the_shipped_configs_are_the_demo_configs(tmp_path: Path) -> None:
    from planhat_pipelines.demo.run import is_demo_config

    assert is_demo_config(ROOT / "planhat_pipelines.yaml")
    assert is_demo_config(ROOT / "examples" / "demo_bigquery.yaml")
    assert is_demo_config(ROOT / "examples" / "demo_snowflake.yaml")
    assert not is_demo_config(ROOT / "examples" / "complete.yaml")
    assert not is_demo_config(demo_copy(tmp_path))


def test_make_dev_on_a_user_config_seeds_nothing_and_does_not_warn_about_dagster_yaml(
    user_config: Path, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    port = free_port()
    stamp = tmp_path / "installed"
    stamp.touch()  # newer than pyproject.toml: make does not reinstall the venv
    make_dev = ["make", "-C", str(ROOT), "dev", f"STAMP={stamp}"]
    log = tmp_path / "make_dev.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*make_dev, f"DAGSTER_HOME={home}", f"PLANHAT_PIPELINES_CONFIG={user_config}", f"DEV_PORT={port}"],
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
    text = log.read_text()
    assert "will not be used" not in text, text
    assert "not a demo config" in text
    assert _tables(user_config.parent / "warehouse.duckdb") == {"accounts": 1}
