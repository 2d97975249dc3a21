"""The one quoting utility: what it quotes survives a real parser, and what it cannot quote is refused."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from planhat_pipelines.sql_quoting import quote_identifier, quote_literal, quote_qualified

AWKWARD = ["plain", "camelCase", 'with "quotes"', "it's", "back\\slash", "dotted.name", "ünïcode"]


@pytest.mark.parametrize("name", AWKWARD)
def test_a_duckdb_identifier_and_literal_round_trip_through_duckdb(name: str) -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({quote_identifier(name)} VARCHAR)")
    con.execute(f"INSERT INTO t VALUES ({quote_literal(name)})")
    assert con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 't'").fetchall() == [
        (name,)
    ]
    assert con.execute(f"SELECT {quote_identifier(name)} FROM t").fetchall() == [(name,)]


@pytest.mark.parametrize("dialect", ["snowflake", "bigquery"])
@pytest.mark.parametrize("text", AWKWARD)
def test_a_literal_parses_back_to_the_same_text_in_each_dialect(dialect: str, text: str) -> None:
    parsed = sqlglot.parse_one(f"SELECT {quote_literal(text, dialect)}", read=dialect)
    literal = parsed.find(exp.Literal)
    assert literal is not None and literal.this == text


def test_a_qualified_name_quotes_each_part() -> None:
    assert quote_qualified("main.usage") == '"main"."usage"'
    assert quote_qualified("ds.events", "bigquery") == "`ds`.`events`"
    assert quote_identifier("ds.events", "snowflake") == '"ds.events"'


@pytest.mark.parametrize("name", ["a`b", "a\\b"])
def test_bigquery_refuses_names_it_would_escape_differently(name: str) -> None:
    with pytest.raises(ValueError, match="backtick or backslash"):
        quote_identifier(name, "bigquery")
