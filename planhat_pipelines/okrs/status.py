"""Progress, expected progress and status of key results and objectives: pure functions, no I/O.

All shares are fractions (``0.5`` is 50 %). Nothing is clamped except expected progress, so a key
result that overshoots its target has progress above 1 and one that went the wrong way has
progress below 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import Enum

from planhat_pipelines.config import KeyResult

#: How far (as a fraction, 0.25 = 25 percentage points) progress may lag expected progress and still
#: be Behind rather than At risk.
BEHIND_BAND = 0.25

#: Tolerance for the band edges, so that numbers that are exactly on an edge on paper (progress
#: 0.30 against expected 0.55 is a gap of 0.25, not 0.25000000000000006) land on the edge.
EDGE_TOLERANCE = 1e-9


class Status(Enum):
    """A key result's or objective's status, best first.

    The value is what the store's ``okr_values.status`` column holds; ``label`` is for people.
    """

    ON_TRACK = "on_track"
    BEHIND = "behind"
    AT_RISK = "at_risk"

    @property
    def label(self) -> str:
        """The human label: On track, Behind or At risk."""
        return {"on_track": "On track", "behind": "Behind", "at_risk": "At risk"}[self.value]

    @property
    def rank(self) -> int:
        """0 for On track, 1 for Behind, 2 for At risk (higher is worse)."""
        return _RANK[self]


_RANK = {Status.ON_TRACK: 0, Status.BEHIND: 1, Status.AT_RISK: 2}


@dataclass(frozen=True)
class Evaluation:
    """A value judged against its key result on a day.

    Attributes:
        value: The value the query or check-in gave.
        progress: ``(value - start_value) / (target - start_value)``; None for a KPI.
        expected: Expected progress on the day (0..1); None for a KPI.
        status: None for a KPI.
    """

    value: float
    progress: float | None
    expected: float | None
    status: Status | None


def expected_progress(start_date: date, end_date: date, on: date) -> float:
    """Expected progress on day ``on``: rises linearly from 0 at ``start_date`` to 1 at ``end_date``.

    Measured in whole days: on ``start_date`` and any day before it the result is exactly 0.0; on
    ``end_date`` and any day after it exactly 1.0; halfway (in days) it is 0.5.

    Args:
        start_date: The first day of the key result's period.
        end_date: The last day of the period; must be after ``start_date`` (the config checks it).
        on: The day to evaluate, usually today in UTC.

    Returns:
        A fraction between 0.0 and 1.0 inclusive.
    """
    span = (end_date - start_date).days
    if span <= 0:
        raise ValueError(f"end_date {end_date} must be after start_date {start_date}")
    elapsed = (on - start_date).days
    return min(1.0, max(0.0, elapsed / span))


def progress(value: float, start_value: float, target: float) -> float:
    """Progress of ``value`` from ``start_value`` towards ``target``, as a fraction.

    ``(value - start_value) / (target - start_value)``, which also handles decreasing targets (target
    below start_value): going from 100 to 60 with target 20 is progress 0.5. Not clamped: beyond the
    target gives more than 1, moving away from it gives less than 0.

    Raises:
        ValueError: ``target`` equals ``start_value`` (the config refuses such key results).
    """
    if target == start_value:
        raise ValueError(f"target {target} equals start_value, so progress is undefined")
    return (value - start_value) / (target - start_value)


def status_for(progress_: float, expected: float) -> Status:
    """The status of a key result from its progress and expected progress (both fractions).

    With ``gap = expected - progress``:

    * ``gap <= 0`` (progress at or above expected; gap exactly 0 included): On track.
    * ``0 < gap <= 0.25`` (behind by at most 25 percentage points; exactly 0.25 included): Behind.
    * ``gap > 0.25`` (even 0.2501): At risk.

    Edges are compared with a tolerance of :data:`EDGE_TOLERANCE` (1e-9), so floating-point noise
    never moves a value that is exactly on an edge across it.
    """
    gap = expected - progress_
    if gap <= EDGE_TOLERANCE:
        return Status.ON_TRACK
    if gap <= BEHIND_BAND + EDGE_TOLERANCE:
        return Status.BEHIND
    return Status.AT_RISK


def evaluate(kr: KeyResult, value: float, on: date) -> Evaluation:
    """Judge ``value`` against key result ``kr`` on day ``on``.

    A KPI (``direction: kpi``, no target) has neither progress nor status: only the value.

    Raises:
        ValueError: ``value`` is NaN or infinite.
    """
    if not math.isfinite(value):
        raise ValueError(f"value {value} is not a finite number")
    if kr.direction == "kpi" or kr.target is None:
        return Evaluation(value, None, None, None)
    done = progress(value, kr.start_value, kr.target)
    expected = expected_progress(kr.start_date, kr.end_date, on)
    return Evaluation(value, done, expected, status_for(done, expected))


def worst_status(statuses: Iterable[Status | None]) -> Status | None:
    """An objective's status: the worst status among its key results.

    Key results without a status (KPIs, or ones that never produced a value) are left out; None
    when none of them has a status.
    """
    known = [s for s in statuses if s is not None]
    return max(known, key=lambda s: s.rank) if known else None


def objective_progress(progress_and_weight: Iterable[tuple[float | None, float]]) -> float | None:
    """An objective's progress: the weighted average of its key results' progress.

    Args:
        progress_and_weight: ``(progress, weight)`` per key result. Key results without progress (KPIs, or
            ones that never produced a value) are left out, so they neither count nor dilute the average.
            Weights are positive (the config refuses others); equal weights give the plain mean.

    Returns:
        ``sum(progress * weight) / sum(weight)`` over the key results with progress (not clamped, like
        progress itself); None when none has progress.
    """
    known = [(p, w) for p, w in progress_and_weight if p is not None]
    total = sum(w for _, w in known)
    return sum(p * w for p, w in known) / total if known and total > 0 else None
