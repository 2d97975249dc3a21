"""`planhat-pipelines migrate-store`: a single-file store of the previous release, written by DuckDB 2.0, moves
into the DuckLake with every row, cursor and reject (counted before and after).

DuckDB 1.5.5 (the project's pin) cannot open a DuckDB 2.0 file; the real DuckDB 2.0 of the fakesnow venv
(``make emulators``) writes the old store and its EXPORT DATABASE folder, as the README's steps do.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from planhat_pipelines.cli import main
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.models import MODELS
from planhat_pipelines.store import ModelStore, StoreLocation
from planhat_pipelines.store.legacy import migrate_store
from planhat_pipelines.store.schema import SYSTEM_TABLES, model_table_ddl
from planhat_pipelines_tests.builders import duckdb_connection, write_config_file
from tools.emulators.snowflake_launcher import FAKESNOW_PYTHON

ROWS = {
    "company": (
        "INSERT INTO company (id, \"externalId\", name) SELECT 'c' || i, 'C-' || i, 'Co ' || i FROM range(50) t(i)"
    ),
    "user_activities": (
        'INSERT INTO user_activities (section, "key", model, "recordId", action, "date") '
        "SELECT 'events', i, 'enduser', 'u1', 'login', TIMESTAMP '2026-01-01' FROM range(1000) t(i)"
    ),
    "sync_cursors": "INSERT INTO sync_cursors VALUES ('events', 'r0', '999', now()), ('companies', '', 'v7', now())",
    "rejected_rows": (
        "INSERT INTO rejected_rows VALUES ('events', '-1', 'fp#1', 'negative key', '-1', 'r1', now(), now(), NULL, "
        "true), ('events', 'x', 'fp#1', 'not a number', 'x', 'r1', now(), now(), NULL, true)"
    ),
    "sync_runs": "INSERT INTO sync_runs (run_id, section, domain, started_at, status) VALUES ('r1', 'events', "
    "'usage', now(), 'success')",
}


@pytest.fixture
def duckdb2_python() -> Path:
    """A Python with DuckDB 2.0 (fakesnow's venv)."""
    assert FAKESNOW_PYTHON.exists(), f"{FAKESNOW_PYTHON} is missing. Fix: make emulators"
    return FAKESNOW_PYTHON


def _duckdb2(python: Path, database: Path, sql: str) -> None:
    script = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); con.execute(sys.stdin.read()); con.close()"
    subprocess.run([str(python), "-c", script, str(database)], input=sql, text=True, check=True, timeout=120)


def test_a_duckdb_2_store_is_refused_with_the_export_steps_then_its_export_migrates_whole(
    tmp_path: Path, duckdb2_python: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "planhat.duckdb"
    ddl = [model_table_ddl(m) for m in MODELS.values()] + list(SYSTEM_TABLES)
    _duckdb2(duckdb2_python, old, ";\n".join([*ddl, *ROWS.values()]) + ";")
    config = write_config_file(tmp_path, connections={"wh": duckdb_connection(tmp_path / "w.duckdb", create=True)})
    location = StoreLocation.of_file(tmp_path / "store.sqlite")

    with pytest.raises(PlanhatPipelinesError, match=r"written by DuckDB 2\.0.*export it with DuckDB 2\.0.*README"):
        migrate_store(old, location)

    export = tmp_path / "export"
    _duckdb2(duckdb2_python, old, f"EXPORT DATABASE '{export}' (FORMAT parquet)")
    assert main(["--config", str(config), "migrate-store", str(export)]) == 0
    printed = capsys.readouterr().out
    assert "user_activities" in printed and "1000 rows ->         1000" in printed
    with ModelStore(location, read_only=True) as store:
        counts = {t: store.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ROWS}
        assert counts == {"company": 50, "user_activities": 1000, "sync_cursors": 2, "rejected_rows": 2, "sync_runs": 1}
        assert store.loaded_through("events") == 999
        assert store.get_cursor("companies") == "v7"
        assert {r[1] for r in store.open_rejects("events")} == {"-1", "x"}
        # The copied usage rows are in the daily series the pages chart (the old store had none).
        series, dated = store.con.execute(
            'SELECT (SELECT sum("rows") FROM usage_daily), (SELECT count("date") FROM user_activities)'
        ).fetchall()[0]
        assert series == dated > 0

    # A second migration into the same store would double every row: it is refused, and nothing changes.
    with pytest.raises(PlanhatPipelinesError, match="already holds rows"):
        migrate_store(export, location)
    with ModelStore(location, read_only=True) as store:
        assert store.count("company") == 50


def test_the_old_file_named_as_a_catalog_is_refused_not_changed(tmp_path: Path, duckdb2_python: Path) -> None:
    old = tmp_path / "planhat.duckdb"
    _duckdb2(duckdb2_python, old, next(d for d in SYSTEM_TABLES if "sync_runs" in d))
    before = old.read_bytes()
    with pytest.raises(PlanhatPipelinesError, match=r"written by DuckDB 2\.0.*export it and migrate the export"):
        ModelStore(old)
    assert old.read_bytes() == before
