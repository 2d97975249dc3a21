"""The current value of each key result and the objectives' roll-up, read from the store's ``okr_values``.

What "current" means (the rule the summary, the CLI and the assets follow):

* The current value of a key result is its **latest successful row**, whether it came from the
  query (``source = 'query'``) or from a manual check-in (``source = 'checkin'``); ties on
  ``recorded_at`` go to the row written last.
* So, in the default **automatic** mode, a check-in overrides the query's value until the next
  *successful* refresh appends a newer row. A refresh that fails records an error row
  (``status = 'error'``, no value) but does not replace the value: the summary keeps showing the
  last value and reports the failure beside it.
* In **manual** mode (``okr_modes``: the latest switch per key result; none means automatic) the
  refresh does not run the query and writes nothing, so check-ins stand until the key result is
  switched back to automatic; query rows recorded after the switch to manual are ignored.
* Progress, expected progress and status of the current value are recomputed for the day the
  summary is asked for, from the key result as the config defines it now; the stored columns keep
  what they were when the row was written (that is what the history charts).
* An objective's progress is the weighted average of its key results' progress (``weight:``,
  default 1; KPIs and key results without a value left out), its status the worst of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from planhat_pipelines.config import Config, KeyResult, Objective
from planhat_pipelines.errors import ConfigError
from planhat_pipelines.okrs.refresh import utc_naive
from planhat_pipelines.okrs.status import Evaluation, Status, evaluate, objective_progress, worst_status
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.okr_values import MODE_AUTOMATIC, OkrValue


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
    today = utc_naive(now or datetime.now(UTC)).date()
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
    "KeyResultSummary",
    "ObjectiveSummary",
    "current_values",
    "find_key_result",
    "history",
    "objective_history",
]
