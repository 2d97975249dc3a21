"""``planhat-pipelines check``: test a config against its real warehouses before anything runs.

The "test connection" button of reverse-ETL tools, for the whole config at once. Pure core (no
Dagster). One line per item, in config order:

- every connection: opened and probed (:func:`~planhat_pipelines.health.check_connection`), so a
  failure carries the client's own error and the fix;
- every CRM section: its table or view exists; the key column and every mapped column exist; each
  column's type can hold its field; the key column is text; a section that sends targets a table;
- every usage section: its table exists; the key and mapped columns exist; the key is numeric (a
  text key is reported when the sync reads it through a cast, refused when the sync refuses it);
- every OKR key result: its SQL passes :func:`~planhat_pipelines.okrs.sql_check.check_query` and
  runs, returning one number.

Nothing is written anywhere: a DuckDB warehouse is opened read-only, and a missing DuckDB file of a
``create: true`` connection is reported, not created.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from planhat_pipelines.config import (
    Config,
    ConnectionConfig,
    CrmSection,
    DuckDBSettings,
    FieldMapping,
    KeyResult,
    UsageSection,
    load_config,
)
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.health import check_connection
from planhat_pipelines.okrs.refresh import single_number
from planhat_pipelines.okrs.sql_check import check_query
from planhat_pipelines.sync.usage import check_source
from planhat_pipelines.warehouses.base import Column, ColumnKind, TableInfo, Warehouse
from planhat_pipelines.warehouses.factory import open_warehouse

_FIX = ". Fix: "
_SCALARS = frozenset(
    {
        ColumnKind.TEXT,
        ColumnKind.INTEGER,
        ColumnKind.DECIMAL,
        ColumnKind.FLOAT,
        ColumnKind.BOOLEAN,
        ColumnKind.DATE,
        ColumnKind.TIMESTAMP,
    }
)
_NUMERIC = frozenset({ColumnKind.INTEGER, ColumnKind.DECIMAL, ColumnKind.FLOAT, ColumnKind.TEXT})
#: Column kinds a standard field can be read from and written to, by the field type's name. Text always
#: converts (row by row: a value that does not convert rejects its row), so it is usable for every type;
#: what can never convert (a date into a number, a type the adapters do not know) fails the check. A
#: field type missing here is not judged (any known kind passes).
USABLE_KINDS: dict[str, frozenset[ColumnKind]] = {
    "text": _SCALARS | {ColumnKind.JSON},
    "email": frozenset({ColumnKind.TEXT}),
    "number": _NUMERIC,
    "integer": _NUMERIC,
    "money": _NUMERIC,
    "boolean": frozenset({ColumnKind.BOOLEAN, ColumnKind.INTEGER, ColumnKind.TEXT}),
    "date": frozenset({ColumnKind.DATE, ColumnKind.TIMESTAMP, ColumnKind.TEXT}),
    "datetime": frozenset({ColumnKind.TIMESTAMP, ColumnKind.DATE, ColumnKind.TEXT}),
    "json": frozenset({ColumnKind.JSON, ColumnKind.TEXT}),
}
#: Columns a JSON path, or a whole-object ``custom`` mapping, reads from.
_JSON_KINDS = frozenset({ColumnKind.JSON, ColumnKind.TEXT})
_USAGE_KEY_KINDS = frozenset({ColumnKind.INTEGER, ColumnKind.DECIMAL, ColumnKind.FLOAT})


@dataclass(frozen=True)
class CheckResult:
    """The outcome for one item of the config.

    Attributes:
        item: ``connection <name>``, ``crm/<section>``, ``usage/<section>`` or ``okrs/<key result>``.
        ok: Whether a run of it can start.
        detail: For a failure, every problem with its fix; for a success, a note or ''.
    """

    item: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        """``ok   <item>[: note]`` or ``FAIL <item>: <problem>. Fix: <fix>``."""
        # One line per item, even when a client's message spans several.
        detail = " ".join(self.detail.split())
        if self.ok:
            return f"ok   {self.item}" + (f": {detail}" if detail else "")
        return f"FAIL {self.item}: {detail}"


def _problem(text: str, fix: str) -> str:
    return f"{text}{_FIX}{fix}"


def _error_text(exc: BaseException) -> str:
    """An exception as 'problem. Fix: fix', keeping the warehouse client's own words when it chained them."""
    text = str(exc).strip() or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        own = str(cause).strip().splitlines()[0]
        if own not in text:
            problem, sep, fix = text.rpartition(_FIX)
            text = f"{problem} [{type(cause).__name__}: {own}]{sep}{fix}" if sep else f"{text} [{own}]"
    if isinstance(exc, PlanhatPipelinesError) and _FIX in text:
        return text
    return _problem(f"{type(exc).__name__}: {text}", "check the connection, the table name and the role's grants")


