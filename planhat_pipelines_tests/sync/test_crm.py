"""The CRM sync core against every warehouse (DuckDB for real, BigQuery and Snowflake on emulators).

Sections are built by the real config parser; the warehouse is seeded and checked through the harness's
own client, the store is a real DuckDB file in tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from planhat_pipelines.config import CrmSection
from planhat_pipelines.errors import KeyValidationError, ReadOnlyTargetError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import NULL_KEY, receive, send, sync_section
from planhat_pipelines_tests.builders import config_doc, crm_section, parse
from planhat_pipelines_tests.harness import WarehouseHarness


def sections(harness: WarehouseHarness, tmp_path: Path, *items: dict[str, Any]) -> tuple[CrmSection, ...]:
    doc = config_doc(
        tmp_path, connections={"wh": harness.connection_config()}, crm=[{"connection": "wh", **item} for item in items]
    )
    return parse(doc, tmp_path, "planhat_pipelines.yaml").crm


def section(harness: WarehouseHarness, tmp_path: Path, **item: Any) -> CrmSection:
    return sections(harness, tmp_path, {"name": "s", **item})[0]


def companies_section(harness: WarehouseHarness, tmp_path: Path, **extra: Any) -> CrmSection:
    return sections(harness, tmp_path, crm_section(**{"name": "s", **extra}))[0]


def rows(store: ModelStore, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store.con.execute(sql).fetchall()]


def seed_companies(harness: WarehouseHarness, ids: list[str | None], names: list[str | None] | None = None) -> None:
    harness.create_table(
        "crm_companies",
        pa.table({"id": pa.array(ids, pa.string()), "name": pa.array(names or [f"Co {i}" for i in ids], pa.string())}),
    )


# --- receive ----------------------------------------------------------------------------------------------
def test_receive_standard_custom_and_json_fields(harness: WarehouseHarness, tmp_path: Path, store: ModelStore) -> None:
    harness.create_table(
        "crm_companies",
        pa.table(
            {
                "id": ["c1", "c2"],
                "name": ["Acme", "Globex"],
                "segment": ["smb", None],
                "seats": pa.array([10, 20], pa.int64()),
                "attributes": [
                    json.dumps({"plan": {"tier": "gold", "addons": ["sso"]}, "region": "eu"}),
                    json.dumps({"plan": {"tier": "silver"}, "region": "us"}),
                ],
            }
        ),
        json_columns=["attributes"],
    )
    sec = companies_section(
        harness,
        tmp_path,
        fields=[
            {"planhat": "name", "warehouse": "name"},
            {"planhat": "custom.segment", "warehouse": "segment"},
            {"planhat": "custom.seats", "warehouse": "seats"},
            {"planhat": "custom", "warehouse": "attributes"},
            {"planhat": "custom.tier", "warehouse": "attributes", "path": "plan.tier"},
            {"planhat": "country", "warehouse": "attributes", "path": "region"},
        ],
    )
    result = sync_section(sec, store, harness.warehouse())
    assert (result.rows_read, result.inserted, result.updated, result.rejected) == (2, 2, 0, 0)
    got = {r[0]: r[1:] for r in rows(store, 'SELECT "externalId", name, country, CAST(custom AS VARCHAR) FROM company')}
    assert got["c1"][:2] == ("Acme", "eu")
    custom = json.loads(got["c1"][2])
    # The whole object lands as custom fields, objects stay objects (never a stringified repr).
    assert custom["plan"] == {"tier": "gold", "addons": ["sso"]}
    assert custom["region"] == "eu"
    assert custom["tier"] == "gold"
    assert custom["segment"] == "smb"
    assert custom["seats"] == 10
    assert "segment" not in json.loads(got["c2"][2])  # a null is dropped from the patch
    assert all(len(r[0]) == 24 for r in rows(store, "SELECT id FROM company"))  # native ids assigned


def test_json_column_without_path_into_one_custom_field_stays_an_object(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    harness.create_table(
        "crm_companies",
        pa.table({"id": ["c1"], "name": ["Acme"], "attributes": [json.dumps({"plan": {"tier": "gold"}})]}),
        json_columns=["attributes"],
    )
    sec = companies_section(
        harness,
        tmp_path,
        fields=[
            {"planhat": "name", "warehouse": "name"},
            {"planhat": "custom.attributes", "warehouse": "attributes"},
            {"planhat": "description", "warehouse": "attributes"},
        ],
    )
    sync_section(sec, store, harness.warehouse())
    custom, description = rows(store, "SELECT CAST(custom AS VARCHAR), description FROM company")[0]
    assert json.loads(custom)["attributes"] == {"plan": {"tier": "gold"}}
    assert json.loads(description) == {"plan": {"tier": "gold"}}  # readable JSON text in a text field


def test_every_rejection_reason_is_recorded_and_the_rest_syncs(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed_companies(harness, ["c1"])
    harness.create_table(
        "crm_licenses",
        pa.table(
            {
                "id": ["l1", "l2", "l2", None, "l4", "l5", "l6"],
                "company_ref": ["c1", "c1", "c1", "c1", "nope", "c1", "c1"],
                "mrr": ["100", "1", "2", "3", "4", "abc", "6"],
                "from_date": ["2020-01-01"] * 7,
                "extra": [
                    json.dumps({"a": 1}),
                    None,
                    None,
                    None,
                    None,
                    None,
                    json.dumps([1, 2]),
                ],
            }
        ),
        json_columns=["extra"],
    )
    comp, lic = sections(
        harness,
        tmp_path,
        crm_section(),
        crm_section(
            "licenses",
            "crm_licenses",
            model="license",
            fields=[
                {"planhat": "companyId", "warehouse": "company_ref"},
                {"planhat": "mrr", "warehouse": "mrr"},
                {"planhat": "fromDate", "warehouse": "from_date"},
                {"planhat": "custom", "warehouse": "extra"},
            ],
        ),
    )
    wh = harness.warehouse()
    sync_section(comp, store, wh)
    result = sync_section(lic, store, wh)
    assert (result.rows_read, result.inserted, result.rejected) == (7, 1, 6)
    reasons = {key: reason for _, key, reason, _ in store.open_rejects("licenses")}
    assert reasons["l2"] == "duplicate key: column 'id' holds 'l2' in 2 rows"
    assert reasons[NULL_KEY] == "key column 'id' is null or empty"
    assert "no company has externalId 'nope'" in reasons["l4"]
    assert reasons["l5"] == "field mrr: 'abc' is not a number"
    assert (
        reasons["l6"] == "field custom: column 'extra' holds array, not a JSON object whose keys become custom fields"
    )
    company_id = rows(store, "SELECT id FROM company WHERE \"externalId\" = 'c1'")[0][0]
    assert rows(store, 'SELECT "externalId", "companyId", mrr, CAST("fromDate" AS VARCHAR) FROM license') == [
        ("l1", company_id, 100.0, "2020-01-01")
    ]
    # The License section refreshed the derived Company fields in the same run.
    assert rows(store, "SELECT status, mrr FROM company") == [("customer", 100.0)]


def test_rejects_resolve_when_the_source_is_fixed(harness: WarehouseHarness, tmp_path: Path, store: ModelStore) -> None:
    seed_companies(harness, ["c1", "c1", "c2"])
    sec = companies_section(harness, tmp_path)
    wh = harness.warehouse()
    first = sync_section(sec, store, wh)
    assert (first.inserted, first.rejected) == (1, 2)
    seed_companies(harness, ["c1", "c2"])
    second = sync_section(sec, store, wh)
    # One reject record per rejected row: both copies of the duplicate key resolve.
    assert (second.inserted, second.unchanged, second.rejected, second.resolved_rejects) == (1, 1, 0, 2)
    assert store.open_rejects("s") == []


def test_all_keys_bad_fails_the_section_and_writes_nothing(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed_companies(harness, ["c1", "c1", None], ["a", "b", "c"])
    sec = companies_section(harness, tmp_path, name="companies")
    with pytest.raises(KeyValidationError, match=r"section 'companies'.*column 'id'"):
        sync_section(sec, store, harness.warehouse())
    assert store.count("company") == 0
    assert len(store.open_rejects("companies")) == 3  # one record per rejected row
    run = store.runs(section="companies")[0]
    assert run.status == "failed" and "usable key" in (run.error or "")


def test_non_text_key_column_fails_before_writing(harness: WarehouseHarness, tmp_path: Path, store: ModelStore) -> None:
    harness.create_table("crm_companies", pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]}))
    sec = companies_section(harness, tmp_path, name="companies")
    with pytest.raises(
        KeyValidationError, match=r"section 'companies': key column 'id'.*cast it to STRING/VARCHAR in a view"
    ):
        sync_section(sec, store, harness.warehouse())
    assert store.count("company") == 0


def test_second_sync_without_source_change_writes_nothing(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed_companies(harness, ["c1", "c2", "c3"])
    harness.create_table(
        "crm_out",
        pa.table({"id": pa.array(["c1"], pa.string()), "name": ["stale"], "phase": pa.array([None], pa.string())}),
    )
    receive_sec, send_sec = sections(
        harness,
        tmp_path,
        crm_section(direction="both"),
        crm_section(
            "companies_out",
            "crm_out",
            direction="send",
            fields=[{"planhat": "name", "warehouse": "name"}, {"planhat": "phase", "warehouse": "phase"}],
        ),
    )
    wh = harness.warehouse()
    first = sync_section(receive_sec, store, wh)
    assert (first.inserted, first.sent) == (3, 0)
    out = sync_section(send_sec, store, wh)
    assert out.sent == 3
    stamp = rows(store, "SELECT max(_updated_at) FROM company")
    again = sync_section(receive_sec, store, wh)
    assert (again.inserted, again.updated, again.unchanged, again.sent) == (0, 0, 3, 0)
    assert sync_section(send_sec, store, wh).sent == 0
    assert rows(store, "SELECT max(_updated_at) FROM company") == stamp
    assert sorted(harness.fetch("SELECT id, name FROM crm_out")) == [("c1", "Co c1"), ("c2", "Co c2"), ("c3", "Co c3")]


def test_null_does_not_wipe_unless_null_overwrites(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    harness.create_table("crm_companies", pa.table({"id": ["c1"], "name": ["Acme"], "seg": ["smb"]}))
    fields = [{"planhat": "name", "warehouse": "name"}, {"planhat": "custom.segment", "warehouse": "seg"}]
    keep = companies_section(harness, tmp_path, fields=fields)
    wh = harness.warehouse()
    sync_section(keep, store, wh)
    harness.create_table(
        "crm_companies",
        pa.table({"id": ["c1"], "name": pa.array([None], pa.string()), "seg": pa.array([None], pa.string())}),
    )
    assert sync_section(keep, store, wh).unchanged == 1
    assert rows(store, "SELECT name, custom ->> '$.segment' FROM company") == [("Acme", "smb")]
    wipe = companies_section(harness, tmp_path, fields=fields, null_overwrites=True)
    assert sync_section(wipe, store, wh).updated == 1
    assert rows(store, "SELECT name, custom ->> '$.segment' FROM company") == [(None, None)]


def test_parent_company_resolves_in_store_and_in_the_same_batch(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    harness.create_table(
        "crm_companies",
        pa.table(
            {
                "id": ["p1", "c1", "c2", "c3"],
                "name": ["Parent", "Child", "Orphan", "Grandchild"],
                "parent": pa.array([None, "p1", "missing", "c1"], pa.string()),
            }
        ),
    )
    sec = companies_section(
        harness,
        tmp_path,
        fields=[{"planhat": "name", "warehouse": "name"}, {"planhat": "parentId", "warehouse": "parent"}],
    )
    result = sync_section(sec, store, harness.warehouse())
    assert (result.inserted, result.rejected) == (3, 1)
    ids = dict(rows(store, 'SELECT "externalId", id FROM company'))
    parents = dict(rows(store, 'SELECT "externalId", "parentId" FROM company'))
    assert parents == {"p1": None, "c1": ids["p1"], "c3": ids["c1"]}
    assert "no company has externalId 'missing'" in store.open_rejects("s")[0][2]
    again = sync_section(sec, store, harness.warehouse())
    assert (again.updated, again.unchanged) == (0, 3)


def test_full_read_fallback_without_change_tracking(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    """Tables without change tracking (every DuckDB/BigQuery table, a Snowflake table without
    CHANGE_TRACKING) are read whole; a warehouse that offers change tracking says why it fell back."""
    seed_companies(harness, ["c1", "c2"])
    sec = companies_section(harness, tmp_path)
    wh = harness.warehouse()
    first = sync_section(sec, store, wh)
    seed_companies(harness, ["c1", "c2", "c3"])
    second = sync_section(sec, store, wh)
    assert first.full_read and second.full_read
    assert (second.rows_read, second.inserted, second.unchanged) == (3, 1, 2)
    if wh.capabilities.change_tracking:
        assert any("change tracking unavailable" in line for line in second.log)
    else:
        assert second.cursor_after is None and store.get_cursor("s") is None


# --- send -----------------------------------------------------------------------------------------------
def _seed_store_companies(store: ModelStore) -> None:
    store.upsert_arrow(
        "company",
        pa.table(
            {
                "externalId": ["c1", "c2"],
                "name": ["Acme", "Globex"],
                "phase": ["onboarding", "live"],
                "country": ["SE", "US"],
                "custom": [json.dumps({"score": 7, "tags": ["a"]}), json.dumps({"score": 3})],
            }
        ),
        "externalId",
    )


def test_send_writes_only_send_fields(harness: WarehouseHarness, tmp_path: Path, store: ModelStore) -> None:
    _seed_store_companies(store)
    harness.create_table(
        "crm_out",
        pa.table(
            {
                "id": pa.array(["c1"], pa.string()),
                "name": ["old"],
                "phase": ["untouched"],
                "score": pa.array([None], pa.float64()),
                "country": pa.array([None], pa.string()),
            }
        ),
    )
    sec = section(
        harness,
        tmp_path,
        model="company",
        table="crm_out",
        direction="send",
        keys={"planhat": "externalId", "warehouse": "id"},
        fields=[
            {"planhat": "name", "warehouse": "name"},
            {"planhat": "custom.score", "warehouse": "score"},
            {"planhat": "country", "warehouse": "country"},
        ],
    )
    result = sync_section(sec, store, harness.warehouse())
    assert result.sent == 2 and result.rows_read == 0
    got = sorted(harness.fetch("SELECT id, name, phase, score, country FROM crm_out"))
    assert [(r[0], r[1], r[2], float(r[3]), r[4]) for r in got] == [
        ("c1", "Acme", "untouched", 7.0, "SE"),
        ("c2", "Globex", None, 3.0, "US"),
    ]


def test_send_maps_company_id_back_to_the_warehouse_reference(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    _seed_store_companies(store)
    acme = rows(store, "SELECT id FROM company WHERE \"externalId\" = 'c1'")[0][0]
    store.upsert_arrow("license", pa.table({"externalId": ["l1"], "companyId": [acme], "mrr": [50.0]}), "externalId")
    harness.create_table(
        "crm_licenses_out",
        pa.table(
            {
                "id": pa.array([], pa.string()),
                "company_ref": pa.array([], pa.string()),
                "mrr": pa.array([], pa.float64()),
            }
        ),
    )
    sec = section(
        harness,
        tmp_path,
        model="license",
        table="crm_licenses_out",
        direction="send",
        keys={"planhat": "externalId", "warehouse": "id"},
        fields=[{"planhat": "companyId", "warehouse": "company_ref"}, {"planhat": "mrr", "warehouse": "mrr"}],
    )
    assert sync_section(sec, store, harness.warehouse()).sent == 1
    assert [(r[0], r[1], float(r[2])) for r in harness.fetch("SELECT id, company_ref, mrr FROM crm_licenses_out")] == [
        ("l1", "c1", 50.0)
    ]


def test_per_field_direction_in_a_both_section(harness: WarehouseHarness, tmp_path: Path, store: ModelStore) -> None:
    _seed_store_companies(store)
    harness.create_table(
        "crm_companies",
        pa.table(
            {
                "id": ["c1", "c2"],
                "name": ["Acme WH", "Globex"],
                "phase": ["churn-risk", "live"],
                "country": ["XX", "US"],
            }
        ),
    )
    sec = companies_section(
        harness,
        tmp_path,
        direction="both",
        fields=[
            {"planhat": "name", "warehouse": "name"},
            {"planhat": "phase", "warehouse": "phase", "direction": "receive"},
            {"planhat": "country", "warehouse": "country", "direction": "send"},
        ],
    )
    result = sync_section(sec, store, harness.warehouse())
    assert result.updated == 1  # c1: name and phase came in; country is never received
    assert rows(store, "SELECT name, phase, country FROM company WHERE \"externalId\" = 'c1'") == [
        ("Acme WH", "churn-risk", "SE")
    ]
    assert sorted(harness.fetch("SELECT id, name, phase, country FROM crm_companies")) == [
        ("c1", "Acme WH", "churn-risk", "SE"),
        ("c2", "Globex", "live", "US"),
    ]


def test_same_field_changed_on_both_sides_the_warehouse_wins(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    sec = companies_section(
        harness,
        tmp_path,
        direction="both",
        fields=[
            {"planhat": "name", "warehouse": "name"},
            {"planhat": "phase", "warehouse": "phase", "direction": "send"},
        ],
    )
    harness.create_table(
        "crm_companies", pa.table({"id": ["c1"], "name": ["Acme"], "phase": pa.array([None], pa.string())})
    )
    wh = harness.warehouse()
    sync_section(sec, store, wh)
    store.con.execute("UPDATE company SET name = 'Acme (Planhat)', phase = 'live'")
    harness.execute("UPDATE crm_companies SET name = 'Acme (warehouse)', phase = 'trial' WHERE id = 'c1'")
    result = sync_section(sec, store, wh)
    assert result.updated == 1
    # `both` field: receive ran first, so the warehouse value wins on both sides.
    assert rows(store, "SELECT name, phase FROM company") == [("Acme (warehouse)", "live")]
    # `send` field: never received, so the store value wins.
    assert harness.fetch("SELECT name, phase FROM crm_companies") == [("Acme (warehouse)", "live")]


def test_view_is_refused_for_send_before_anything_is_written(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed_companies(harness, ["c1", "c2"])
    harness.create_view("crm_companies_v", "SELECT id, name FROM crm_companies")
    sec = companies_section(harness, tmp_path, name="companies", table="crm_companies_v", direction="both")
    with pytest.raises(ReadOnlyTargetError, match=r"section 'companies': view 'crm_companies_v'.*read-only"):
        sync_section(sec, store, harness.warehouse())
    assert store.count("company") == 0  # receive did not run either
    _seed_store_companies(store)
    send_only = companies_section(harness, tmp_path, name="companies", table="crm_companies_v", direction="send")
    with pytest.raises(ReadOnlyTargetError):
        send(send_only, store, harness.warehouse(), run_id="r")
    assert sorted(harness.fetch("SELECT id, name FROM crm_companies")) == [("c1", "Co c1"), ("c2", "Co c2")]
    # Receiving from a view is fine.
    receive_only = companies_section(harness, tmp_path, name="companies", table="crm_companies_v")
    assert receive(receive_only, store, harness.warehouse(), run_id="r", full=False).rows_read == 2


def test_failure_mid_section_leaves_the_store_unchanged(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_companies(harness, ["c1", "c2"])
    harness.create_table(
        "crm_licenses",
        pa.table(
            {
                "id": ["l1", "l2"],
                "company_ref": ["c1", "c2"],
                "from_date": ["2020-01-01", "2020-01-01"],
                "to_date": ["2099-01-01", "2099-01-01"],
            }
        ),
    )
    comp, lic = sections(
        harness,
        tmp_path,
        crm_section(),
        crm_section(
            "licenses",
            "crm_licenses",
            model="license",
            fields=[
                {"planhat": "companyId", "warehouse": "company_ref"},
                {"planhat": "fromDate", "warehouse": "from_date"},
                {"planhat": "toDate", "warehouse": "to_date"},
            ],
        ),
    )
    wh = harness.warehouse()
    sync_section(comp, store, wh)
    before = rows(store, "SELECT * FROM company ORDER BY id")

    # The derived-field refresh after the license upsert fails (DuckLake has no constraint to violate, so the
    # refresh itself raises), so the section fails after its licenses were written in the transaction.
    def failing_refresh(today: object = None) -> int:
        raise RuntimeError("injected: the derived-field refresh failed")

    monkeypatch.setattr(store, "refresh_company_fields", failing_refresh)
    with pytest.raises(RuntimeError, match="injected"):
        sync_section(lic, store, wh)
    monkeypatch.undo()
    assert store.count("license") == 0
    assert rows(store, "SELECT * FROM company ORDER BY id") == before
    assert store.runs(section="licenses")[0].status == "failed"


def test_end_users_by_email_find_their_company_by_source_id(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    store.upsert_arrow("company", pa.table({"sourceId": ["crm-1"], "name": ["Acme"]}), "sourceId")
    acme = rows(store, "SELECT id FROM company")[0][0]
    harness.create_table(
        "crm_users",
        pa.table(
            {
                "email": ["ann@acme.io", "bob@acme.io"],
                "account": ["crm-1", "crm-9"],
                "featured": ["true", "maybe"],
            }
        ),
    )
    sec = section(
        harness,
        tmp_path,
        model="enduser",
        table="crm_users",
        direction="receive",
        keys={"planhat": "email", "warehouse": "email"},
        company_match="sourceId",
        fields=[
            {"planhat": "companyId", "warehouse": "account"},
            {"planhat": "featured", "warehouse": "featured"},
        ],
    )
    result = sync_section(sec, store, harness.warehouse())
    assert (result.inserted, result.rejected) == (1, 1)
    assert rows(store, 'SELECT email, "companyId", featured FROM enduser') == [("ann@acme.io", acme, True)]
    reason = store.open_rejects("s")[0][2]
    assert "no company has sourceId 'crm-9'" in reason and "field featured: 'maybe' is not a boolean" in reason


def test_unchanged_rows_are_skipped_changed_ones_and_mapping_changes_are_not(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    harness.create_table(
        "crm_companies",
        pa.table({"id": ["c1", "c2", "c3"], "name": ["A", "B", "C"], "phase": ["trial", "live", "live"]}),
    )
    names_only = companies_section(harness, tmp_path)
    assert sync_section(names_only, store, harness.warehouse()).inserted == 3
    # One source row changes: only that row is processed; the other two are skipped by their row hash.
    harness.execute("UPDATE crm_companies SET name = 'B2' WHERE id = 'c2'")
    edited = sync_section(names_only, store, harness.warehouse())
    assert (edited.updated, edited.unchanged) == (1, 2)
    assert any("2 rows unchanged" in line for line in edited.log)
    # A new mapped field changes the section's fingerprint: every row is read into the store again.
    with_phase = companies_section(
        harness, tmp_path, fields=[{"planhat": "name", "warehouse": "name"}, {"planhat": "phase", "warehouse": "phase"}]
    )
    remapped = sync_section(with_phase, store, harness.warehouse())
    assert (remapped.updated, remapped.unchanged) == (3, 0)
    assert rows(store, 'SELECT "externalId", name, phase FROM company ORDER BY 1') == [
        ("c1", "A", "trial"),
        ("c2", "B2", "live"),
        ("c3", "C", "live"),
    ]
    again = sync_section(with_phase, store, harness.warehouse())
    assert (again.updated, again.unchanged) == (0, 3)


def test_full_sync_compares_every_row_again_and_repairs_the_store(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed_companies(harness, ["c1", "c2"], ["Acme", "Globex"])
    sec = companies_section(harness, tmp_path)
    sync_section(sec, store, harness.warehouse())
    # Something other than this section changes a stored record (another section, a manual fix).
    store.con.execute("UPDATE company SET name = 'edited elsewhere' WHERE \"externalId\" = 'c1'")
    hourly = sync_section(sec, store, harness.warehouse())
    assert (hourly.updated, hourly.unchanged) == (0, 2)  # the source did not change: skipped by row hash
    full = sync_section(sec, store, harness.warehouse(), full=True)
    assert (full.updated, full.unchanged) == (1, 1)
    assert rows(store, "SELECT name FROM company WHERE \"externalId\" = 'c1'") == [("Acme",)]
