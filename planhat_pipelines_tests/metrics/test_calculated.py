"""Calculated metrics on a real store: each operation's series by hand, filters, attribution, writes."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from planhat_pipelines.config.metrics import CalculatedMetric
from planhat_pipelines.metrics import MetricResult, compute_metric
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.metrics.seed import TODAY, activities, companies, custom_of, metric_rows, series

#: The horizon of every metric here: five days, 03-06 to 03-10; windows of three days reach back to 03-04.
DAYS = [TODAY - timedelta(days=4 - i) for i in range(5)]


def _at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute)


def _metric(operation: str, **over: Any) -> CalculatedMetric:
    base = CalculatedMetric("m", "company", "activities", operation, window_days=3, history_days=5)
    return replace(base, **over)


def _seed_activities(store: ModelStore) -> dict[str, str]:
    """Companies A (end users u1, u2), B (u3) and C (no usage); six activities around the horizon's edges."""
    ids = companies(store, "A", "B", "C", custom=['{"tier": "gold"}', None, '{"tier": "free"}'])
    a, b = ids["A"], ids["B"]
    activities(
        store,
        [
            ("enduser", "u1", a, "login", _at(4, 9), None),  # first day any window reaches: counts 1 on 03-06 only
            ("enduser", "u1", a, "login", _at(3, 23, 59), 5.0),  # one day before that: never counted
            ("enduser", "u2", a, "login", _at(6, 10), 2.0),
            ("enduser", "u1", a, "export", _at(8, 8), 4.0),
            ("enduser", "u3", b, "login", _at(10, 23, 30), 3.0),  # late today: counts today
            ("enduser", "u1", a, "login", _at(11, 0), 7.0),  # tomorrow: never counted
        ],
    )
    return ids


N = None
#: Per operation (and filter), the hand-computed series of A and B over DAYS (03-06 .. 03-10, window 3 days).
ACTIVITY_CASES = [
    ("count", (), {"A": [2, 1, 2, 1, 1], "B": [0, 0, 0, 0, 1]}),
    ("sum", (), {"A": [3, 2, 6, 4, 4], "B": [0, 0, 0, 0, 3]}),
    ("average", (), {"A": [1.5, 2, 3, 4, 4], "B": [N, N, N, N, 3]}),
    ("last", (), {"A": [2, 2, 4, 4, 4], "B": [N, N, N, N, 3]}),
    ("distinct_users", (), {"A": [2, 1, 2, 1, 1], "B": [0, 0, 0, 0, 1]}),
    # Only export rows: B has none in the horizon, so it gets no series at all.
    ("count", ("export",), {"A": [0, 0, 1, 1, 1]}),
    ("sum", ("export", "logout"), {"A": [0, 0, 4, 4, 4]}),
]


@pytest.mark.parametrize(("operation", "actions", "expected"), ACTIVITY_CASES)
def test_activity_operations_give_the_hand_computed_series(
    store: ModelStore, operation: str, actions: tuple[str, ...], expected: dict[str, list[float | None]]
) -> None:
    ids = _seed_activities(store)
    result = compute_metric(store, _metric(operation, actions=actions), TODAY)
    want = {(ids[c], day): v for c, values in expected.items() for day, v in zip(DAYS, values, strict=True)}
    assert series(store, "m") == want
    today = [v for (_, day), v in want.items() if day == TODAY and v is not None]
    assert (result.records, result.series_rows, result.latest_total) == (len(today), len(want), sum(today))


def _seed_metrics(store: ModelStore) -> dict[str, str]:
    ids = companies(store, "A")
    a = ids["A"]
    metric_rows(
        store,
        [
            ("company", a, a, "api_calls", _at(7), 10.0),
            ("company", a, a, "api_calls", _at(8), 20.0),
            ("company", a, a, "other", _at(8), 1000.0),  # another dimension: never read
            ("asset", "asset-1", a, "api_calls", _at(9), 5.0),  # an asset of A: rolls up to A
            ("asset", "asset-1", a, "api_calls", _at(9, 13), None),  # no value: counted; not summed, averaged or last
        ],
    )
    return ids


METRIC_CASES = [
    ("company", "count", {"A": [0, 1, 2, 4, 3]}),
    ("company", "sum", {"A": [0, 10, 30, 35, 25]}),
    ("company", "average", {"A": [N, 10, 15, 35 / 3, 12.5]}),
    ("company", "last", {"A": [N, 10, 20, 5, 5]}),
    ("asset", "sum", {"asset-1": [0, 0, 0, 5, 5]}),
    ("asset", "count", {"asset-1": [0, 0, 0, 2, 2]}),
]


@pytest.mark.parametrize(("model", "operation", "expected"), METRIC_CASES)
def test_metric_operations_read_one_dimension(
    store: ModelStore, model: str, operation: str, expected: dict[str, list[float | None]]
) -> None:
    ids = {**_seed_metrics(store), "asset-1": "asset-1"}
    metric = _metric(operation, model=model, source="metrics", dimension="api_calls")
    compute_metric(store, metric, TODAY)
    got = series(store, "m")
    want = {(ids[r], day): v for r, values in expected.items() for day, v in zip(DAYS, values, strict=True)}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == (None if value is None else pytest.approx(value)), key