def _what(info: TableInfo) -> str:
    return f"{'view' if info.is_view else 'table'} '{info.name}'"


def _find(info: TableInfo, name: str) -> Column | None:
    # Case-insensitive, as TableInfo.column (Snowflake stores unquoted names upper-cased).
    for col in info.columns:
        if col.name == name or col.name.lower() == name.lower():
            return col
    return None


def _missing_columns(info: TableInfo, names: Sequence[str]) -> list[str]:
    missing = [n for n in dict.fromkeys(names) if _find(info, n) is None]
    if not missing:
        return []
    listed = ", ".join(f"'{n}'" for n in missing)
    return [
        _problem(
            f"{_what(info)} has no column {listed}",
            f"map existing columns (it has: {', '.join(c.name for c in info.columns) or 'none'}) or add the column",
        )
    ]


def _field_type_problem(section: CrmSection, fm: FieldMapping, col: Column, info: TableInfo) -> str | None:
    """Why ``col`` cannot hold the mapped field, or None when it can."""
    if fm.path or (fm.planhat == "custom" and fm.direction.receives):
        allowed, what = _JSON_KINDS, "a JSON object" if not fm.path else f"JSON to pick '{fm.path}' from"
    elif fm.is_custom:
        allowed, what = _SCALARS | {ColumnKind.JSON}, f"custom field '{fm.planhat}'"
    else:
        spec = section.model.field(fm.planhat)
        if spec is None:  # the config refuses unknown fields; nothing to judge here
            return None
        allowed = USABLE_KINDS.get(spec.type.value, _SCALARS | {ColumnKind.JSON})
        if fm.direction.sends and spec.type.value == "text":
            allowed = allowed - {ColumnKind.JSON}  # plain text is not valid JSON to write
        what = f"{section.model.name}.{fm.planhat} ({spec.type.value})"
    if col.kind in allowed:
        return None
    kinds = ", ".join(sorted(k.value for k in allowed))
    return _problem(
        f"column '{col.name}' of {_what(info)} is {col.type}, which cannot hold {what}",
        f"map a column of kind {kinds}, or cast it in a view",
    )


def crm_problems(section: CrmSection, warehouse: Warehouse) -> tuple[list[str], str]:
    """Every reason ``section`` cannot run against ``warehouse`` (empty when it can), and a note.

    Raises:
        Exception: Whatever describing the table raised (the caller reports it in the warehouse's words).
    """
    info = warehouse.describe(section.table)
    problems = _missing_columns(info, [section.warehouse_key, *(f.warehouse for f in section.fields)])
    key = _find(info, section.warehouse_key)
    if key is not None and key.kind is not ColumnKind.TEXT:
        problems.append(
            _problem(
                f"key column '{key.name}' of {_what(info)} is {key.type}, but keys must be text",
                f"cast it in a view (SELECT CAST({key.name} AS STRING) AS {key.name}, ...) and point the "
                "section's table at that view",
            )
        )
    if section.direction.sends and info.is_view and not warehouse.capabilities.views_writable:
        problems.append(
            _problem(
                f"{_what(info)} is read-only, so direction '{section.direction.value}' cannot send to it",
                "point the section at a table, or set its direction to 'receive'",
            )
        )
    for fm in section.fields:
        col = _find(info, fm.warehouse)
        if col is not None and (problem := _field_type_problem(section, fm, col, info)):
            problems.append(problem)
    return problems, f"{_what(info)}, {len(section.fields)} field(s)"


def usage_problems(section: UsageSection, warehouse: Warehouse) -> tuple[list[str], str]:
    """Every reason ``section`` cannot run against ``warehouse`` (empty when it can), and a note.

    Whether a key column type is acceptable is the usage sync's own rule
    (:func:`~planhat_pipelines.sync.usage.check_source`), so the check cannot drift from the run.

    Raises:
        Exception: Whatever describing the table raised (the caller reports it in the warehouse's words).
    """
    info = warehouse.describe(section.table)
    problems = _missing_columns(info, [section.key, *section.fields.values()])
    note = f"{_what(info)}"
    key = _find(info, section.key)
    if problems or key is None:
        return problems, note
    try:
        check_source(section, warehouse)
    except PlanhatPipelinesError as exc:
        return [_error_text(exc)], note
    if key.kind not in _USAGE_KEY_KINDS:
        note += f", key '{key.name}' is {key.kind.value} ({key.type}): values will be cast"
    return [], note


def key_result_value(kr: KeyResult, warehouse: Warehouse) -> float:
    """Check a key result's SQL and run it; the one number it returns.

    Raises:
        OkrQueryError: The SQL was refused or did not return one number.
        Exception: Whatever the warehouse raised running it.
    """
    check_query(kr, warehouse.capabilities.dialect)
    table = warehouse.query(kr.query, timeout_seconds=kr.timeout_seconds, max_bytes_billed=kr.max_bytes_billed)
    return single_number(kr, table)


