"""What the SQL check lets through and what it refuses, in each warehouse's dialect."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from sqlglot import exp

from planhat_pipelines.config import KeyResult
from planhat_pipelines.errors import OkrQueryError
from planhat_pipelines.okrs.sql_check import check_query

KR = KeyResult(
    name="leads",
    objective="grow",
    title="",
    connection="wh",
    query="",
    start_value=0.0,
    target=10.0,
    start_date=date(2026, 1, 1),
    end_date=date(2026, 12, 31),
    direction="increase",
)
DIALECTS = ["duckdb", "bigquery", "snowflake"]


def kr(sql: str) -> KeyResult:
    return replace(KR, query=sql)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM leads",
        "select sum(amount) from deals where stage = 'won';",  # a trailing semicolon is fine
        "WITH won AS (SELECT * FROM deals WHERE stage = 'won') SELECT count(*) FROM won",
        "SELECT count(*) FROM a UNION ALL SELECT count(*) FROM b",
        "SELECT max(n) FROM (SELECT 1 AS n UNION ALL SELECT 2 AS n) AS t",
        "(SELECT 42)",
        "  SELECT 1\n  -- a comment\n",
    ],
)
def test_read_only_queries_pass(sql: str, dialect: str) -> None:
    assert isinstance(check_query(kr(sql), dialect), exp.Query)


def test_dialect_specific_syntax_passes() -> None:
    assert check_query(kr("SELECT COUNT(*) FROM `project.dataset.leads`"), "bigquery")
    assert check_query(kr("SELECT COUNT(*) FROM DB.SCHEMA.LEADS QUALIFY TRUE"), "snowflake")
    assert check_query(kr("SELECT count(*) FROM 'leads.parquet'"), "duckdb")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("INSERT INTO leads VALUES (1)", "INSERT"),
        ("UPDATE leads SET converted = TRUE", "UPDATE"),
        ("DELETE FROM leads", "DELETE"),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "MERGE"),
        ("CREATE TABLE t (a INT)", "CREATE"),
        ("CREATE TABLE t AS SELECT 1 AS a", "CREATE"),
        ("DROP TABLE leads", "DROP"),
        ("ALTER TABLE leads ADD COLUMN x INT", "ALTER"),
        ("TRUNCATE TABLE leads", "TRUNCATE"),
    ],
)
def test_dml_and_ddl_are_refused(sql: str, named: str, dialect: str) -> None:
    with pytest.raises(OkrQueryError) as info:
        check_query(kr(sql), dialect)
    message = str(info.value)
    assert "key result 'leads'" in message
    assert "objective 'grow'" in message
    assert named in message
    assert "Fix: write one read-only SELECT" in message


@pytest.mark.parametrize(
    "sql",
    [
        "WITH gone AS (DELETE FROM leads RETURNING *) SELECT count(*) FROM gone",  # DML hidden in a CTE
        "SELECT 1 INTO new_table",  # SELECT ... INTO creates a table
        "COPY leads TO 'leads.csv'",
        "ATTACH 'other.duckdb'",
        "PRAGMA database_list",
        "SET threads = 1",
        "CALL some_procedure()",
        "EXPLAIN SELECT 1",
    ],
)
def test_other_writes_and_commands_are_refused(sql: str) -> None:
    with pytest.raises(OkrQueryError, match=r"key result 'leads'.*(not read-only|not a SELECT)"):
        check_query(kr(sql), "duckdb")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_two_statements_are_refused(dialect: str) -> None:
    with pytest.raises(OkrQueryError) as info:
        check_query(kr("SELECT 1; SELECT 2"), dialect)
    assert "holds 2 statements (SELECT, SELECT); only one is allowed" in str(info.value)
    assert "Fix: keep a single SELECT" in str(info.value)


def test_a_select_followed_by_a_drop_is_refused() -> None:
    with pytest.raises(OkrQueryError, match=r"holds 2 statements \(SELECT, DROP\)"):
        check_query(kr("SELECT count(*) FROM leads; DROP TABLE leads"), "duckdb")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("sql", ["SELEC count(*) FROM leads", "SELECT * FROM (", "SELECT FROM WHERE"])
def test_unparseable_sql_is_refused(sql: str, dialect: str) -> None:
    with pytest.raises(OkrQueryError, match=rf"key result 'leads'.*is not valid {dialect} SQL .*line 1"):
        check_query(kr(sql), dialect)


def test_garbage_that_parses_as_an_expression_is_refused() -> None:
    with pytest.raises(OkrQueryError, match=r"is not a SELECT query .*'this is garbage'"):
        check_query(kr("this is garbage"), "duckdb")


@pytest.mark.parametrize("sql", ["", "   ", ";", "-- only a comment"])
def test_empty_sql_is_refused(sql: str) -> None:
    with pytest.raises(OkrQueryError, match="is empty"):
        check_query(kr(sql), "duckdb")
