"""Previews write nothing: the store and the warehouse hold the same rows (counts and checksums) after a preview
of a CRM receive, a CRM send with mirror, a usage range and the whole job; and a real run then does what the
preview said."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from planhat_pipelines.cli import main
from planhat_pipelines.config import Config
from planhat_pipelines.errors import DeleteLimitError
from planhat_pipelines.preview import preview_sections
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines.warehouses.factory import open_warehouse
from planhat_pipelines_tests.builders import config_doc, crm_section, parse, usage_section, write_config
from planhat_pipelines_tests.harness import WarehouseHarness

Checksums = dict[str, tuple[int, int]]


def _checksums(con: duckdb.DuckDBPyConnection, catalog: str | None = None) -> Checksums:
    """Every table's row count and an order-free hash of its rows."""
    where = f"table_catalog = '{catalog}'" if catalog else "table_catalog = current_database()"
    tables = con.execute(
        f"SELECT table_name FROM information_schema.tables WHERE {where} AND table_schema = 'main' "
        "AND table_type = 'BASE TABLE' ORDER BY 1"
    ).fetchall()
    out: Checksums = {}
    for (table,) in tables:
        count, total = con.execute(f'SELECT count(*), COALESCE(sum(hash(t)), 0) FROM "{table}" t').fetchall()[0]
        out[table] = (int(count), int(total))
    return out


def _warehouse_checksums(path: Path) -> Checksums:
    with duckdb.connect(str(path), read_only=True) as con:
        return _checksums(con)


def _companies(ids: list[str], names: list[str] | None = None) -> pa.Table:
    names = names or [f"Co {i}" for i in ids]
    return pa.table({"id": pa.array(ids, pa.string()), "name": pa.array(names, pa.string())})


def _events(keys: list[int]) -> pa.Table:
    n = len(keys)
    return pa.table(
        {
            "event_id": pa.array(keys, pa.int64()),
            "user_email": [f"u{k % 3}@x.io" for k in keys],
            "action": ["login"] * n,
            "occurred_at": pa.array([datetime(2026, 1, 1, 12, k % 60) for k in keys], pa.timestamp("us")),
        }
    )


def _write(path: Path, table: str, data: pa.Table) -> None:
    with duckdb.connect(str(path)) as con:
        con.register("__data", data)
        con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM __data')


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Config, Path]:
    """A config of three sections on one DuckDB warehouse, synced once, then changed in the warehouse:
    2 companies renamed, 1 new, 3 gone (over the 10 % limit of 20), 5 new events, and an outbound table with
    one row whose record left the store."""
    wh = tmp_path / "wh.duckdb"
    ids = [f"c{i:02d}" for i in range(20)]
    _write(wh, "crm_companies", _companies(ids))
    _write(wh, "crm_out", _companies([]))
    _write(wh, "events", _events(list(range(1, 11))))
    config = write_config(
        tmp_path,
        connections={"wh": {"type": "duckdb", "path": str(wh)}},
        crm=[
            crm_section("companies", on_missing="delete"),
            crm_section("outbound", "crm_out", direction="send", mirror=True, delete_limit=1),
        ],
        usage=[usage_section("events")],
    )
    with ModelStore(config.store) as store:
        store.upsert_arrow(
            "enduser", pa.table({"externalId": ["e0", "e1", "e2"], "email": [f"u{i}@x.io" for i in range(3)]}), "email"
        )
    _real_run(config)
    _write(wh, "crm_out", _companies([*ids[:5], "gone"], ["old"] * 6))
    _write(
        wh, "crm_companies", _companies([*ids[:17], "c99"], [*["Co x", "Co y"], *[f"Co {i}" for i in ids[2:17]], "New"])
    )
    _write(wh, "events", _events(list(range(1, 16))))
    return config, wh


def _real_run(config: Config) -> dict[str, Any]:
    from planhat_pipelines.sync.usage import pending_ranges, run_usage

    out: dict[str, Any] = {}
    with ModelStore(config.store) as store:
        for section in config.crm:
            with open_warehouse(config.connection(section.connection)) as warehouse:
                out[section.name] = sync_section(section, store, warehouse)
        for usage in config.usage:
            with open_warehouse(config.connection(usage.connection)) as warehouse:
                spans = pending_ranges(usage, store, warehouse)[0]
                out[usage.name] = run_usage(usage, store, warehouse, spans)
    return out


def _store_checksums(config: Config) -> Checksums:
    with ModelStore(config.store, read_only=True) as store:
        return _checksums(store.con, "store")