def _okr_problems(kr: KeyResult, warehouse: Warehouse) -> tuple[list[str], str]:
    return [], f"returned {key_result_value(kr, warehouse):g}"


#: A check of one item against an open warehouse: (problems, note for a success).
_Check = Callable[[Warehouse], tuple[list[str], str]]


def _items(config: Config, name: str) -> list[tuple[str, _Check]]:
    """The config's checks that use connection ``name``, in config order, each as (item, check)."""
    checks: list[tuple[str, _Check]] = []
    checks += [(f"crm/{s.name}", partial(crm_problems, s)) for s in config.crm if s.connection == name]
    checks += [(f"usage/{s.name}", partial(usage_problems, s)) for s in config.usage if s.connection == name]
    checks += [(f"okrs/{k.name}", partial(_okr_problems, k)) for k in config.key_results if k.connection == name]
    return checks


def _run(item: str, check: _Check, warehouse: Warehouse) -> CheckResult:
    try:
        problems, note = check(warehouse)
    except Exception as exc:  # a preflight reports every failure; it must not stop at the first
        return CheckResult(item, False, _error_text(exc))
    return CheckResult(item, not problems, "; ".join(problems) if problems else note)


def check_connection_items(config: Config, connection: ConnectionConfig, now: datetime) -> list[CheckResult]:
    """The connection's own line, then one line per section and key result that uses it."""
    items = _items(config, connection.name)
    settings = connection.settings
    if isinstance(settings, DuckDBSettings) and not settings.path.is_file():
        # Only a create: true connection gets here (load_config refuses the rest); opening it would
        # create the file, and a check writes nothing.
        absent = f"the warehouse file {settings.path} does not exist yet"
        results = [CheckResult(f"connection {connection.name}", True, f"{absent} (create: true)")]
        fix = "fill the warehouse first (`make demo` seeds the demo's), then check again"
        return results + [
            CheckResult(item, False, _problem(f"connection '{connection.name}': {absent}", fix)) for item, _ in items
        ]
    status = check_connection(connection, now)
    if not status.healthy:
        results = [CheckResult(f"connection {connection.name}", False, _problem(status.error or "", status.fix or ""))]
        problem = _problem(f"connection '{connection.name}' failed", "fix the connection first (see its line)")
        return results + [CheckResult(item, False, problem) for item, _ in items]
    note = status.describe().split(": ", 1)[1] if status.status == "expiring" else ""
    results = [CheckResult(f"connection {connection.name}", True, note)]
    try:
        warehouse = open_warehouse(connection)
    except Exception as exc:  # the probe worked but opening again did not: report it on every item
        return results + [CheckResult(item, False, _error_text(exc)) for item, _ in items]
    try:
        return results + [_run(item, check, warehouse) for item, check in items]
    finally:
        warehouse.close()


def check_config(config: Config, now: datetime | None = None) -> list[CheckResult]:
    """Check every connection, section and key result of ``config`` against its warehouse.

    Args:
        config: The loaded config.
        now: The time the connection probes judge expiry by (default: now, UTC).

    Returns:
        One result per item: each connection followed by the items that use it.
    """
    now = now or datetime.now(UTC)
    results: list[CheckResult] = []
    for connection in config.connections.values():
        results += check_connection_items(config, connection, now)
    return results


def main_check(config: Config, echo: Callable[[str], None] = print, now: datetime | None = None) -> int:
    """Print one line per item of ``config`` and a total; 0 when every item is ok, else 1."""
    results = check_config(config, now)
    for result in results:
        echo(result.line())
    failed = sum(not r.ok for r in results)
    if failed:
        echo(f"{failed} of {len(results)} checks failed: fix them, then run `planhat-pipelines check` again")
        return 1
    echo(f"all {len(results)} checks passed")
    return 0


def _check(args: argparse.Namespace) -> int:
    return main_check(load_config(args.config))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``check`` subcommand to the ``planhat-pipelines`` parser.

    Args:
        subparsers: The main parser's subparsers; the handler receives the parsed args, whose
            ``config`` is the ``--config`` option of the main parser.
    """
    check = subparsers.add_parser(
        "check",
        help="test the config against the real warehouses: connections, tables, columns, key types, OKR queries",
        description="Open every connection and check every CRM section, usage section and OKR key result "
        "against its warehouse, without writing anything. Prints one line per item; exits 1 if any failed.",
    )
    check.set_defaults(handler=_check)


__all__ = ["USABLE_KINDS", "CheckResult", "check_config", "crm_problems", "main_check", "register", "usage_problems"]
