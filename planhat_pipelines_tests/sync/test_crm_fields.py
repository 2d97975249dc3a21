"""The CRM field-to-SQL compiler (``sync/crm/fields.py``) without a warehouse.

Sections come from the real config parser and the table description is built by hand, as a warehouse's
``describe`` returns it. The generated SQL runs in an in-memory DuckDB over a table standing in for the
staged source rows (``r``) and, for relations, a ``company`` table; the tests check the values and
reasons it produces, not its text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from planhat_pipelines.config import CrmSection
from planhat_pipelines.errors import SyncError, WarehouseError
from planhat_pipelines.models.catalog import MONEY_INTEGER_DIGITS
from planhat_pipelines.sync.crm.fields import (
    Plan,
    field_error_sql,
    field_value_sql,
    joins_sql,
    receive_plans,
    store_columns_sql,
    values_sql,
)
from planhat_pipelines.warehouses.base import Column, ColumnKind, TableInfo
from planhat_pipelines_tests.builders import config_doc, crm_section, duckdb_connection, parse

C1, C2, C3 = "a" * 24, "b" * 24, "c" * 24


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect(":memory:")
    yield c
    c.close()


def parsed(tmp_path: Path, section: dict[str, Any]) -> CrmSection:
    """One receive section parsed by the real config parser (the warehouse file is never opened)."""
    connections = {"wh": duckdb_connection(tmp_path / "wh.duckdb", create=True)}
    doc = config_doc(tmp_path, connections=connections, crm=[section])
    return parse(doc, tmp_path, "planhat_pipelines.yaml").crm[0]


def table_info(**kinds: ColumnKind) -> TableInfo:
    """The description of table ``src`` with the ``id`` text key column and ``kinds`` (column -> kind)."""
    columns = [Column("id", "VARCHAR", ColumnKind.TEXT)]
    columns += [Column(name, kind.value.upper(), kind) for name, kind in kinds.items()]
    return TableInfo("wh", "src", tuple(columns), is_view=False)


def compiled(con: duckdb.DuckDBPyConnection, plans: list[Plan]) -> dict[str, dict[str, Any]]:
    """Run the plans over table ``src``: per ``id``, the values ``v<i>``, the ``reason`` and the ``shown`` value."""
    values = values_sql(plans)
    relation = con.sql(
        f"SELECT r.id, {values + ', ' if values else ''}{field_error_sql(plans)} AS reason, "
        f"{field_value_sql(plans)} AS shown FROM src r {joins_sql(plans)}"
    )
    names = relation.columns
    return {row[0]: dict(zip(names[1:], row[1:], strict=True)) for row in relation.fetchall()}


def store_rows(con: duckdb.DuckDBPyConnection, section: CrmSection, plans: list[Plan]) -> dict[str, dict[str, Any]]:
    """The model-table columns :func:`store_columns_sql` builds from the converted rows of ``src``, per key."""
    values = values_sql(plans)
    relation = con.sql(
        f"SELECT {', '.join(store_columns_sql(section, plans))} "
        f"FROM (SELECT r.id AS __key{', ' + values if values else ''} FROM src r {joins_sql(plans)})"
    )
    names = relation.columns
    return {row[0]: dict(zip(names[1:], row[1:], strict=True)) for row in relation.fetchall()}


def license_section(tmp_path: Path, fields: list[dict[str, Any]], **extra: Any) -> CrmSection:
    return parsed(tmp_path, crm_section("s", "src", model="license", fields=fields, **extra))


def company_section(tmp_path: Path, fields: list[dict[str, Any]], **extra: Any) -> CrmSection:
    return parsed(tmp_path, crm_section("s", "src", model="company", fields=fields, **extra))


# --- standard fields --------------------------------------------------------------------------------------
def test_a_money_plan_converts_decimals_and_rejects_nan_infinite_and_huge_text_naming_the_field(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    texts = ["12.5", "1.0000005", "NaN", "inf", "-Infinity", "1e400", "1e40", "abc", "", None]
    con.register("src_rows", pa.table({"id": [f"t{i}" for i in range(len(texts))], "mrr": texts}))
    con.execute("CREATE TABLE src AS SELECT * FROM src_rows")
    section = license_section(tmp_path, [{"planhat": "mrr", "warehouse": "mrr"}])
    plans = receive_plans(section, table_info(mrr=ColumnKind.TEXT))

    got = compiled(con, plans)

    digits = f"money holds at most {MONEY_INTEGER_DIGITS} digits before the decimal point"
    assert {k: (r["v0"], r["reason"]) for k, r in got.items()} == {
        "t0": (Decimal("12.5"), None),
        "t1": (Decimal("1.000001"), None),  # six decimals, rounded half away from zero
        "t2": (None, "field mrr: 'NaN' is NaN (not a number)"),
        "t3": (None, "field mrr: 'inf' is infinite (only finite numbers are accepted)"),
        "t4": (None, "field mrr: '-Infinity' is infinite (only finite numbers are accepted)"),
        "t5": (None, f"field mrr: '1e400' is out of range ({digits})"),
        "t6": (None, f"field mrr: '1e40' is out of range ({digits})"),
        "t7": (None, "field mrr: 'abc' is not a number"),
        "t8": (None, "field mrr: '' is not a number"),
        "t9": (None, None),  # a null is no value, not an error
    }
    # The value recorded with a reject is the offending text itself.
    assert got["t5"]["shown"] == "1e400"


def test_a_double_column_holding_nan_rejects_a_custom_field_but_not_a_finite_value(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    con.execute("CREATE TABLE src AS SELECT * FROM (VALUES ('ok', 2.5::DOUBLE), ('bad', 'nan'::DOUBLE)) t(id, score)")
    section = company_section(tmp_path, [{"planhat": "custom.score", "warehouse": "score"}])
    plans = receive_plans(section, table_info(score=ColumnKind.FLOAT))

    got = compiled(con, plans)

    assert got["ok"]["reason"] is None and json.loads(got["ok"]["v0"]) == 2.5
    assert got["bad"]["reason"] == "field custom.score: 'nan' is NaN (not a number)"


def test_every_bad_field_of_a_row_is_named_and_the_first_ones_value_is_shown(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    con.execute(
        "CREATE TABLE src AS SELECT * FROM (VALUES ('l1', 'soon', 'lots'), ('l2', '2024-02-01', '7')) t(id, d, v)"
    )
    section = license_section(
        tmp_path, [{"planhat": "fromDate", "warehouse": "d"}, {"planhat": "value", "warehouse": "v"}]
    )
    plans = receive_plans(section, table_info(d=ColumnKind.TEXT, v=ColumnKind.TEXT))

    got = compiled(con, plans)

    assert got["l1"]["reason"] == "field fromDate: 'soon' is not a date; field value: 'lots' is not a number"
    assert got["l1"]["shown"] == "soon"
    assert (str(got["l2"]["v0"]), got["l2"]["v1"], got["l2"]["reason"]) == ("2024-02-01", Decimal("7"), None)


def test_the_key_field_gets_no_plan_and_a_field_mapped_twice_is_refused(tmp_path: Path) -> None:
    info = table_info(name=ColumnKind.TEXT, other=ColumnKind.TEXT)
    keyed = company_section(tmp_path, [{"planhat": "externalId", "warehouse": "id"}])
    assert receive_plans(keyed, info) == []

    twice = company_section(
        tmp_path, [{"planhat": "name", "warehouse": "name"}, {"planhat": "name", "warehouse": "other"}]
    )
    with pytest.raises(SyncError, match=r"section 's': field 'name' is mapped twice for receive\. Fix: "):
        receive_plans(twice, info)


def test_a_mapped_column_missing_from_the_table_names_the_table_and_the_columns(tmp_path: Path) -> None:
    section = company_section(tmp_path, [{"planhat": "name", "warehouse": "nmae"}])
    with pytest.raises(WarehouseError, match=r"table 'src'.*has no column 'nmae'.*use one of: id, name"):
        receive_plans(section, table_info(name=ColumnKind.TEXT))


# --- custom fields ----------------------------------------------------------------------------------------
def test_custom_fields_from_a_json_column_pass_through_with_their_json_types(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    con.execute(
        "CREATE TABLE src AS SELECT * FROM (VALUES "
        """('c1', '{"region": "eu", "seats": 10, "tags": ["a"], "tier": "old"}'::JSON, '{"tier": "gold"}'::JSON), """
        "('c2', NULL::JSON, NULL::JSON)) t(id, attrs, plan)"
    )
    section = company_section(
        tmp_path,
        [
            {"planhat": "custom", "warehouse": "attrs"},
            {"planhat": "custom.plan", "warehouse": "plan"},
            {"planhat": "custom.tier", "warehouse": "plan", "path": "tier"},
        ],
    )
    plans = receive_plans(section, table_info(attrs=ColumnKind.JSON, plan=ColumnKind.JSON))

    assert all(r["reason"] is None for r in compiled(con, plans).values())
    custom = {k: json.loads(r["custom"]) for k, r in store_rows(con, section, plans).items()}

    # The object's keys keep their JSON types; a named field wins over the object's key of the same name;
    # a JSON object stays an object; a warehouse null leaves the stored value alone (no entry at all).
    assert custom == {
        "c1": {"region": "eu", "seats": 10, "tags": ["a"], "tier": "gold", "plan": {"tier": "gold"}},
        "c2": {},
    }


def test_null_overwrites_keeps_null_custom_entries(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE src AS SELECT * FROM (VALUES ('c1', NULL::JSON)) t(id, plan)")
    section = company_section(tmp_path, [{"planhat": "custom.plan", "warehouse": "plan"}], null_overwrites=True)
    plans = receive_plans(section, table_info(plan=ColumnKind.JSON))

    assert json.loads(store_rows(con, section, plans)["c1"]["custom"]) == {"plan": None}


def test_a_whole_custom_object_from_text_must_be_a_json_object(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    texts = ['{"a": 1}', "[1, 2]", "not json", "   ", None]
    con.register("src_rows", pa.table({"id": [f"c{i}" for i in range(len(texts))], "attrs": texts}))
    con.execute("CREATE TABLE src AS SELECT * FROM src_rows")
    section = company_section(tmp_path, [{"planhat": "custom", "warehouse": "attrs"}])
    plans = receive_plans(section, table_info(attrs=ColumnKind.TEXT))

    got = compiled(con, plans)

    assert {k: r["reason"] for k, r in got.items()} == {
        "c0": None,
        "c1": "field custom: column 'attrs' holds array, not a JSON object whose keys become custom fields",
        "c2": "field custom: column 'attrs' does not hold valid JSON",
        "c3": None,  # blank text holds nothing
        "c4": None,
    }
    assert json.loads(store_rows(con, section, plans)["c0"]["custom"]) == {"a": 1}


# --- relations --------------------------------------------------------------------------------------------
def test_a_company_reference_joins_the_company_and_names_unknown_and_ambiguous_ones(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    con.execute(
        "CREATE TABLE company AS SELECT * FROM (VALUES (?, 'C-1'), (?, 'C-2'), (?, 'C-2')) t(id, \"externalId\")",
        [C1, C2, C3],
    )
    refs = [" C-1 ", "C-9", "C-2", None]
    con.register("src_rows", pa.table({"id": [f"l{i}" for i in range(len(refs))], "company_ref": refs}))
    con.execute("CREATE TABLE src AS SELECT * FROM src_rows")
    section = license_section(tmp_path, [{"planhat": "companyId", "warehouse": "company_ref"}])
    plans = receive_plans(section, table_info(company_ref=ColumnKind.TEXT))

    got = compiled(con, plans)

    assert {k: r["reason"] for k, r in got.items()} == {
        "l0": None,
        "l1": "field companyId: no company has externalId 'C-9' (sync the companies first, or fix the reference)",
        "l2": "field companyId: externalId 'C-2' matches 2 companies",
        "l3": None,
    }
    assert (got["l0"]["v0"], got["l3"]["v0"]) == (C1, None)  # ' C-1 ' matched exactly after trimming
    assert got["l1"]["shown"] == "C-9"
    # The store keeps the company's native id under the model's field.
    assert store_rows(con, section, plans)["l0"] == {"companyId": C1}


def test_a_parent_arriving_in_the_same_run_is_pending_not_unknown(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    con.execute('CREATE TABLE company (id VARCHAR, "externalId" VARCHAR)')
    con.execute("CREATE TABLE src AS SELECT * FROM (VALUES ('p', NULL), ('k', 'p'), ('o', 'x')) t(id, parent)")
    con.execute("CREATE TABLE __crm_keys AS SELECT id AS __key FROM src")  # this run's usable keys
    section = company_section(tmp_path, [{"planhat": "parentId", "warehouse": "parent"}])
    plans = receive_plans(section, table_info(parent=ColumnKind.TEXT))

    got = compiled(con, plans)

    assert [p.pending is not None for p in plans] == [True]
    assert got["k"]["reason"] is None and got["k"]["v0"].endswith("pending-parent:p")
    assert got["o"]["reason"] == (
        "field parentId: no company has externalId 'x' (sync the companies first, or fix the reference)"
    )
