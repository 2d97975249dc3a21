"""Identifier and string-literal quoting for every SQL dialect the project writes, in one place.

Quoting is sqlglot's (``exp.to_identifier`` / ``exp.Literal.string``), so each dialect escapes the way
its parser does: DuckDB doubles quotes, Snowflake and BigQuery escape with a backslash in literals.
The dialect names are sqlglot's: ``duckdb`` (the store and the DuckDB warehouse), ``snowflake``,
``bigquery``.
"""

from __future__ import annotations

from sqlglot import exp


def quote_identifier(name: str, dialect: str = "duckdb") -> str:
    """One identifier part, quoted so that its case and any character in it survive.

    Raises:
        ValueError: a BigQuery name holds a backtick or backslash (BigQuery's escapes for them
            differ from sqlglot's, so such a name is refused rather than quoted wrongly).
    """
    if dialect == "bigquery" and ("`" in name or "\\" in name):
        raise ValueError(f"identifier {name!r} contains a backtick or backslash")
    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)


def quote_qualified(name: str, dialect: str = "duckdb") -> str:
    """A dotted name (``schema.table``), each part quoted with :func:`quote_identifier`."""
    return ".".join(quote_identifier(part, dialect) for part in name.split("."))


def quote_literal(text: str, dialect: str = "duckdb") -> str:
    """``text`` as a SQL string literal of the dialect."""
    return exp.Literal.string(text).sql(dialect=dialect)