def test_a_preview_of_each_kind_writes_nothing_and_says_what_a_run_would_do(setup: tuple[Config, Path]) -> None:
    config, wh = setup
    store_before, wh_before = _store_checksums(config), _warehouse_checksums(wh)
    companies, outbound, events = preview_sections(config, ["companies", "outbound", "events"])
    assert (_store_checksums(config), _warehouse_checksums(wh)) == (store_before, wh_before)

    assert companies.error is None
    assert companies.counts["insert"] == 1 and companies.counts["update"] == 2
    assert companies.counts["remove (on_missing)"] == 3
    assert any("a real run would stop here" in line and "3 of the 20 records" in line for line in companies.log)
    by_key = {c.key: c for c in companies.samples}
    assert by_key["c00"].op == "update" and by_key["c00"].fields == {"name": ("Co c00", "Co x")}
    assert by_key["c99"].op == "insert" and by_key["c17"].op == "delete"

    assert outbound.counts["delete in the warehouse (mirror)"] == 1 and outbound.counts["send"] == 20
    assert events.counts["insert"] == 5 and events.kind == "usage"

    # A real run does what the preview said (the limit stops the removal: the preview warned of it).
    with ModelStore(config.store) as store, open_warehouse(config.connection("wh")) as warehouse:
        with pytest.raises(DeleteLimitError):
            sync_section(config.crm[0], store, warehouse)
        outbound_run = sync_section(config.crm[1], store, warehouse)
    assert outbound_run.mirrored == outbound.counts["delete in the warehouse (mirror)"]
    assert outbound_run.sent == outbound.counts["send"]


def test_the_whole_job_preview_from_the_cli_writes_nothing(
    setup: tuple[Config, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, wh = setup
    store_before, wh_before = _store_checksums(config), _warehouse_checksums(wh)
    assert main(["--config", str(config.path), "preview", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["section"] for p in lines] == ["companies", "outbound", "events"]
    assert lines[0]["samples"] and all(p["error"] is None for p in lines)
    assert (_store_checksums(config), _warehouse_checksums(wh)) == (store_before, wh_before)
    assert main(["--config", str(config.path), "preview", "--section", "companies"]) == 0
    text = capsys.readouterr().out
    assert "preview: nothing written" in text and 'name: "Co c00" → "Co x"' in text
    assert main(["--config", str(config.path), "preview", "--section", "nope"]) == 2
    assert "no section named 'nope'" in capsys.readouterr().err


def test_allow_deletes_lets_one_refused_run_through(
    setup: tuple[Config, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup
    assert main(["--config", str(config.path), "allow-deletes", "--section", "companies", "--count", "3"]) == 0
    assert "may remove up to 3 records" in capsys.readouterr().out
    assert _real_run(config)["companies"].removed == 3
    assert main(["--config", str(config.path), "allow-deletes", "--section", "events", "--count", "3"]) == 2
    assert "removes no records" in capsys.readouterr().err


def test_a_send_preview_leaves_each_warehouse_as_it_was(harness: WarehouseHarness, tmp_path: Path) -> None:
    """On DuckDB, BigQuery and Snowflake: a preview of a send with mirror changes no warehouse row; the real
    run then writes what the preview counted."""
    harness.create_table("crm_out", _companies(["c0", "c1", "gone"], ["old", "Co c1", "x"]))
    doc = config_doc(
        tmp_path,
        connections={"wh": harness.connection_config()},
        crm=[crm_section("outbound", "crm_out", direction="send", mirror=True, delete_limit=1)],
    )
    section = parse(doc, tmp_path).crm[0]
    with ModelStore(tmp_path / "s.sqlite") as store:
        store.upsert_arrow(
            "company", _companies(["c0", "c1", "c2"]).rename_columns(["externalId", "name"]), "externalId"
        )
        before = sorted(harness.fetch("SELECT id, name FROM crm_out"))
        preview = sync_section(section, store, harness.warehouse(), dry_run=True)
        assert (preview.preview, preview.sent, preview.mirrored) == (True, 2, 1)
        assert sorted(harness.fetch("SELECT id, name FROM crm_out")) == before
        assert not store.runs(section="outbound") and not store.changes(section="outbound")
        real = sync_section(section, store, harness.warehouse())
        assert (real.sent, real.mirrored) == (2, 1)
    assert sorted(harness.fetch("SELECT id, name FROM crm_out")) == [("c0", "Co c0"), ("c1", "Co c1"), ("c2", "Co c2")]