def test_activities_belong_to_the_company_or_to_the_end_user(store: ModelStore) -> None:
    ids = _seed_activities(store)
    a = ids["A"]
    # An activity on the company itself: the company's count has it, no end user's does, and it is no user.
    activities(store, [("company", a, a, "login", _at(9), None)])
    compute_metric(store, _metric("count", name="company_count"), TODAY)
    compute_metric(store, _metric("count", name="user_count", model="enduser"), TODAY)
    compute_metric(store, _metric("distinct_users", name="users"), TODAY)
    assert [series(store, "company_count")[(a, d)] for d in DAYS] == [2, 1, 2, 2, 2]
    by_user = series(store, "user_count")
    assert {r for r, _ in by_user} == {"u1", "u2", "u3"}
    assert [by_user[("u1", d)] for d in DAYS] == [1, 0, 1, 1, 1]
    assert [by_user[("u2", d)] for d in DAYS] == [1, 1, 1, 0, 0]
    assert [series(store, "users")[(a, d)] for d in DAYS] == [2, 1, 2, 1, 1]


def _snapshot(store: ModelStore) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    values = store.con.execute("SELECT * FROM calculated_metric_values ORDER BY ALL").fetchall()
    records = store.con.execute("SELECT id, CAST(custom AS VARCHAR), _updated_at FROM company ORDER BY id").fetchall()
    return values, records


@pytest.mark.all_catalogs
def test_a_rerun_on_the_same_data_writes_nothing(store: ModelStore) -> None:
    _seed_activities(store)
    first = compute_metric(store, _metric("sum"), TODAY)
    before = _snapshot(store)
    second = compute_metric(store, _metric("sum"), TODAY)
    assert (first.series_rows, first.records_changed) == (10, 2)
    assert second == MetricResult("m", 2, 0, 0, 7.0, 0)
    assert _snapshot(store) == before


def test_latest_value_is_merged_into_the_custom_fields(store: ModelStore) -> None:
    ids = _seed_activities(store)
    untouched = store.con.execute("SELECT _updated_at FROM company WHERE id = ?", [ids["C"]]).fetchall()
    result = compute_metric(store, _metric("count", name="logins"), TODAY)
    assert custom_of(store, "company", ids["A"]) == {"tier": "gold", "logins": 1.0}
    assert custom_of(store, "company", ids["B"]) == {"logins": 1.0}
    # C never had usage: no field, not written.
    assert custom_of(store, "company", ids["C"]) == {"tier": "free"}
    assert store.con.execute("SELECT _updated_at FROM company WHERE id = ?", [ids["C"]]).fetchall() == untouched
    assert result.metadata() == {
        "records": 2,
        "series_rows": 10,
        "series_deleted": 0,
        "records_changed": 2,
        "latest_total": 2.0,
    }


def test_a_row_added_later_changes_only_the_days_it_falls_in(store: ModelStore) -> None:
    ids = _seed_activities(store)
    compute_metric(store, _metric("count"), TODAY)
    before = store.con.execute(
        'SELECT "recordId", "day", "value", computed_at FROM calculated_metric_values ORDER BY ALL'
    ).fetchall()
    activities(store, [("enduser", "u3", ids["B"], "login", _at(9), None)])
    result = compute_metric(store, _metric("count"), TODAY)
    # 03-09 falls in the windows of 03-09 and 03-10 only; A is untouched.
    assert (result.series_rows, result.records_changed, result.series_deleted) == (2, 1, 0)
    after = store.con.execute(
        'SELECT "recordId", "day", "value", computed_at FROM calculated_metric_values ORDER BY ALL'
    ).fetchall()
    changed = {(r, d, v) for r, d, v, _ in set(after) - set(before)}
    assert changed == {(ids["B"], DAYS[3], 1.0), (ids["B"], DAYS[4], 2.0)}
    assert custom_of(store, "company", ids["B"]) == {"m": 2.0}


def test_records_no_longer_produced_are_deleted_and_fall_to_zero(store: ModelStore) -> None:
    ids = _seed_activities(store)
    compute_metric(store, _metric("count"), TODAY)
    # Now counting exports only: B has none, so its days go and its custom field falls to 0.
    result = compute_metric(store, _metric("count", actions=("export",)), TODAY)
    assert result.series_deleted == 5
    assert {r for r, _ in series(store, "m")} == {ids["A"]}
    assert custom_of(store, "company", ids["B"]) == {"m": 0.0}
    assert custom_of(store, "company", ids["A"]) == {"tier": "gold", "m": 1.0}


def test_days_before_the_horizon_are_kept_as_history(store: ModelStore) -> None:
    ids = _seed_activities(store)
    compute_metric(store, _metric("count"), TODAY - timedelta(days=2))
    compute_metric(store, _metric("count"), TODAY)
    got = series(store, "m")
    # The run two days earlier covered 03-04 .. 03-08 (its windows reached the 03-03 row); 03-04 and 03-05 lie
    # before today's horizon and stay, the rest is today's run: A and B over 03-06 .. 03-10.
    assert got[(ids["A"], date(2026, 3, 4))] == 2
    assert got[(ids["A"], date(2026, 3, 5))] == 2
    assert len(got) == 12
