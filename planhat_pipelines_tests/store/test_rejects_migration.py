"""A first-release store, migrated, keeps its rejected rows as one record per source row."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from planhat_pipelines.store import ModelStore, StoreLocation
from planhat_pipelines.store.legacy import migrate_store
from planhat_pipelines.store.schema import SYSTEM_TABLES

FIRST_RELEASE_DDL = """CREATE TABLE rejected_rows (
    section VARCHAR NOT NULL, "key" VARCHAR NOT NULL, reason VARCHAR NOT NULL,
    run_id VARCHAR, first_seen TIMESTAMP, last_seen TIMESTAMP, resolved_at TIMESTAMP,
    PRIMARY KEY (section, "key", reason))"""


def test_a_first_release_rejected_rows_table_is_rebuilt_without_losing_a_record(tmp_path: Path) -> None:
    old = tmp_path / "planhat.duckdb"
    con = duckdb.connect(str(old))
    con.execute(FIRST_RELEASE_DDL)
    con.execute(next(ddl for ddl in SYSTEM_TABLES if "sync_runs" in ddl))
    con.execute(
        "INSERT INTO rejected_rows VALUES ('events', '7', 'unknown enduser x', 'r1', now(), now(), NULL), "
        "('events', '(null key) a', 'null key', 'r1', now(), now(), now())"
    )
    con.close()
    path = tmp_path / "store.sqlite"
    copies = {c.table: (c.source_rows, c.store_rows) for c in migrate_store(old, StoreLocation.of_file(path))}
    assert copies["rejected_rows"] == (2, 2)
    with ModelStore(path) as store:
        rows = store.con.execute(
            'SELECT section, "key", fingerprint, reason, run_id, resolved_at IS NULL, permanent FROM rejected_rows '
            'ORDER BY "key"'
        ).fetchall()
        assert rows == [
            ("events", "(null key) a", "v1:null key", "null key", "r1", False, False),
            ("events", "7", "v1:unknown enduser x", "unknown enduser x", "r1", True, False),
        ]
        # The rebuilt table takes one record per row: two rows with the same key and reason are two records.
        rejects = pa.table({"key": ["3", "3"], "fingerprint": ["a#1", "b#1"], "reason": ["dup", "dup"]})
        store.record_rejects("events", "r2", rejects, resolve_others=False)
        assert len(store.open_rejects("events")) == 3
    with ModelStore(path) as store:  # opening again changes nothing
        assert store.con.execute("SELECT count(*) FROM rejected_rows").fetchall()[0][0] == 4
