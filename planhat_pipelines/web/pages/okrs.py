"""``/okrs``: objectives and key results with progress bars coloured by status, expected progress and value history.

The numbers come from the OKR core (:mod:`planhat_pipelines.okrs.current`): the current value of each key result,
its status for today (On track; Behind, 0-25 points below expected; At risk, more than 25 below) and the
objectives' weighted roll-up. This page only turns them into bar widths and chart points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from planhat_pipelines.config import Config
from planhat_pipelines.okrs.current import (
    KeyResultSummary,
    ObjectiveSummary,
    current_values,
    history,
    objective_history,
)
from planhat_pipelines.okrs.status import Status
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.okr_values import SOURCE_CHECKIN
from planhat_pipelines.web.render import NotFound, read, respond


def bar_percent(fraction: float | None) -> float | None:
    """A fraction as a bar width or marker position in percent, clamped to 0-100 (progress may overshoot)."""
    if fraction is None:
        return None
    return round(min(100.0, max(0.0, fraction * 100.0)), 1)


def bar_class(status: Status | None) -> str:
    """The progress bar's CSS class for ``status``: on-track, behind or at-risk ('none' without a status)."""
    return status.value.replace("_", "-") if status else "none"


@dataclass(frozen=True)
class CheckIn:
    """A manual check-in of a key result: when, and the value checked in."""

    at: datetime
    value: float


@dataclass(frozen=True)
class KeyResultView:
    """One key result as the page shows it.

    Attributes:
        progress: The current value's progress as a fraction (not clamped: above 1 past the target).
        expected: Expected progress today as a fraction (0-1); None for a KPI or without a value.
        status: ``on_track``, ``behind`` or ``at_risk``; None for a KPI or without a value.
        bar_class: The bar's CSS class (``on-track``, ``behind``, ``at-risk``, ``none``).
        bar_width: ``progress`` in percent clamped to 0-100, the bar's width.
        expected_left: ``expected`` in percent (0-100), where the expected-progress marker stands.
        source: Where the current value came from: ``query`` or ``checkin``.
        error: The last refresh's error when it failed after the current value was recorded.
        history: ``(recorded_at, value)`` of every successful row, oldest first.
        check_ins: The manual check-ins among them.
    """

    name: str
    title: str
    direction: str
    mode: str
    weight: float
    value: float | None
    start_value: float
    target: float | None
    start_date: date
    end_date: date
    progress: float | None
    expected: float | None
    status: str | None
    status_label: str | None
    bar_class: str
    bar_width: float | None
    expected_left: float | None
    recorded_at: datetime | None
    source: str | None
    error: str | None
    failed_at: datetime | None
    history: tuple[tuple[datetime, float], ...]
    check_ins: tuple[CheckIn, ...]


@dataclass(frozen=True)
class ObjectiveView:
    """One objective: its weighted progress, its worst status, its key results and its progress over time."""

    name: str
    title: str
    progress: float | None
    status: str | None
    status_label: str | None
    bar_class: str
    bar_width: float | None
    key_results: tuple[KeyResultView, ...]
    history: tuple[tuple[datetime, float], ...]


@dataclass(frozen=True)
class Okrs:
    """Everything the OKRs page shows; ``objective`` is the filter (empty: all)."""

    objective: str
    objective_names: tuple[str, ...]
    objectives: tuple[ObjectiveView, ...]


def key_result_view(store: ModelStore, summary: KeyResultSummary) -> KeyResultView:
    """A key result's summary, with its bar geometry and its value history (from the store)."""
    kr, ev, current, failure = summary.key_result, summary.evaluation, summary.current, summary.failure
    rows = history(store, kr.name)
    return KeyResultView(
        name=kr.name,
        title=kr.title or kr.name,
        direction=kr.direction,
        mode=summary.mode,
        weight=kr.weight,
        value=current.value if current else None,
        start_value=kr.start_value,
        target=kr.target,
        start_date=kr.start_date,
        end_date=kr.end_date,
        progress=summary.progress,
        expected=ev.expected if ev else None,
        status=summary.status.value if summary.status else None,
        status_label=summary.status.label if summary.status else None,
        bar_class=bar_class(summary.status),
        bar_width=bar_percent(summary.progress),
        expected_left=bar_percent(ev.expected if ev else None),
        recorded_at=current.recorded_at if current else None,
        source=current.source if current else None,
        error=failure.error if failure else None,
        failed_at=failure.recorded_at if failure else None,
        history=tuple((r.recorded_at, r.value) for r in rows if r.value is not None),
        check_ins=tuple(
            CheckIn(r.recorded_at, r.value) for r in rows if r.source == SOURCE_CHECKIN and r.value is not None
        ),
    )


def objective_view(store: ModelStore, summary: ObjectiveSummary) -> ObjectiveView:
    """An objective's summary with its key results' views and its progress history in percent."""
    return ObjectiveView(
        name=summary.objective.name,
        title=summary.objective.title,
        progress=summary.progress,
        status=summary.status.value if summary.status else None,
        status_label=summary.status.label if summary.status else None,
        bar_class=bar_class(summary.status),
        bar_width=bar_percent(summary.progress),
        key_results=tuple(key_result_view(store, s) for s in summary.key_results),
        history=tuple((at, p * 100.0) for at, p in objective_history(store, summary.objective)),
    )


def okrs(store: ModelStore, config: Config, objective: str = "", now: datetime | None = None) -> Okrs:
    """The configured objectives (only ``objective`` when given), judged as of ``now`` (default: now).

    Raises:
        NotFound: No objective is called ``objective``; the message lists the configured ones.
    """
    names = tuple(o.name for o in config.objectives)
    if objective and objective not in names:
        known = ", ".join(names) or "none are configured"
        raise NotFound(f"no objective '{objective}' in the config. Fix: use one of the objectives' names ({known})")
    summaries = [s for s in current_values(store, config, now) if not objective or s.objective.name == objective]
    return Okrs(objective, names, tuple(objective_view(store, s) for s in summaries))


def page(request: Request) -> Response:
    """The OKRs page (``/okrs``) or its JSON (``/api/okrs``); ``?objective=<name>`` shows one objective."""
    objective = request.query_params.get("objective", "").strip()
    data = read(request, lambda store, config: okrs(store, config, objective))
    return respond(request, "okrs.html", {"okrs": data})


ROUTES = [Route("/okrs", page), Route("/api/okrs", page)]
