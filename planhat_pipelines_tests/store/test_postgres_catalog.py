"""Scale-out for real: the store's PostgreSQL catalog on a real PostgreSQL server, its files in one shared
folder, two sections writing at once, a reader querying throughout, and a writer SIGKILLed mid-run: every
section ends with exactly its source rows, and the reader never sees a duplicate or a row count going down.

The same processes as test_concurrent_writers.py (its writer child and warehouses are reused): each writer
loads the config file, whose ``store:`` names the PostgreSQL catalog, as a Dagster run on another machine
would; the reader builds its PostgreSQL location itself and attaches read-only.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from planhat_pipelines.config import load_config
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.builders import OMIT, config_doc, duckdb_connection, usage_section
from planhat_pipelines_tests.emulators.postgres import PostgresServer
from planhat_pipelines_tests.store.test_concurrent_writers import (
    _READER,
    BATCH,
    READER_WAIT_BOUND_S,
    ROWS,
    _warehouse,
    _writer,
)

_FILE_LOCATION = "location = StoreLocation.of_file(sys.argv[1], sys.argv[2])"
assert _FILE_LOCATION in _READER
#: The reader child of test_concurrent_writers.py on a PostgreSQL catalog: argv is the catalog kind, the data
#: path, the stop file and the PostgresCatalog's fields as JSON.
_POSTGRES_READER = _READER.replace(
    _FILE_LOCATION,
    "from planhat_pipelines.store.location import PostgresCatalog\n"
    "location = StoreLocation(sys.argv[1], None, sys.argv[2], PostgresCatalog(**json.loads(sys.argv[4])))",
)


def _catalog_rows(server: PostgresServer, database: str, sql: str) -> str:
    """One value from the catalog's own PostgreSQL database, through psql (not through DuckLake)."""
    done = server.run("psql", "-h", server.host, "-p", str(server.port), "-U", server.user, "-d", database, "-Atc", sql)
    return done.stdout.strip()


@pytest.mark.timeout(600)
def test_postgres_catalog_two_writers_and_a_reader_with_a_killed_writer_end_with_exactly_the_source_rows(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    warehouses = {name: _warehouse(tmp_path / f"{name}.duckdb") for name in ("wa", "wb")}
    sections = [
        usage_section(
            name=name,
            connection=conn,
            record_match=OMIT,
            unknown_reference="keep",
            batch_size=BATCH,
            partition_span=100_000,
        )
        for name, conn in (("events_a", "wa"), ("events_b", "wb"))
    ]
    database = postgres_server.new_database()
    doc = config_doc(tmp_path, connections={n: duckdb_connection(p) for n, p in warehouses.items()}, usage=sections)
    # Trust authentication on 127.0.0.1: no password (a real deployment gives ``password: {env: NAME}``).
    catalog = {"host": postgres_server.host, "port": postgres_server.port, "database": database}
    doc["store"] = {"postgres": {**catalog, "user": postgres_server.user}, "data_path": str(tmp_path / "files")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = load_config(path)
    location = config.store
    assert location.kind == "postgres" and location.postgres is not None
    assert location.postgres == postgres_server.catalog(database)
    ModelStore(location).close()  # created before the reader attaches
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _POSTGRES_READER,
            location.kind,
            location.data_path,
            str(stop),
            json.dumps(asdict(location.postgres)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        killed = _writer(path, 0, warehouses["wa"], kill_after=5)
        other = _writer(path, 1, warehouses["wb"])
        _, err = killed.communicate(timeout=300)
        assert killed.returncode == -signal.SIGKILL, err
        with ModelStore(location, read_only=True) as store:
            partial = store.usage_rows("events_a", "user_activities")
        assert 5 * BATCH <= partial < ROWS  # it died mid-range, after committing its first batches
        resumed = _writer(path, 0, warehouses["wa"])  # the retry: resumes after the committed cursor
        for proc in (other, resumed):
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0 and "done" in out, err
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    report = json.loads(out)
    print("reader:", report)  # shown with -s; the latency figures are measured in benchmarks/
    assert report["problems"] == [], report
    assert report["queries"] > 5 and report["max_wait"] < READER_WAIT_BOUND_S, report
    with ModelStore(location, read_only=True) as store:
        counts = store.con.execute(
            'SELECT section, count(*), count(DISTINCT "key"), min("key"), max("key") FROM user_activities '
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert counts == [("events_a", ROWS, ROWS, 1, ROWS), ("events_b", ROWS, ROWS, 1, ROWS)]
        assert store.loaded_through("events_a") == store.loaded_through("events_b") == ROWS
    # The catalog really is in PostgreSQL (every commit a snapshot there), the rows in the shared folder.
    assert int(_catalog_rows(postgres_server, database, "SELECT count(*) FROM ducklake_snapshot")) > 2 * ROWS // BATCH
    assert list((tmp_path / "files").rglob("*.parquet"))
    assert not list(tmp_path.glob("*.sqlite"))
