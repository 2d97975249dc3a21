"""``planhat-pipelines changes``: the change log of a real CRM sync on a DuckDB warehouse, read from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from planhat_pipelines.cli import main
from planhat_pipelines.config import Config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines.warehouses.factory import open_warehouse
from planhat_pipelines_tests.builders import crm_section, write_config_file

FIELDS = [{"planhat": "name", "warehouse": "name"}, {"planhat": "custom.tier", "warehouse": "tier"}]


def _sync(config: Config, rows: str) -> None:
    """Replace the warehouse's companies with ``rows`` (SQL VALUES) and run the section for real."""
    with duckdb.connect(str(config.connection("wh").settings.path)) as con:  # type: ignore[union-attr]
        con.execute(f"CREATE OR REPLACE TABLE crm_companies AS SELECT * FROM (VALUES {rows}) t(id, name, tier)")
    warehouse = open_warehouse(config.connection("wh"))
    try:
        with ModelStore(config.store) as store:
            sync_section(config.crm[0], store, warehouse)
    finally:
        warehouse.close()


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config whose section ``companies`` inserted c1 and c2, then changed c1's name and its custom tier."""
    from planhat_pipelines.config import load_config

    tmp = tmp_path_factory.mktemp("changes")
    connection = {"type": "duckdb", "path": str(tmp / "wh.duckdb"), "create": True}
    path = write_config_file(tmp, connections={"wh": connection}, crm=[crm_section(fields=FIELDS)])
    config = load_config(path)
    _sync(config, "('c1', 'Acme', 'gold'), ('c2', 'Globex', 'silver')")
    _sync(config, "('c1', 'Acme Corp', 'platinum'), ('c2', 'Globex', 'silver')")
    return path


def _run(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(path), "changes", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_records_changes_show_insert_then_update_old_to_new(synced: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(synced, capsys, "--section", "companies", "--key", "c1")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2, out
    update, insert = lines  # newest first
    assert " update " in update and " c1 " in update
    assert 'name: "Acme" → "Acme Corp"' in update
    assert 'custom.tier: "gold" → "platinum"' in update
    assert " insert " in insert and 'name: ∅ → "Acme"' in insert
    # c2 did not change on the second run: only its insert is logged.
    _, other, _ = _run(synced, capsys, "--section", "companies", "--key", "c2")
    assert len(other.splitlines()) == 1 and " insert " in other


def test_json_lines_carry_the_fields_old_and_new(synced: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(synced, capsys, "--key", "c1", "--json", "--limit", "1")
    assert code == 0
    [row] = [json.loads(line) for line in out.splitlines()]
    assert (row["section"], row["key"], row["op"], row["model"]) == ("companies", "c1", "update", "company")
    assert row["fields"] == {
        "name": {"old": "Acme", "new": "Acme Corp"},
        "custom.tier": {"old": "gold", "new": "platinum"},
    }
    # The run filter finds the same row; the record id filter every row of the record.
    _, by_run, _ = _run(synced, capsys, "--run", row["run_id"], "--json")
    assert [json.loads(line)["key"] for line in by_run.splitlines()] == ["c1"]
    _, by_id, _ = _run(synced, capsys, "--record-id", row["record_id"])
    assert len(by_id.splitlines()) == 2


def test_an_unknown_section_names_the_configs_sections(synced: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(synced, capsys, "--section", "companys")
    assert code == 2 and out == ""
    assert "no CRM section 'companys'" in err and "did you mean 'companies'?" in err
    assert "the CRM sections are: companies" in err


def test_no_match_says_so_and_how_long_the_log_keeps(synced: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(synced, capsys, "--key", "nobody")
    assert code == 0 and "no changes" in out and "14 days" in out
