"""Refuse a key result's SQL before it reaches the warehouse unless it is one read-only query.

The check parses with sqlglot in the connection's dialect (``Warehouse.capabilities.dialect``). It
is a guard against mistakes (a pasted ``DELETE``, two statements), not a sandbox: the connection's
own grants remain the real protection, so give OKR connections a read-only role.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from planhat_pipelines.config import KeyResult
from planhat_pipelines.errors import OkrQueryError

#: Nodes that write, change schema, change session state or run opaque commands. Refused anywhere
#: in the tree, so ``WITH x AS (DELETE ... RETURNING *) SELECT ...`` and ``SELECT ... INTO t`` fail.
_FORBIDDEN: tuple[type[exp.Expr], ...] = (
    exp.DML,  # INSERT, UPDATE, DELETE, MERGE, COPY
    exp.DDL,  # CREATE, INSERT (also DDL in sqlglot)
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Into,
    exp.Command,  # anything sqlglot does not understand: CALL, EXPLAIN, ...
    exp.Pragma,
    exp.Attach,
    exp.Detach,
    exp.Set,
    exp.Use,
    exp.Grant,
    exp.Revoke,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Cache,
    exp.Uncache,
    exp.Refresh,
    exp.LoadData,
    exp.Install,
    exp.Analyze,
)

_NAMES = {"into": "SELECT ... INTO", "truncatetable": "TRUNCATE", "loaddata": "LOAD DATA"}

_FIX = "write one read-only SELECT (WITH ... SELECT and UNION are fine) that returns a single number"


def _refuse(kr: KeyResult, problem: str, fix: str = _FIX) -> OkrQueryError:
    return OkrQueryError(
        f"key result '{kr.name}' (objective '{kr.objective}', connection '{kr.connection}'), field 'query': "
        f"{problem}. Fix: {fix}"
    )


def _statement_name(node: exp.Expr) -> str:
    """A short name for a statement, e.g. INSERT or DROP, for messages."""
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return _NAMES.get(node.key, node.key.upper())


def check_query(kr: KeyResult, dialect: str) -> exp.Query:
    """Parse ``kr.query`` in ``dialect`` and require exactly one read-only SELECT.

    Allowed: ``SELECT``, ``WITH ... SELECT``, set operations (``UNION``, ``INTERSECT``, ``EXCEPT``)
    and a parenthesised query. A trailing semicolon is fine.

    Args:
        kr: The key result whose ``query`` to check; its name goes into every message.
        dialect: The sqlglot dialect of the connection (``duckdb``, ``bigquery``, ``snowflake``).

    Returns:
        The parsed query.

    Raises:
        OkrQueryError: The SQL cannot be parsed, is empty, holds more than one statement, or is
            (or contains) anything but a read-only query. The message names the key result, the
            offending statement and the fix.
    """
    try:
        statements = [s for s in sqlglot.parse(kr.query, read=dialect) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        what = first.get("description") or str(exc).splitlines()[0]
        raise _refuse(kr, f"is not valid {dialect} SQL ({what}{where})") from exc
    except SqlglotError as exc:
        raise _refuse(kr, f"is not valid {dialect} SQL ({str(exc).splitlines()[0]})") from exc
    if not statements:
        raise _refuse(kr, "is empty")
    if len(statements) > 1:
        names = ", ".join(_statement_name(s) for s in statements)
        raise _refuse(
            kr,
            f"holds {len(statements)} statements ({names}); only one is allowed",
            "keep a single SELECT and remove the others (and the ';' between them)",
        )
    statement = statements[0]
    for node in statement.walk():
        if isinstance(node, _FORBIDDEN):
            raise _refuse(kr, f"contains {_statement_name(node)}, which is not read-only")
    if not isinstance(statement, exp.Query):
        begins = " ".join(kr.query.split())[:40]
        raise _refuse(kr, f"is not a SELECT query (sqlglot reads '{begins}' as {_statement_name(statement)})")
    return statement
