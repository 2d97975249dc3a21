"""``planhat-pipelines demo`` shows the syncs' progress as they run: plain lines in a pipe, one updating bar on a
terminal. Real subprocesses (a pipe, then a pseudo-terminal), real DuckDB files, a temporary DAGSTER_HOME.

The warehouse is seeded small before the command runs (the command's own seed then only appends 2 %), and
the usage batches are small, so each sync still takes several batches while the test stays quick.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import yaml

from planhat_pipelines.demo.generate import DemoSize, seed_demo

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "planhat_pipelines.cli"]
SMALL = DemoSize(companies=20, users=100, licenses=30, events=2_500, metrics=300)
#: A bound against a hung command, not a speed requirement.
TIMEOUT = 240


def demo_folder(folder: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the demo config in ``folder`` (small key ranges and batches), its seeded warehouse and env."""
    raw = yaml.safe_load((ROOT / "planhat_pipelines.yaml").read_text())
    raw["store"]["catalog"] = str(folder / "planhat.sqlite")
    raw["connections"]["embedded"]["path"] = str(folder / "warehouse.duckdb")
    for section in raw["usage"]:
        section["partition_span"], section["batch_size"] = 1_000, 400
    # Progress is the syncs' own: the customer numbers built after them (and the CRM sections only they read)
    # print no progress lines, so they are left out to keep the two demo runs quick.
    raw["crm"] = [s for s in raw["crm"] if s["name"] not in ("churns", "tasks", "nps")]
    raw["behaviours"] = {name: {"enabled": False} for name in raw["behaviours"]}
    del raw["calculated_metrics"], raw["health_score"]
    config = folder / "demo.yaml"
    config.write_text(yaml.safe_dump(raw))
    seed_demo(folder / "warehouse.duckdb", SMALL)
    home = folder / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "PLANHAT_PIPELINES_CONFIG")}
    return config, {**env, "DAGSTER_HOME": str(home), "COLUMNS": "250"}


def command(config: Path) -> list[str]:
    # --demo: a copy of the demo config is not one of the shipped ones.
    return [*CLI, "--config", str(config), "demo", "--demo"]


def test_demo_in_a_pipe_prints_plain_progress_lines_as_the_syncs_run(tmp_path: Path) -> None:
    config, env = demo_folder(tmp_path)
    ran = subprocess.run(
        command(config),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one log, as `make demo > log 2>&1` writes it
        text=True,
        timeout=TIMEOUT,
    )
    assert ran.returncode == 0, ran.stdout
    assert "\r" not in ran.stdout  # no bar outside a terminal
    lines = ran.stdout.splitlines()

    def where(prefix: str) -> list[int]:
        return [i for i, line in enumerate(lines) if line.startswith(prefix)]

    crm_done, usage_done = where("crm_full_sync: success")[0], where("usage/product_events: ")[0]
    assert where("companies (read): 20 rows; ") and where("licenses (write): 30 of 30 rows (100%); ")
    assert where("company_export (send): 20 of 20 rows (100%); ")
    assert max(where("companies (")) < crm_done  # shown while the run went on, not after it
    assert not where("companies: ")  # the assets' other log lines stay in the runs' logs
    events = where("product_events (range): ")
    assert len(events) >= 6  # 2,550 events in batches of at most 400
    assert crm_done < events[0] and events[-1] < usage_done
    read = [int(lines[i].split(": ")[1].split(" read")[0].replace(",", "")) for i in events]
    assert read == sorted(read) and read[-1] == 2_550  # growing, up to every row of the source


def test_demo_on_a_terminal_rewrites_one_progress_line(tmp_path: Path) -> None:
    config, env = demo_folder(tmp_path)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command(config), env=env, cwd=tmp_path, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        proc.wait(timeout=30)
    out = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, out
    # The terminal turns "\n" into "\r\n"; a '\r' followed by anything else rewrites the line in place.
    updates = re.findall(r"\r(?!\n)([^\r\n]*)", out)
    events = [u for u in updates if "product_events (range): " in u]
    assert len(events) >= 6, out
    # Usage lines state the share of their read, so the bar fills as the range is read.
    assert all(re.match(r"\[[#-]{20}\] +\d+% product_events \(range\)", u) for u in events), events
    assert any(re.match(r"\[#{20}\] 100% licenses \(write\): 30 of 30 rows", u) for u in updates), updates
    text = out.replace("\r\n", "\n")
    assert not re.search(r"^product_events \(range\)", text, re.M)  # no plain progress lines on a terminal
    assert "\ncrm_full_sync: success" in text  # a run's result starts on its own line, below the bar
