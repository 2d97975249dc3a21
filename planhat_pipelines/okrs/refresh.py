"""Refresh key results from their warehouse queries, record manual check-ins, and read current values.

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

from planhat_pipelines.config import Config, KeyResult, Objective
from planhat_pipelines.errors import ConfigError, OkrQueryError, PlanhatPipelinesError
from planhat_pipelines.okrs.sql_check import check_query
from planhat_pipelines.okrs.status import Evaluation, Status, evaluate, objective_progress, worst_status
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


def _utc_naive(now: datetime) -> datetime:
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
    at = _utc_naive(now)
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
    at = _utc_naive(now)
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
        store.set_okr_mode(kr.name, mode, _utc_naive(now))
        return True

    return store.atomic(work)


def history(store: ModelStore, key_result: str) -> list[OkrValue]:
    """Every row of one key result, oldest first (ties in the order they were written)."""
    return store.okr_history(key_result)


@dataclass(frozen=True)
class KeyResultSummary:
    """A key result's current state.

    Attributes:
        key_result: The key result as configured.
        current: Its latest successful row (query or check-in), None if it never had a value. In manual
            mode query rows newer than the switch to manual are ignored.
        evaluation: ``current``'s value judged for the summary's day, None without a value.
        failure: The latest failed refresh when it is newer than ``current``, else None.
        mode: ``automatic`` or ``manual``.
    """

    key_result: KeyResult
    current: OkrValue | None
    evaluation: Evaluation | None
    failure: OkrValue | None
    mode: str = MODE_AUTOMATIC

    @property
    def status(self) -> Status | None:
        """The evaluation's status; None for a KPI or a key result without a value."""
        return self.evaluation.status if self.evaluation else None

    @property
    def progress(self) -> float | None:
        """The evaluation's progress; None for a KPI or a key result without a value."""
        return self.evaluation.progress if self.evaluation else None


@dataclass(frozen=True)
class ObjectiveSummary:
    """An objective with its key results.

    Attributes:
        objective: The objective as configured.
        key_results: Its key results' summaries, in config order.
        status: The worst of its key results' statuses (None if none has one).
        progress: The weighted average of its key results' progress (``weight:``, default 1); KPIs and key
            results without a value are left out; None if none has progress.
    """

    objective: Objective
    key_results: tuple[KeyResultSummary, ...]
    status: Status | None
    progress: float | None


def current_values(store: ModelStore, config: Config, now: datetime | None = None) -> list[ObjectiveSummary]:
    """Every configured objective with the current value, status and mode of each key result.

    Rows of key results no longer in the config are ignored.

    Args:
        store: The open model store.
        config: The parsed config (its objectives, in file order).
        now: The time to judge for (default: the current time); expected progress uses its UTC date.
    """
    today = _utc_naive(now or datetime.now(UTC)).date()
    # The latest row per key result among successes and, separately, among failures.
    latest: dict[tuple[str, bool], tuple[OkrValue, tuple[datetime, int]]] = {
        (r.row.key_result, r.is_error): (r.row, (r.row.recorded_at, r.seq)) for r in store.latest_okr_values()
    }
    modes = store.okr_modes()
    objectives = []
    for objective in config.objectives:
        summaries = []
        for kr in objective.key_results:
            good = latest.get((kr.name, False))
            bad = latest.get((kr.name, True))
            failure = bad[0] if bad and (good is None or bad[1] > good[1]) else None
            current = good[0] if good else None
            ev = evaluate(kr, current.value, today) if current and current.value is not None else None
            summaries.append(KeyResultSummary(kr, current, ev, failure, modes.get(kr.name, MODE_AUTOMATIC)))
        objectives.append(
            ObjectiveSummary(
                objective,
                tuple(summaries),
                worst_status(s.status for s in summaries),
                objective_progress((s.progress, s.key_result.weight) for s in summaries),
            )
        )
    return objectives


def objective_history(store: ModelStore, objective: Objective) -> list[tuple[datetime, float]]:
    """An objective's progress over time, for a chart: one point per successful row of its key results.

    Each point is the weighted progress (see :func:`~planhat_pipelines.okrs.status.objective_progress`) of
    every key result's latest value at that moment, with the progress stored when each row was written.
    Rows recorded at the same time as a key result's previous one follow write order. Query rows a key
    result's manual mode ignores today are not left out here (the refresh writes none in manual mode).

    Returns:
        ``(recorded_at, progress)`` oldest first; rows before any key result has progress give no point.
    """
    weights = {kr.name: kr.weight for kr in objective.key_results}
    # sorted() is stable: rows at the same instant keep each key result's write order.
    rows = sorted(
        (r for name in weights for r in store.okr_history(name) if r.value is not None), key=lambda r: r.recorded_at
    )
    latest: dict[str, float | None] = {}
    points: list[tuple[datetime, float]] = []
    for row in rows:
        latest[row.key_result] = row.progress
        overall = objective_progress((p, weights[name]) for name, p in latest.items())
        if overall is not None:
            points.append((row.recorded_at, overall))
    return points


def find_key_result(config: Config, name: str) -> KeyResult:
    """The key result called ``name``.

    Raises:
        ConfigError: No key result has that name; the message lists the configured ones.
    """
    for kr in config.key_results:
        if kr.name == name:
            return kr
    names = ", ".join(kr.name for kr in config.key_results) or "none are configured"
    raise ConfigError(
        str(config.path), "okrs", f"has no key result '{name}'", f"use one of the key results' names ({names})"
    )


__all__ = [
    "MODES",
    "MODE_AUTOMATIC",
    "MODE_MANUAL",
    "SOURCE_CHECKIN",
    "SOURCE_QUERY",
    "STATUS_ERROR",
    "KeyResultSummary",
    "ObjectiveSummary",
    "OkrValue",
    "RefreshResult",
    "check_in",
    "current_values",
    "find_key_result",
    "history",
    "objective_history",
    "refresh_key_result",
    "set_mode",
    "single_number",
]
