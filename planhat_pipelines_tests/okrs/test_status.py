"""Status bands at their edges, expected progress over dates, decreasing targets, KPIs, objectives."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date

import pytest

from planhat_pipelines.config import KeyResult
from planhat_pipelines.okrs.status import (
    Status,
    evaluate,
    expected_progress,
    objective_progress,
    progress,
    status_for,
    worst_status,
)

START = date(2026, 1, 1)
END = date(2026, 1, 11)  # ten days: each day is 10 % of expected progress

KR = KeyResult(
    name="leads",
    objective="grow",
    title="Converted leads",
    connection="wh",
    query="SELECT 1",
    start_value=100.0,
    target=500.0,
    start_date=START,
    end_date=END,
    direction="increase",
)


# --- expected progress -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2025, 6, 1), 0.0),  # long before the start: clamped
        (date(2025, 12, 31), 0.0),  # the day before
        (START, 0.0),
        (date(2026, 1, 2), 0.1),
        (date(2026, 1, 6), 0.5),
        (date(2026, 1, 10), 0.9),
        (END, 1.0),
        (date(2026, 1, 12), 1.0),  # the day after: clamped
        (date(2027, 1, 1), 1.0),
    ],
)
def test_expected_progress_rises_linearly_and_is_clamped(on: date, expected: float) -> None:
    assert expected_progress(START, END, on) == pytest.approx(expected)


def test_expected_progress_refuses_an_empty_period() -> None:
    with pytest.raises(ValueError, match="after start_date"):
        expected_progress(END, START, START)


# --- progress ------------------------------------------------------------------------------------
def test_progress_increasing_target() -> None:
    assert progress(300, 100, 500) == pytest.approx(0.5)
    assert progress(100, 100, 500) == 0.0
    assert progress(500, 100, 500) == 1.0


def test_progress_is_not_clamped() -> None:
    assert progress(700, 100, 500) == pytest.approx(1.5)
    assert progress(50, 100, 500) == pytest.approx(-0.125)


def test_progress_decreasing_target() -> None:
    # churn from 10 % down to 4 %: at 7 % half the way is done
    assert progress(7, 10, 4) == pytest.approx(0.5)
    assert progress(10, 10, 4) == 0.0
    assert progress(4, 10, 4) == 1.0
    assert progress(12, 10, 4) == pytest.approx(-1 / 3)  # went the wrong way


def test_progress_undefined_when_target_equals_start() -> None:
    with pytest.raises(ValueError, match="equals start_value"):
        progress(1, 5, 5)


# --- status bands --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("done", "expected", "status"),
    [
        (0.9, 0.5, Status.ON_TRACK),  # ahead
        (0.5, 0.5, Status.ON_TRACK),  # gap exactly 0
        (0.0, 0.0, Status.ON_TRACK),  # nothing expected yet, nothing done
        (0.4999, 0.5, Status.BEHIND),  # just below expected
        (0.25, 0.5, Status.BEHIND),  # gap exactly 0.25
        (0.3, 0.55, Status.BEHIND),  # exactly 25 points on paper (0.25000000000000006 in floats)
        (0.75, 1.0, Status.BEHIND),
        (0.2499, 0.5, Status.AT_RISK),  # gap just over 0.25
        (0.0, 0.2501, Status.AT_RISK),  # gap exactly 0.2501
        (0.2, 0.4501, Status.AT_RISK),  # gap 0.2501 on paper, with float noise
        (0.0, 0.25, Status.BEHIND),  # gap exactly 0.25 from a zero start
        (0.0, 1e-12, Status.ON_TRACK),  # float noise above a gap of 0 stays On track
        (0.0, 0.26, Status.AT_RISK),
        (-0.5, 0.1, Status.AT_RISK),
    ],
)
def test_status_bands_at_their_edges(done: float, expected: float, status: Status) -> None:
    assert status_for(done, expected) is status


def test_status_labels() -> None:
    assert [s.label for s in Status] == ["On track", "Behind", "At risk"]
    assert [s.value for s in Status] == ["on_track", "behind", "at_risk"]


# --- evaluate ------------------------------------------------------------------------------------
def test_evaluate_increasing() -> None:
    ev = evaluate(KR, 300.0, date(2026, 1, 6))  # progress 0.5, expected 0.5
    assert (ev.value, ev.progress, ev.expected, ev.status) == (300.0, 0.5, 0.5, Status.ON_TRACK)
    ev = evaluate(KR, 200.0, date(2026, 1, 6))  # progress 0.25, expected 0.5: exactly 25 below
    assert ev.status is Status.BEHIND
    ev = evaluate(KR, 199.0, date(2026, 1, 6))  # 25.25 points below
    assert ev.status is Status.AT_RISK


def test_evaluate_before_start_and_after_end() -> None:
    before = evaluate(KR, 100.0, date(2025, 11, 1))
    assert (before.progress, before.expected, before.status) == (0.0, 0.0, Status.ON_TRACK)
    after = evaluate(KR, 450.0, date(2026, 6, 1))  # progress 0.875 against 1.0
    assert (after.expected, after.status) == (1.0, Status.BEHIND)
    assert evaluate(KR, 500.0, date(2026, 6, 1)).status is Status.ON_TRACK
    assert evaluate(KR, 300.0, date(2026, 6, 1)).status is Status.AT_RISK


def test_evaluate_decreasing_target() -> None:
    churn = replace(KR, start_value=10.0, target=4.0, direction="decrease")
    on_track = evaluate(churn, 6.0, date(2026, 1, 6))  # 2/3 done, half expected
    assert on_track.progress == pytest.approx(2 / 3)
    assert on_track.status is Status.ON_TRACK
    assert evaluate(churn, 8.5, date(2026, 1, 6)).status is Status.BEHIND  # 0.25 done: exactly 25 below
    assert evaluate(churn, 11.0, date(2026, 1, 6)).status is Status.AT_RISK  # wrong way


def test_evaluate_kpi_has_only_a_value() -> None:
    kpi = replace(KR, target=None, direction="kpi")
    ev = evaluate(kpi, 42.0, date(2026, 1, 6))
    assert (ev.value, ev.progress, ev.expected, ev.status) == (42.0, None, None, None)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_evaluate_refuses_non_finite_values(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        evaluate(KR, value, START)


# --- objectives ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("statuses", "worst"),
    [
        ([Status.ON_TRACK, Status.ON_TRACK], Status.ON_TRACK),
        ([Status.ON_TRACK, Status.BEHIND], Status.BEHIND),
        ([Status.BEHIND, Status.AT_RISK, Status.ON_TRACK], Status.AT_RISK),
        ([None, Status.BEHIND], Status.BEHIND),  # KPIs and key results without a value are left out
        ([None, None], None),
        ([], None),
    ],
)
def test_objective_takes_the_worst_status(statuses: list[Status | None], worst: Status | None) -> None:
    assert worst_status(statuses) is worst


@pytest.mark.parametrize(
    ("progress_and_weight", "expected"),
    [
        ([(0.5, 1.0), (1.0, 1.0)], 0.75),  # equal weights: the plain mean
        ([(0.2, 1.0), (0.4, 1.0), (0.9, 1.0)], 0.5),
        ([(0.5, 3.0), (1.0, 1.0)], 0.625),  # unequal weights: (1.5 + 1.0) / 4
        ([(0.0, 0.5), (1.0, 1.5)], 0.75),  # fractional weights
        ([(0.5, 1.0), (None, 5.0)], 0.5),  # a KPI (or a key result without a value) is left out, weight and all
        ([(1.5, 1.0), (-0.5, 1.0)], 0.5),  # not clamped, like key-result progress
        ([(0.4, 2.0)], 0.4),
        ([(None, 1.0), (None, 2.0)], None),  # only KPIs / no values: no progress
        ([], None),
    ],
)
def test_objective_progress_is_the_weighted_mean_of_known_progress(
    progress_and_weight: list[tuple[float | None, float]], expected: float | None
) -> None:
    result = objective_progress(progress_and_weight)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)
