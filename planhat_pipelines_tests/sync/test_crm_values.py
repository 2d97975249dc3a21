"""CRM values as people type them and as money needs them (issue 11 items 5-7, issue 12).

Emails and text keys are matched trimmed (emails also case-insensitively) against every warehouse;
non-finite and out-of-range numbers are rejected; money is DECIMAL from the warehouse to the store and
back; ``planhat: custom`` parses JSON held in a text column. Real warehouses (DuckDB file, BigQuery and
Snowflake emulators through ``harness``), a real DuckDB store.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from planhat_pipelines.config import CrmSection
from planhat_pipelines.models import MODELS, FieldType
from planhat_pipelines.store import ModelStore, StoreLocation
from planhat_pipelines.store.legacy import migrate_store
from planhat_pipelines.store.schema import SYSTEM_TABLES, migrate, model_table_ddl
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines_tests.builders import crm_section
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness
from planhat_pipelines_tests.harness import WarehouseHarness
from planhat_pipelines_tests.sync.test_crm import rows, section, sections


def reasons(store: ModelStore, section_name: str = "s") -> dict[str, str]:
    return {key: reason for _, key, reason, *_ in store.open_rejects(section_name)}


def users_section(harness: WarehouseHarness, tmp_path: Path, **extra: Any) -> CrmSection:
    item = crm_section(
        "s",
        "crm_users",
        model="enduser",
        keys={"planhat": "email", "warehouse": "email"},
        fields=[{"planhat": "firstName", "warehouse": "first_name"}],
    )
    return sections(harness, tmp_path, {**item, **extra})[0]


def seed_users(
    harness: WarehouseHarness, emails: list[str | None], names: list[str] | None = None, **cols: Any
) -> None:
    data = {"email": pa.array(emails, pa.string()), "first_name": names or [f"n{i}" for i in range(len(emails))]}
    harness.create_table("crm_users", pa.table({**data, **cols}))


# --- A: emails match the way people type them --------------------------------------------------------
def test_email_key_is_stored_lower_case_and_trimmed_and_matches_any_spelling(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed_users(harness, ["Ann@X.com ", " bob@y.io"], ["Ann", "Bob"])
    sec = users_section(harness, tmp_path)
    first = sync_section(sec, store, harness.warehouse())
    assert (first.inserted, first.rejected) == (2, 0)
    assert rows(store, 'SELECT email, "firstName" FROM enduser ORDER BY 1') == [
        ("ann@x.com", "Ann"),
        ("bob@y.io", "Bob"),
    ]
    # The warehouse now spells them differently: the same two End Users, one of them changed.
    seed_users(harness, ["ann@x.com", "BOB@Y.IO"], ["Ann", "Robert"])
    second = sync_section(sec, store, harness.warehouse())
    assert (second.inserted, second.updated, second.unchanged, second.rejected) == (0, 1, 1, 0)
    assert rows(store, 'SELECT email, "firstName" FROM enduser ORDER BY 1') == [
        ("ann@x.com", "Ann"),
        ("bob@y.io", "Robert"),
    ]


def test_emails_that_differ_only_in_case_or_spaces_are_one_duplicate_key(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed_users(harness, ["ann@x.com", "ANN@x.com ", "cy@z.io"])
    result = sync_section(users_section(harness, tmp_path), store, harness.warehouse())
    assert (result.inserted, result.rejected) == (1, 2)
    assert reasons(store)["ann@x.com"] == (
        "duplicate key: column 'email' holds 'ann@x.com' (ignoring case and surrounding spaces) in 2 rows"
    )
    assert rows(store, "SELECT email FROM enduser") == [("cy@z.io",)]


def test_email_field_of_a_user_keyed_otherwise_is_stored_lower_case_and_trimmed(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    harness.create_table("crm_users", pa.table({"id": ["u1", "u2"], "mail": [" Ann@X.COM\t", "   "]}))
    sec = users_section(
        harness,
        tmp_path,
        keys={"planhat": "externalId", "warehouse": "id"},
        fields=[{"planhat": "email", "warehouse": "mail"}],
    )
    result = sync_section(sec, store, harness.warehouse())
    assert (result.inserted, result.rejected) == (2, 0)
    # A blank email is no email (null), not a bad one.
    assert rows(store, 'SELECT "externalId", email FROM enduser ORDER BY 1') == [("u1", "ann@x.com"), ("u2", None)]


# --- B: an email that is not an email is rejected ----------------------------------------------------
BAD_EMAILS = ["not-an-email@@", "a b@c.com", "@x.com", "ann@localhost", "ann@x.com@y.com"]


def test_an_email_key_that_is_not_an_email_rejects_its_row_naming_field_and_value(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed_users(harness, [*BAD_EMAILS, "ok@x.io"])
    result = sync_section(users_section(harness, tmp_path), store, harness.warehouse())
    assert (result.inserted, result.rejected) == (1, len(BAD_EMAILS))
    got = reasons(store)
    for bad in BAD_EMAILS:
        assert got[bad.lower()] == (
            f"field email: {bad!r} is not an email address (expected one '@' with text before it, a domain "
            "with a dot after it, and no spaces)"
        )
    assert rows(store, "SELECT email FROM enduser") == [("ok@x.io",)]


def test_an_email_field_that_is_not_an_email_rejects_its_row(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    harness.create_table("crm_users", pa.table({"id": ["u1", "u2"], "mail": ["a b@c.com", "ok@x.io"]}))
    sec = users_section(
        harness,
        tmp_path,
        keys={"planhat": "externalId", "warehouse": "id"},
        fields=[{"planhat": "email", "warehouse": "mail"}],
    )
    result = sync_section(sec, store, harness.warehouse())
    assert (result.inserted, result.rejected) == (1, 1)
    assert reasons(store)["u1"].startswith("field email: 'a b@c.com' is not an email address")


# --- C: text keys are trimmed on both sides ----------------------------------------------------------
def test_text_keys_and_company_references_are_matched_trimmed(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    harness.create_table("crm_companies", pa.table({"id": [" C-1 ", "c2", " c3", "c3"], "name": ["A", "B", "C", "C"]}))
    harness.create_table(
        "crm_licenses",
        pa.table({"id": ["l1 "], "company_ref": ["C-1  "], "from_date": ["2020-01-01"]}),
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
            ],
        ),
    )
    wh = harness.warehouse()
    first = sync_section(comp, store, wh)
    assert (first.inserted, first.rejected) == (2, 2)  # ' c3' and 'c3' are one key twice
    assert rows(store, 'SELECT "externalId" FROM company ORDER BY 1') == [("C-1",), ("c2",)]
    assert set(reasons(store, "companies")) == {"c3"}
    assert (sync_section(lic, store, wh).inserted, store.open_rejects("licenses")) == (1, [])
    c1 = rows(store, "SELECT id FROM company WHERE \"externalId\" = 'C-1'")[0][0]
    assert rows(store, 'SELECT "externalId", "companyId" FROM license') == [("l1", c1)]
    # The warehouse trims its key: still the same company.
    harness.create_table("crm_companies", pa.table({"id": ["C-1", "c2"], "name": ["A", "B"]}))
    again = sync_section(comp, store, wh)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert store.count("company") == 2


def test_send_updates_the_warehouse_row_whose_key_is_padded_instead_of_adding_one(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    harness.create_table(
        "crm_companies",
        pa.table({"id": [" C-1 ", "c2"], "name": ["A", "B"], "phase": pa.array([None, None], pa.string())}),
    )
    sec = section(
        harness,
        tmp_path,
        model="company",
        table="crm_companies",
        direction="both",
        keys={"planhat": "externalId", "warehouse": "id"},
        fields=[
            {"planhat": "name", "warehouse": "name"},
            {"planhat": "phase", "warehouse": "phase", "direction": "send"},
        ],
    )
    wh = harness.warehouse()
    first = sync_section(sec, store, wh)
    assert (first.inserted, first.sent) == (2, 0)
    store.con.execute("UPDATE company SET phase = 'live' WHERE \"externalId\" = 'C-1'")
    assert sync_section(sec, store, wh).sent == 1
    assert sorted(harness.fetch("SELECT id, name, phase FROM crm_companies")) == [
        (" C-1 ", "A", "live"),
        ("c2", "B", None),
    ]


def test_end_user_emails_send_back_to_the_row_spelled_the_warehouse_way(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed_users(harness, ["Ann@X.com "], ["Ann"], position=pa.array([None], pa.string()))
    sec = users_section(
        harness,
        tmp_path,
        direction="both",
        fields=[
            {"planhat": "firstName", "warehouse": "first_name"},
            {"planhat": "position", "warehouse": "position", "direction": "send"},
        ],
    )
    wh = harness.warehouse()
    assert sync_section(sec, store, wh).sent == 0
    store.con.execute("UPDATE enduser SET position = 'CFO'")
    assert sync_section(sec, store, wh).sent == 1
    assert harness.fetch("SELECT email, first_name, position FROM crm_users") == [("Ann@X.com ", "Ann", "CFO")]


def test_keys_an_older_store_kept_padded_or_mixed_case_are_normalised_so_the_next_sync_matches_them(
    duckdb_harness: DuckDBHarness, tmp_path: Path
) -> None:
    # An earlier release's single-file store, holding what the old rules stored: the warehouse's spelling.
    # Two records that normalise to one key are left as they are (neither can take the key unambiguously).
    old = _single_file_store(tmp_path / "planhat.duckdb")
    old.execute(
        "INSERT INTO enduser (id, email, \"firstName\") VALUES ('u1', 'Ann@X.com ', 'Ann'), "
        "('u2', 'Bo@y.io', 'Bo'), ('u3', 'bo@y.io ', 'Bo too')"
    )
    old.execute("INSERT INTO company (id, \"externalId\", name) VALUES ('c1', ' C-1 ', 'A')")
    old.close()
    path = tmp_path / "store.sqlite"
    migrate_store(tmp_path / "planhat.duckdb", StoreLocation.of_file(path))
    with ModelStore(path) as store:
        assert rows(store, "SELECT id, email FROM enduser ORDER BY id") == [
            ("u1", "ann@x.com"),
            ("u2", "Bo@y.io"),
            ("u3", "bo@y.io "),
        ]
        assert rows(store, 'SELECT "externalId" FROM company') == [("C-1",)]
        seed_users(duckdb_harness, ["Ann@X.com "], ["Ann"])
        result = sync_section(users_section(duckdb_harness, tmp_path), store, duckdb_harness.warehouse())
        assert (result.inserted, result.unchanged) == (0, 1)  # the same End User, not a second one
        assert migrate(store.con) == []  # the two colliding emails are not a change to apply each time


def _single_file_store(path: Path) -> duckdb.DuckDBPyConnection:
    """A store file as an earlier release left it: every table in one DuckDB file."""
    con = duckdb.connect(str(path))
    for ddl in (*(model_table_ddl(m) for m in MODELS.values()), *SYSTEM_TABLES):
        con.execute(ddl)
    return con


# --- D: NaN, infinities and out-of-range numbers -----------------------------------------------------
def license_section(duckdb_harness: DuckDBHarness, tmp_path: Path, fields: list[dict[str, Any]]) -> CrmSection:
    return section(
        duckdb_harness,
        tmp_path,
        model="license",
        table="crm_licenses",
        direction="receive",
        keys={"planhat": "externalId", "warehouse": "id"},
        company_match="externalId",
        fields=[
            {"planhat": "companyId", "warehouse": "company_ref"},
            {"planhat": "fromDate", "warehouse": "from_date"},
            *fields,
        ],
    )


def seed_company(store: ModelStore, external_id: str = "c1") -> str:
    store.upsert_arrow("company", pa.table({"externalId": [external_id], "name": ["Acme"]}), "externalId")
    return str(rows(store, f"SELECT id FROM company WHERE \"externalId\" = '{external_id}'")[0][0])


def test_non_finite_and_out_of_range_numbers_are_rejected_naming_the_field(
    duckdb_harness: DuckDBHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed_company(store)
    texts = ["1e400", "nan", "inf", "-inf", "-Infinity", "1e40", "12.5"]
    duckdb_harness.create_table(
        "crm_licenses",
        pa.table(
            {
                "id": [f"t{i}" for i in range(len(texts))],
                "company_ref": ["c1"] * len(texts),
                "from_date": ["2020-01-01"] * len(texts),
                "mrr": texts,
            }
        ),
    )
    result = sync_section(
        license_section(duckdb_harness, tmp_path, [{"planhat": "mrr", "warehouse": "mrr"}]),
        store,
        duckdb_harness.warehouse(),
    )
    assert (result.inserted, result.rejected) == (1, 6)
    got = reasons(store)
    digits = "money holds at most 32 digits before the decimal point"
    assert got["t0"] == f"field mrr: '1e400' is out of range ({digits})"
    assert got["t1"] == "field mrr: 'nan' is NaN (not a number)"
    assert got["t2"] == "field mrr: 'inf' is infinite (only finite numbers are accepted)"
    assert got["t3"] == "field mrr: '-inf' is infinite (only finite numbers are accepted)"
    assert got["t4"] == "field mrr: '-Infinity' is infinite (only finite numbers are accepted)"
    assert got["t5"] == f"field mrr: '1e40' is out of range ({digits})"
    assert rows(store, 'SELECT "externalId", mrr FROM license') == [("t6", Decimal("12.5"))]
    assert rows(store, "SELECT mrr, arr FROM company") == [(Decimal("12.5"), Decimal("150"))]


def test_double_nan_and_infinity_are_rejected(duckdb_harness: DuckDBHarness, tmp_path: Path, store: ModelStore) -> None:
    seed_company(store)
    duckdb_harness.execute(
        "CREATE TABLE crm_licenses AS SELECT * FROM (VALUES ('d1', 'c1', '2020-01-01', 'nan'::DOUBLE), "
        "('d2', 'c1', '2020-01-01', 'inf'::DOUBLE), ('d3', 'c1', '2020-01-01', '-inf'::DOUBLE), "
        "('d4', 'c1', '2020-01-01', 1e300::DOUBLE), ('d5', 'c1', '2020-01-01', 99.5::DOUBLE)) "
        "AS t(id, company_ref, from_date, arr)"
    )
    result = sync_section(
        license_section(duckdb_harness, tmp_path, [{"planhat": "arr", "warehouse": "arr"}]),
        store,
        duckdb_harness.warehouse(),
    )
    assert (result.inserted, result.rejected) == (1, 4)
    got = reasons(store)
    assert got["d1"] == "field arr: 'nan' is NaN (not a number)"
    assert got["d2"] == "field arr: 'inf' is infinite (only finite numbers are accepted)"
    assert got["d3"] == "field arr: '-inf' is infinite (only finite numbers are accepted)"
    assert got["d4"].startswith("field arr: '1e+300' is out of range")
    company = rows(store, "SELECT mrr, arr FROM company")[0]
    assert company == (Decimal("8.291667"), Decimal("99.5"))


def test_a_non_finite_custom_number_is_rejected(
    duckdb_harness: DuckDBHarness, tmp_path: Path, store: ModelStore
) -> None:
    duckdb_harness.execute(
        "CREATE TABLE crm_companies AS SELECT * FROM (VALUES ('c1', 'nan'::DOUBLE), ('c2', 'inf'::DOUBLE), "
        "('c3', 2.5::DOUBLE)) AS t(id, score)"
    )
    sec = section(
        duckdb_harness,
        tmp_path,
        model="company",
        table="crm_companies",
        direction="receive",
        keys={"planhat": "externalId", "warehouse": "id"},
        fields=[{"planhat": "custom.score", "warehouse": "score"}],
    )
    result = sync_section(sec, store, duckdb_harness.warehouse())
    assert (result.inserted, result.rejected) == (1, 2)
    assert reasons(store)["c1"] == "field custom.score: 'nan' is NaN (not a number)"
    assert reasons(store)["c2"] == "field custom.score: 'inf' is infinite (only finite numbers are accepted)"
    assert json.loads(rows(store, "SELECT CAST(custom AS VARCHAR) FROM company")[0][0]) == {"score": 2.5}


# --- E: money is DECIMAL ------------------------------------------------------------------------------
def test_money_fields_are_decimal_in_the_store(store: ModelStore) -> None:
    types = dict(
        rows(
            store,
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main'",
        )
    )
    money = [f"{slug}.{f.name}" for slug, m in MODELS.items() for f in m.fields if f.type is FieldType.MONEY]
    assert len(money) == 11
    assert {types[name] for name in money} == {"DECIMAL(38,6)"}


def test_derived_arr_and_mrr_are_exact_decimal_sums(
    duckdb_harness: DuckDBHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed_company(store, "c1")
    seed_company(store, "c2")
    arrs = [Decimal("100000.10"), Decimal("200000.00"), Decimal("44983.10"), Decimal("1000.50")]
    duckdb_harness.create_table(
        "crm_licenses",
        pa.table(
            {
                "id": ["l1", "l2", "l3", "l4"],
                "company_ref": ["c1", "c1", "c1", "c2"],
                "from_date": ["2020-01-01"] * 4,
                # NUMERIC(12,2) in the warehouse, as an accounting system keeps it.
                "arr": pa.array(arrs, pa.decimal128(12, 2)),
            }
        ),
    )
    sec = license_section(duckdb_harness, tmp_path, [{"planhat": "arr", "warehouse": "arr"}])
    assert sync_section(sec, store, duckdb_harness.warehouse()).inserted == 4
    assert rows(store, 'SELECT arr FROM license ORDER BY "externalId"') == [(a,) for a in arrs]
    got = {k: (mrr, arr) for k, mrr, arr in rows(store, 'SELECT "externalId", mrr, arr FROM company')}
    # As DOUBLE this sum was 344983.19999999995, and its MRR 28748.599999999995.
    assert [str(v) for v in got["c1"]] == ["28748.600000", "344983.200000"]
    assert [str(v) for v in got["c2"]] == ["83.375000", "1000.500000"]


def test_derived_mrr_divides_large_and_negative_arr_exactly(store: ModelStore) -> None:
    big, credit = seed_company(store, "c1"), seed_company(store, "c2")
    store.upsert_arrow(
        "license",
        pa.table(
            {
                "externalId": ["big", "small", "credit"],
                "companyId": [big, big, credit],
                "fromDate": [date(2020, 1, 1)] * 3,
                "arr": pa.array(
                    [Decimal("12345678901234567890123.450006"), Decimal("0.000001"), Decimal("-1000.50")],
                    pa.decimal128(38, 6),
                ),
            }
        ),
        "externalId",
    )
    store.refresh_company_fields()
    got = {k: (mrr, arr) for k, mrr, arr in rows(store, 'SELECT "externalId", mrr, arr FROM company')}
    total = Decimal("12345678901234567890123.450007")
    with localcontext() as ctx:
        ctx.prec = 60
        expected = (total / 12).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    assert got["c1"] == (expected, total)
    assert str(expected) == "1028806575102880657510.287501"
    assert got["c2"] == (Decimal("-83.375"), Decimal("-1000.5"))


def test_store_with_double_money_columns_migrates_to_decimal_keeping_rows(tmp_path: Path) -> None:
    con = _single_file_store(tmp_path / "planhat.duckdb")
    con.execute("INSERT INTO company (id, \"externalId\", name) VALUES ('c1', 'c1', 'Acme')")
    # The old layout: money as DOUBLE, including a value an old sync let in.
    for column in ("mrr", "arr", "value"):
        con.execute(f"ALTER TABLE license ALTER COLUMN {column} TYPE DOUBLE")
    con.execute("ALTER TABLE company ALTER COLUMN mrr TYPE DOUBLE")
    con.execute(
        "INSERT INTO license (id, \"externalId\", mrr, arr) VALUES ('a', 'l1', 100.1, NULL), ('b', 'l2', 'inf', 2.25)"
    )
    con.close()
    path = tmp_path / "store.sqlite"
    migrate_store(tmp_path / "planhat.duckdb", StoreLocation.of_file(path))
    with ModelStore(path) as store:
        types = dict(
            rows(
                store,
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                "WHERE table_name IN ('license', 'company') AND column_name IN ('mrr', 'arr', 'value')",
            )
        )
        assert set(types.values()) == {"DECIMAL(38,6)"}
        assert rows(store, 'SELECT "externalId", mrr, arr FROM license ORDER BY 1') == [
            ("l1", Decimal("100.1"), None),
            ("l2", None, Decimal("2.25")),  # a non-finite DOUBLE cannot be money: it becomes null
        ]
        assert store.count("company") == 1
        assert migrate(store.con) == []  # nothing left to change


def test_money_is_sent_exactly_to_a_decimal_column(
    duckdb_harness: DuckDBHarness, tmp_path: Path, store: ModelStore
) -> None:
    cid = seed_company(store)
    store.upsert_arrow(
        "license",
        pa.table(
            {
                "externalId": ["l1", "l2"],
                "companyId": [cid, cid],
                "arr": pa.array([Decimal("1234567890123456.78"), Decimal("0.10")], pa.decimal128(38, 6)),
            }
        ),
        "externalId",
    )
    duckdb_harness.execute("CREATE TABLE crm_licenses_out (id VARCHAR, arr DECIMAL(20, 2), arr_f DOUBLE)")
    sec = section(
        duckdb_harness,
        tmp_path,
        model="license",
        table="crm_licenses_out",
        direction="send",
        keys={"planhat": "externalId", "warehouse": "id"},
        fields=[{"planhat": "arr", "warehouse": "arr"}, {"planhat": "arr", "warehouse": "arr_f"}],
    )
    wh = duckdb_harness.warehouse()
    assert sync_section(sec, store, wh).sent == 2
    assert sorted(duckdb_harness.fetch("SELECT id, arr, arr_f FROM crm_licenses_out")) == [
        ("l1", Decimal("1234567890123456.78"), 1234567890123456.78),
        ("l2", Decimal("0.10"), 0.1),
    ]
    assert sync_section(sec, store, wh).sent == 0  # compared exactly: nothing differs


def test_money_round_trips_exactly_through_every_warehouse_decimal_column(
    harness: WarehouseHarness, tmp_path: Path, store: ModelStore
) -> None:
    """Receive from and send to a NUMERIC(20,2) column on DuckDB, BigQuery and Snowflake: no float on the way."""
    cid = seed_company(store)
    amounts = [Decimal("1234567890123456.78"), Decimal("0.10")]
    harness.create_table(
        "crm_licenses",
        pa.table(
            {
                "id": ["l1", "l2"],
                "company_ref": ["c1", "c1"],
                "from_date": ["2020-01-01"] * 2,
                "arr": pa.array(amounts, pa.decimal128(20, 2)),
                "mrr": pa.array([None, None], pa.decimal128(20, 2)),
            }
        ),
    )
    sec = section(
        harness,
        tmp_path,
        model="license",
        table="crm_licenses",
        direction="both",
        keys={"planhat": "externalId", "warehouse": "id"},
        company_match="externalId",
        fields=[
            {"planhat": "companyId", "warehouse": "company_ref"},
            {"planhat": "fromDate", "warehouse": "from_date"},
            {"planhat": "arr", "warehouse": "arr", "direction": "receive"},
            {"planhat": "mrr", "warehouse": "mrr", "direction": "send"},
        ],
    )
    wh = harness.warehouse()
    store.upsert_arrow("license", pa.table({"externalId": ["l1", "l2"], "companyId": [cid, cid]}), "externalId")
    first = sync_section(sec, store, wh)
    assert rows(store, 'SELECT arr FROM license ORDER BY "externalId"') == [(a,) for a in amounts]
    store.con.execute("UPDATE license SET mrr = arr")
    second = sync_section(sec, store, wh)
    assert (first.sent, second.sent) == (0, 2)
    got = sorted(harness.fetch("SELECT id, mrr FROM crm_licenses"))
    assert [(k, Decimal(str(v))) for k, v in got] == [("l1", amounts[0]), ("l2", amounts[1])]
    assert sync_section(sec, store, wh).sent == 0  # compared exactly: nothing differs


# --- G: planhat: custom from a text column holding JSON ----------------------------------------------
def test_custom_from_a_text_column_holding_json_objects(
    duckdb_harness: DuckDBHarness, tmp_path: Path, store: ModelStore
) -> None:
    duckdb_harness.execute(
        "CREATE TABLE crm_companies (id VARCHAR, attributes TEXT); INSERT INTO crm_companies VALUES "
        '(\'c1\', \'{"tier": "gold"}\'), (\'c2\', \'{"tier": "silver", "plan": {"seats": 5}}\'), '
        "('c3', 'not json'), ('c4', '[1, 2]'), ('c5', NULL)"
    )
    sec = section(
        duckdb_harness,
        tmp_path,
        model="company",
        table="crm_companies",
        direction="receive",
        keys={"planhat": "externalId", "warehouse": "id"},
        fields=[{"planhat": "custom", "warehouse": "attributes"}],
    )
    result = sync_section(sec, store, duckdb_harness.warehouse())
    assert (result.inserted, result.rejected) == (3, 2)
    custom = {k: json.loads(v) for k, v in rows(store, 'SELECT "externalId", CAST(custom AS VARCHAR) FROM company')}
    assert custom == {"c1": {"tier": "gold"}, "c2": {"tier": "silver", "plan": {"seats": 5}}, "c5": {}}
    got = reasons(store)
    assert got["c3"] == "field custom: column 'attributes' does not hold valid JSON"
    assert (
        got["c4"] == "field custom: column 'attributes' holds array, not a JSON object whose keys become custom fields"
    )
