"""Deletes on purpose: ``on_missing`` (ignore / archive / delete) on receive, ``mirror`` on send, the safety limit.

A real DuckDB warehouse and a real store; the partial-read path (deletes reported by change tracking) runs on
the change-logging DuckDB warehouse of test_crm_change_tracking.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from planhat_pipelines.config import CrmSection
from planhat_pipelines.errors import ConfigError, DeleteLimitError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines.sync.crm.deletes import APPROVAL_SCOPE, approve_deletes
from planhat_pipelines_tests.builders import config_doc, crm_section, parse
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness
from planhat_pipelines_tests.sync.test_crm_change_tracking import _change, _setup


def _section(harness: DuckDBHarness, tmp_path: Path, **over: Any) -> CrmSection:
    doc = config_doc(tmp_path, connections={"wh": harness.connection_config()}, crm=[crm_section(name="s", **over)])
    return parse(doc, tmp_path, "planhat_pipelines.yaml").crm[0]


def _seed(harness: DuckDBHarness, ids: list[str]) -> None:
    names = [f"Co {i}" for i in ids]
    harness.create_table(
        "crm_companies", pa.table({"id": pa.array(ids, pa.string()), "name": pa.array(names, pa.string())})
    )


def _ids(n: int) -> list[str]:
    return [f"c{i:02d}" for i in range(n)]


def _store_state(store: ModelStore) -> list[tuple[Any, ...]]:
    """Every company and every row hash: what a refused run must leave exactly as it was."""
    return store.con.execute(
        'SELECT "externalId", name, _archived_at FROM company UNION ALL '
        'SELECT "key", CAST(hash AS VARCHAR), NULL FROM crm_source_hashes ORDER BY 1, 2'
    ).fetchall()


def test_ignore_is_the_default_and_keeps_records_that_left(duckdb_harness: DuckDBHarness, tmp_path: Path) -> None:
    _seed(duckdb_harness, _ids(20))
    sec = _section(duckdb_harness, tmp_path)
    with ModelStore(tmp_path / "store.sqlite") as store:
        sync_section(sec, store, duckdb_harness.warehouse())
        _seed(duckdb_harness, _ids(20)[5:])
        result = sync_section(sec, store, duckdb_harness.warehouse())
        assert result.removed == 0 and store.count("company") == 20
        assert store.changes(section="s", limit=100) and all(c.op == "insert" for c in store.changes(section="s"))


def test_archive_marks_records_that_left_and_restores_one_that_comes_back(
    duckdb_harness: DuckDBHarness, tmp_path: Path
) -> None:
    _seed(duckdb_harness, _ids(20))
    sec = _section(duckdb_harness, tmp_path, on_missing="archive")
    with ModelStore(tmp_path / "store.sqlite") as store:
        sync_section(sec, store, duckdb_harness.warehouse())
        _seed(duckdb_harness, _ids(18))  # c18 and c19 left: 2 of 20, exactly the default 10 %
        result = sync_section(sec, store, duckdb_harness.warehouse())
        assert result.removed == 2 and "2 records left the source and were archived in the store" in result.log
        archived = store.con.execute('SELECT "externalId" FROM company WHERE _archived_at IS NOT NULL').fetchall()
        assert sorted(archived) == [("c18",), ("c19",)] and store.count("company") == 20
        assert {(c.key, c.op) for c in store.changes(section="s", run_id=_last_run(store))} == {
            ("c18", "archive"),
            ("c19", "archive"),
        }
        # A second run with the same source archives nothing again.
        assert sync_section(sec, store, duckdb_harness.warehouse()).removed == 0
        _seed(duckdb_harness, _ids(19))  # c18 is back, unchanged
        back = sync_section(sec, store, duckdb_harness.warehouse())
        assert back.restored == 1 and back.removed == 0
        assert store.con.execute('SELECT "externalId" FROM company WHERE _archived_at IS NOT NULL').fetchall() == [
            ("c19",)
        ]
        assert [c.op for c in store.changes(section="s", key="c18")] == ["restore", "archive", "insert"]


def test_delete_removes_records_and_logs_their_last_values(duckdb_harness: DuckDBHarness, tmp_path: Path) -> None:
    _seed(duckdb_harness, _ids(10))
    sec = _section(duckdb_harness, tmp_path, on_missing="delete")
    with ModelStore(tmp_path / "store.sqlite") as store:
        sync_section(sec, store, duckdb_harness.warehouse())
        _seed(duckdb_harness, _ids(9))
        result = sync_section(sec, store, duckdb_harness.warehouse())
        assert result.removed == 1 and store.count("company") == 9
        (deleted,) = store.changes(section="s", key="c09", limit=1)
        assert deleted.op == "delete" and deleted.fields == {"name": ("Co c09", None)}
        _seed(duckdb_harness, _ids(10))  # it comes back: a new record
        assert sync_section(sec, store, duckdb_harness.warehouse()).inserted == 1


def test_the_limit_allows_its_edge_refuses_one_more_and_an_approval_lets_one_run_through(
    duckdb_harness: DuckDBHarness, tmp_path: Path
) -> None:
    _seed(duckdb_harness, _ids(20))
    sec = _section(duckdb_harness, tmp_path, on_missing="delete")
    with ModelStore(tmp_path / "store.sqlite") as store:
        sync_section(sec, store, duckdb_harness.warehouse())
        _seed(duckdb_harness, _ids(17))  # 3 of 20 = 15 % > 10 %
        before = _store_state(store)
        with pytest.raises(DeleteLimitError) as refused:
            sync_section(sec, store, duckdb_harness.warehouse())
        text = str(refused.value)
        assert "would remove 3 of the 20 records it holds in the store (15.0 %)" in text
        assert "delete_limit of 10 %" in text and "allow-deletes --section s --count 3" in text
        assert _store_state(store) == before
        assert store.runs(section="s", limit=1)[0].status == "failed"
        approve_deletes(store, "s", 3)
        assert sync_section(sec, store, duckdb_harness.warehouse()).removed == 3
        assert store.get_cursor("s", APPROVAL_SCOPE) is None  # spent
        _seed(duckdb_harness, _ids(13))  # 4 of 17: refused again, the approval was for one run
        with pytest.raises(DeleteLimitError, match="4 of the 17"):
            sync_section(sec, store, duckdb_harness.warehouse())
        _seed(duckdb_harness, _ids(16))  # 1 of 17 = 5.9 %: within the limit
        assert sync_section(sec, store, duckdb_harness.warehouse()).removed == 1


def test_a_count_limit_and_an_emptied_table(duckdb_harness: DuckDBHarness, tmp_path: Path) -> None:
    _seed(duckdb_harness, _ids(10))
    sec = _section(duckdb_harness, tmp_path, on_missing="archive", delete_limit=2)
    with ModelStore(tmp_path / "store.sqlite") as store:
        sync_section(sec, store, duckdb_harness.warehouse())
        _seed(duckdb_harness, _ids(8))
        assert sync_section(sec, store, duckdb_harness.warehouse()).removed == 2  # the edge: 2 allowed
        _seed(duckdb_harness, [])  # an emptied source table (a broken upstream job) is refused whole
        with pytest.raises(DeleteLimitError, match=r"would remove 8 of the 8 records .*delete_limit of 2 records"):
            sync_section(sec, store, duckdb_harness.warehouse())
        assert store.con.execute("SELECT count(*) FROM company WHERE _archived_at IS NULL").fetchall() == [(8,)]


def test_deletes_reported_by_change_tracking_are_applied(tmp_path: Path) -> None:
    section, wh = _setup(tmp_path)
    raw = config_doc(tmp_path, crm=[crm_section(table="accounts", on_missing="delete", delete_limit="50%")])
    section = parse(raw, tmp_path, "c.yaml").crm[0]
    for version, key in enumerate(["a", "b", "c"], start=1):
        _change(wh, version, "INSERT", key, key.upper())
    with ModelStore(tmp_path / "store.sqlite") as store:
        sync_section(section, store, wh)
        _change(wh, 4, "DELETE", "c")
        result = sync_section(section, store, wh)
        assert not result.full_read and (result.deleted, result.removed) == (1, 1)
        assert sorted(store.con.execute('SELECT "externalId" FROM company').fetchall()) == [("a",), ("b",)]


def test_mirror_deletes_warehouse_rows_whose_records_left_the_store(
    duckdb_harness: DuckDBHarness, tmp_path: Path
) -> None:
    sec = _section(duckdb_harness, tmp_path, direction="send", mirror=True)
    with ModelStore(tmp_path / "store.sqlite") as store:
        store.upsert_arrow(
            "company", pa.table({"externalId": _ids(10), "name": [f"N {i}" for i in range(10)]}), "externalId"
        )
        _seed(duckdb_harness, [*_ids(10), "gone1"])  # 1 of 11 rows has no record: 9 %
        result = sync_section(sec, store, duckdb_harness.warehouse())
        assert (result.sent, result.mirrored) == (10, 1)
        assert "gone1" not in {r[0] for r in duckdb_harness.fetch("SELECT id FROM crm_companies")}
        (gone,) = store.changes(section="s", op="send_delete")
        assert gone.key == "gone1" and gone.record_id is None
        sent = store.changes(section="s", key="c03", limit=1)[0]
        assert sent.op == "send" and sent.fields == {"name": ("Co c03", "N 3")}
        # Three rows without records in 13 (23 %) is over the limit: refused before the merge writes anything.
        duckdb_harness.execute("INSERT INTO crm_companies VALUES ('x1', 'X'), ('x2', 'X'), ('x3', 'X')")
        store.upsert_arrow("company", pa.table({"externalId": ["c00"], "name": ["changed"]}), "externalId")
        before = sorted(duckdb_harness.fetch("SELECT id, name FROM crm_companies"))
        with pytest.raises(DeleteLimitError, match=r"3 of the 13 records 'crm_companies' holds in the warehouse"):
            sync_section(sec, store, duckdb_harness.warehouse())
        assert sorted(duckdb_harness.fetch("SELECT id, name FROM crm_companies")) == before


@pytest.mark.parametrize(
    ("over", "where", "says"),
    [
        ({"direction": "send", "on_missing": "archive"}, "on_missing", "a send section receives none"),
        ({"mirror": True}, "mirror", "a receive section sends nothing"),
        ({"delete_limit": "ten"}, "delete_limit", "'ten' is not a share from 0% to 100%"),
        ({"delete_limit": "120%"}, "delete_limit", "not a share from 0% to 100%"),
        ({"delete_limit": -1}, "delete_limit", "-1 is negative"),
        ({"on_missing": "purge"}, "on_missing", "purge"),
    ],
)
def test_bad_delete_settings_name_the_section_and_field(
    tmp_path: Path, over: dict[str, Any], where: str, says: str
) -> None:
    doc = config_doc(tmp_path, crm=[crm_section(name="s", **over)])
    with pytest.raises(ConfigError) as bad:
        parse(doc, tmp_path, "planhat_pipelines.yaml")
    assert where in bad.value.where and "crm" in bad.value.where and says in str(bad.value)


def _last_run(store: ModelStore) -> str:
    return store.runs(section="s", limit=1)[0].run_id


@pytest.mark.parametrize("on_missing", ["archive", "delete"])
def test_a_license_that_left_drops_out_of_its_company_arr(
    duckdb_harness: DuckDBHarness, tmp_path: Path, on_missing: str
) -> None:
    """The other licenses are unchanged (the run skips them all), yet the company's derived ARR is recomputed."""
    doc = config_doc(
        tmp_path,
        connections={"wh": duckdb_harness.connection_config()},
        crm=[
            crm_section(
                "licenses",
                "crm_licenses",
                model="license",
                keys={"planhat": "externalId", "warehouse": "id"},
                company_match="externalId",
                on_missing=on_missing,
                delete_limit="50%",
                fields=[
                    {"planhat": "companyId", "warehouse": "company_ref"},
                    {"planhat": "mrr", "warehouse": "mrr"},
                    {"planhat": "fromDate", "warehouse": "from_date"},
                ],
            )
        ],
    )
    section = parse(doc, tmp_path).crm[0]

    def licenses(ids: list[str]) -> pa.Table:
        return pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "company_ref": pa.array(["c1"] * len(ids), pa.string()),
                "mrr": pa.array([100.0] * len(ids), pa.float64()),
                "from_date": pa.array(["2020-01-01"] * len(ids), pa.string()),
            }
        )

    with ModelStore(tmp_path / "store.sqlite") as store:
        store.upsert_arrow("company", pa.table({"externalId": ["c1"], "name": ["Acme"]}), "externalId")
        duckdb_harness.create_table("crm_licenses", licenses(["l1", "l2"]))
        sync_section(section, store, duckdb_harness.warehouse())
        assert store.con.execute("SELECT CAST(arr AS DOUBLE) FROM company").fetchall() == [(2400.0,)]
        duckdb_harness.create_table("crm_licenses", licenses(["l1"]))
        assert sync_section(section, store, duckdb_harness.warehouse()).removed == 1
        assert store.con.execute("SELECT CAST(arr AS DOUBLE) FROM company").fetchall() == [(1200.0,)]
