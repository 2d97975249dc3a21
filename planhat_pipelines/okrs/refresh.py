"""Refresh key results from their warehouse queries, record manual check-ins, and switch their mode.

What the current value then is, and the objectives' roll-up, is in :mod:`planhat_pipelines.okrs.current`.

Every refresh and check-in appends one row to the store's ``okr_values`` table, so the table is the
key result's full history (the Dagster asset plots the same numbers as metadata).

What "current" means (the rule the summary and the CLI follow):

* The current value of a key result is its **latest successful row**, whether it came from the
  query (``source = 'query'``) or from a manual check-in (``source = 'checkin'``); ties on
  ``recorded_at`` go to the row written last.
* So, in the default **automatic** mode, a check-in overrides the query's value until the next
  *successful* refresh appends a newer row. A refresh that fails records an error row
  (``status = 'error'``, no value) but does not replace the value: the summary keeps showing the
  last value and reports the failure beside it.
* In **manual** mode (``okr_modes``: the latest switch per key result; none means automatic) the
  refresh does not run the query and writes nothing, so check-ins stand until the key result is
  switched back to automatic; query rows recorded after the switch to manual are ignored. After the
  switch back, the next successful refresh's value is current again.
* Progress, expected progress and status of the current value are recomputed for the day the
  summary is asked for, from the key result as the config defines it now; the stored columns keep
  what they were when the row was written (that is what the history charts).
* An objective's progress is the weighted average of its key results' progress (``weight:``,
  default 1; KPIs and key results without a value left out), its status the worst of theirs.

Times are stored as naive UTC timestamps; an aware ``now`` is converted to UTC first, a naive one is
taken as UTC. Expected progress uses the UTC date of ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from planhat_pipelines.config import KeyResult
from planhat_pipelines.errors import OkrQueryError, PlanhatPipelinesError
from planhat_pipelines.okrs.sql_check import check_query
from planhat_pipelines.okrs.status import Evaluation, evaluate
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.okr_values import (
    MODE_AUTOMATIC,
    MODE_MANUAL,
    MODES,
    SOURCE_CHECKIN,
    SOURCE_QUERY,
    STATUS_ERROR,
    OkrValue,
)
from planhat_pipelines.warehouses.base import Warehouse

_MAX_SHOWN_ROWS = 5
_MAX_SHOWN_CHARS = 300


def utc_naive(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo is not None else now


def _where(kr: KeyResult) -> str:
    return f"key result '{kr.name}' (objective '{kr.objective}', connection '{kr.connection}')"


def _record(store: ModelStore, kr: KeyResult, ev: Evaluation, source: str, at: datetime) -> OkrValue:
    row = OkrValue(
        kr.name,
        kr.objective,
        at,
        ev.value,
        source,
        ev.progress,
        ev.expected,
        ev.status.value if ev.status else None,
        None,
    )
    store.append_okr_value(row)
    return row


def _show(table: pa.Table) -> str:
    """What a query returned, short enough for an error message."""
    columns = ", ".join(f"{f.name} {f.type}" for f in table.schema) or "none"
    rows = [tuple(r.values()) for r in table.slice(0, _MAX_SHOWN_ROWS).to_pylist()]
    shown = ", ".join(repr(r) for r in rows)
    if table.num_rows > _MAX_SHOWN_ROWS:
        shown += ", ..."
    text = f"{table.num_rows} row(s) of column(s) [{columns}]" + (f": {shown}" if rows else "")
    return text if len(text) <= _MAX_SHOWN_CHARS else text[: _MAX_SHOWN_CHARS - 3] + "..."


def single_number(kr: KeyResult, table: pa.Table) -> float:
    """The one number a key result's query returned.

    Args:
        kr: The key result (named in messages).
        table: The query's whole result.

    Returns:
        The value as a float (integers and decimals are converted).

    Raises:
        OkrQueryError: The result is not exactly one row with one numeric, non-NULL, finite value.
            The message shows what came back (columns, types and the first rows).
    """

    def fail(problem: str, fix: str) -> OkrQueryError:
        return OkrQueryError(f"{_where(kr)}: the query {problem}; it returned {_show(table)}. Fix: {fix}")

    if table.num_columns != 1:
        raise fail(
            f"returned {table.num_columns} columns instead of one",
            "select only the number, e.g. SELECT count(*) FROM ...",
        )
    if table.num_rows == 0:
        raise fail("returned no rows", "use an aggregate (count, sum, ...) so that exactly one row comes back")
    if table.num_rows > 1:
        raise fail(
            f"returned {table.num_rows} rows instead of one",
            "aggregate to a single row (count, sum, max, ...) or filter to one row",
        )
    column = table.column(0)
    type_ = column.type
    value = column[0].as_py()
    if pa.types.is_null(type_) or value is None:
        raise fail("returned NULL", "wrap the expression in COALESCE(..., 0) or fix the filter that finds no data")
    if not (pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_)):
        raise fail(
            f"returned a {type_} value, not a number",
            "return a numeric column, e.g. CAST(... AS DOUBLE)",
        )
    number = float(value)
    if not math.isfinite(number):
        raise fail(f"returned {number}, not a finite number", "guard divisions with NULLIF and COALESCE")
    return number


@dataclass(frozen=True)
class RefreshResult:
    """What :func:`refresh_key_result` did.

    Attributes:
        row: In automatic mode the row written. In manual mode the value that stands (the current row:
            the latest check-in, or what the key result had before the switch), None if it never had one.
        skipped_manual: True when the key result is in manual mode: the query did not run, nothing was written.
    """

    row: OkrValue | None
    skipped_manual: bool = False

    @property
    def mode(self) -> str:
        """``manual`` when the refresh was skipped, else ``automatic``."""
        return MODE_MANUAL if self.skipped_manual else MODE_AUTOMATIC


def _standing(store: ModelStore, kr: KeyResult) -> RefreshResult:
    good = [r.row for r in store.latest_okr_values(kr.name) if not r.is_error]
    return RefreshResult(good[0] if good else None, skipped_manual=True)


def refresh_key_result(store: ModelStore, warehouse: Warehouse, kr: KeyResult, now: datetime) -> RefreshResult:
    """Run a key result's query, judge the value and append it to ``okr_values`` (source ``query``).

    In manual mode nothing runs and nothing is written: the result carries the standing value with
    ``skipped_manual=True``. The mode is read again in the transaction that appends the row, so a switch
    to manual while the query ran wins over the query's value.

    The SQL is checked (:func:`~planhat_pipelines.okrs.sql_check.check_query`) in the warehouse's
    dialect before it is sent, and run with the key result's timeout and byte limit.

    Args:
        store: The open model store.
        warehouse: The open warehouse of ``kr.connection``.
        kr: The key result.
        now: The time to record (and whose UTC date sets expected progress).

    Returns:
        The row written, or in manual mode the value that stands.

    Raises:
        OkrQueryError: The SQL was refused or did not return one number.
        Exception: Whatever the warehouse raised (usually WarehouseError).
            In every failure case an error row (``status = 'error'``, the message in ``error``,
            no value) is appended first, then the exception is re-raised.
    """
    if store.okr_modes().get(kr.name) == MODE_MANUAL:
        return _standing(store, kr)
    at = utc_naive(now)
    try:
        check_query(kr, warehouse.capabilities.dialect)
        table = warehouse.query(kr.query, timeout_seconds=kr.timeout_seconds, max_bytes_billed=kr.max_bytes_billed)
        value = single_number(kr, table)
        ev = evaluate(kr, value, at.date())
    except Exception as exc:
        store.append_okr_value(
            OkrValue(kr.name, kr.objective, at, None, SOURCE_QUERY, None, None, STATUS_ERROR, str(exc))
        )
        raise

    def append() -> RefreshResult:
        if store.okr_modes().get(kr.name) == MODE_MANUAL:
            return _standing(store, kr)
        return RefreshResult(_record(store, kr, ev, SOURCE_QUERY, at))

    return store.atomic(append)


def check_in(store: ModelStore, kr: KeyResult, value: float, now: datetime, *, manual: bool = False) -> OkrValue:
    """Record a manual value for a key result (source ``checkin``).

    In automatic mode the check-in is the key result's current value until the next successful
    refresh appends a newer row; in manual mode until the key result is switched back to automatic
    (see the module docstring).

    Args:
        store: The open model store.
        kr: The key result.
        value: The value.
        now: The time to record.
        manual: Also switch the key result to manual mode (in the same store transaction), unless it
            already is.

    Raises:
        PlanhatPipelinesError: ``value`` is NaN or infinite.
    """
    if not math.isfinite(value):
        raise PlanhatPipelinesError(f"{_where(kr)}: check-in value {value} is not a number. Fix: give a finite number")
    at = utc_naive(now)
    ev = evaluate(kr, value, at.date())

    def work() -> OkrValue:
        row = _record(store, kr, ev, SOURCE_CHECKIN, at)
        if manual and store.okr_modes().get(kr.name) != MODE_MANUAL:
            store.set_okr_mode(kr.name, MODE_MANUAL, at)
        return row

    return store.atomic(work)


def set_mode(store: ModelStore, kr: KeyResult, mode: str, now: datetime) -> bool:
    """Switch a key result to ``mode`` (``manual`` or ``automatic``) as of ``now``.

    Returns:
        True if the mode changed (one ``okr_modes`` row written); False if it already was ``mode``.

    Raises:
        PlanhatPipelinesError: ``mode`` is not a mode.
    """
    if mode not in MODES:
        raise PlanhatPipelinesError(f"{_where(kr)}: unknown mode '{mode}'. Fix: use one of {', '.join(MODES)}")

    def work() -> bool:
        if store.okr_modes().get(kr.name, MODE_AUTOMATIC) == mode:
            return False
        store.set_okr_mode(kr.name, mode, utc_naive(now))
        return True

    return store.atomic(work)


__all__ = [
    "MODES",
    "MODE_AUTOMATIC",
    "MODE_MANUAL",
    "SOURCE_CHECKIN",
    "SOURCE_QUERY",
    "STATUS_ERROR",
    "OkrValue",
    "RefreshResult",
    "check_in",
    "refresh_key_result",
    "set_mode",
    "single_number",
    "utc_naive",
]
