"""A commit that loses a race with another writer runs again whole, within the store's lock timeout.

The other writer is real: a process holding the SQLite catalog's write lock (as a writer mid-commit does).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from planhat_pipelines.errors import TransientError
from planhat_pipelines.store import ModelStore

_HOLD = (
    "import sqlite3, sys, time; con = sqlite3.connect(sys.argv[1], isolation_level=None); "
    "con.execute('BEGIN EXCLUSIVE'); print('held', flush=True); time.sleep(float(sys.argv[2])); con.rollback()"
)


def _hold(catalog: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(catalog), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_commit_blocked_briefly_by_another_writer_is_retried_and_lands_once(tmp_path: Path) -> None:
    catalog = tmp_path / "store.sqlite"
    with ModelStore(catalog, lock_timeout=20) as store:
        holder = _hold(catalog, 1.5)
        try:
            store.set_cursor("events", "r0", "41")  # blocked at commit, then run again
        finally:
            holder.wait(timeout=30)
        assert store.cursors("events") == {"r0": "41"}
        assert store.con.execute("SELECT count(*) FROM sync_cursors").fetchall()[0][0] == 1


def test_a_commit_blocked_past_the_lock_timeout_is_transient_and_writes_nothing(tmp_path: Path) -> None:
    catalog = tmp_path / "store.sqlite"
    with ModelStore(catalog, lock_timeout=1) as store:
        holder = _hold(catalog, 10)
        try:
            with pytest.raises(TransientError, match=r"lost \d+ race\(s\) with other writers in 1 s.*retried"):
                store.set_cursor("events", "r0", "41")
        finally:
            holder.kill()
            holder.wait(timeout=30)
        assert store.cursors("events") == {}
