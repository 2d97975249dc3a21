"""The health score on a real store: thresholds at their edges, weights, missing inputs, history and writes."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pyarrow as pa
import pytest

from planhat_pipelines.config.health_score import HealthInput, HealthScoreConfig, Threshold
from planhat_pipelines.config.metrics import CalculatedMetric
from planhat_pipelines.metrics import HealthResult, compute_health_scores, compute_metric
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.metrics.seed import TODAY, activities, companies

LOGINS = CalculatedMetric("logins", "company", "activities", "count", window_days=3, history_days=2)


def _input(name: str, source: str, ref: str | None, weight: float, *steps: tuple[float, float]) -> HealthInput:
    return HealthInput(name, source, ref, weight, tuple(Threshold(at, score) for at, score in steps))


#: A seats field scored 4 from 1 seat, 10 from 3: (stored custom.seats, the expected score).
SEAT_CASES = [
    ("below_first", 0.5, 0.0),
    ("at_first", 1, 4.0),
    ("between", 2.9, 4.0),
    ("at_last", 3, 10.0),
    ("above_last", 100, 10.0),
    ("negative", -1, 0.0),
    ("not_a_number", "many", None),
    ("missing", None, None),
]


def test_thresholds_score_at_their_edges(store: ModelStore) -> None:
    names = [name for name, _, _ in SEAT_CASES]
    customs = [None if v is None else json.dumps({"seats": v}) for _, v, _ in SEAT_CASES]
    ids = companies(store, *names, custom=customs)
    health = HealthScoreConfig((_input("seats", "field", "custom.seats", 1, (1, 4), (3, 10)),))
    result = compute_health_scores(store, health, (), TODAY)
    scores = dict(store.con.execute('SELECT "companyId", score FROM health_scores').fetchall())
    assert {name: scores[ids[name]] for name in names} == {name: want for name, _, want in SEAT_CASES}
    h = dict(store.con.execute("SELECT id, h FROM company").fetchall())
    assert {name: h[ids[name]] for name in names} == {name: want for name, _, want in SEAT_CASES}
    assert result == HealthResult(
        companies=6, changed=6, average=28 / 6, distribution={"0-2": 2, "2-4": 0, "4-6": 2, "6-8": 0, "8-10": 2}
    )


def test_a_standard_field_is_read_as_a_number(store: ModelStore) -> None:
    ids = companies(store, "A", "B", phase=["7", "onboarding"])
    health = HealthScoreConfig((_input("phase", "field", "phase", 1, (5, 10)),))
    compute_health_scores(store, health, (), TODAY)
    assert dict(store.con.execute("SELECT id, h FROM company").fetchall()) == {ids["A"]: 10.0, ids["B"]: None}


def _seed(store: ModelStore) -> dict[str, str]:
    """A: 3 logins today, renewal in 30 days, 2 open issues, last NPS 9; B: no logins, one open issue."""
    ids = companies(store, "A", "B", renewalDate=[TODAY + timedelta(days=30), None])
    a, b = ids["A"], ids["B"]
    activities(store, [("enduser", f"u{i}", a, "login", datetime(2026, 3, 10, 9 + i), None) for i in range(3)])
    issues = {
        "open": ("Open", [a]),
        "closed": ("Closed", [a]),
        "wontfix": ("Won't Fix", [a, b]),
        "done": ("DONE", [b]),
        "no_status": (None, [a, b]),
    }
    store.upsert_arrow(
        "issue",
        pa.table(
            {
                "externalId": list(issues),
                "status": [s for s, _ in issues.values()],
                "companyIds": ['["' + '", "'.join(c) + '"]' for _, c in issues.values()],
            }
        ),
        "externalId",
    )
    store.upsert_arrow(
        "nps",
        pa.table(
            {
                "externalId": ["n1", "n2", "n3"],
                "companyId": [a, a, a],
                "score": [6, 9, 2],
                # The 2 is answered after today: not yet the last NPS.
                "date": [datetime(2026, 3, 1), datetime(2026, 3, 5), datetime(2026, 3, 12)],
            }
        ),
        "externalId",
    )
    return ids


HEALTH = HealthScoreConfig(
    (
        _input("usage", "metric", "logins", 2, (1, 4), (3, 10)),
        _input("renewal", "days_to_renewal", None, 1, (0, 0), (30, 5), (90, 10)),
        _input("issues", "open_issues", None, 1, (0, 10), (2, 5), (5, 0)),
        _input("nps", "last_nps", None, 1, (0, 0), (7, 6), (9, 10)),
    )
)


def _scores(store: ModelStore) -> dict[tuple[str, date], float | None]:
    return {
        (c, d): s for d, c, s in store.con.execute('SELECT "day", "companyId", score FROM health_scores').fetchall()
    }


@pytest.mark.all_catalogs
def test_weighted_inputs_per_company_with_missing_ones_left_out(store: ModelStore) -> None:
    ids = _seed(store)
    a, b = ids["A"], ids["B"]
    compute_metric(store, LOGINS, TODAY)
    result = compute_health_scores(store, HEALTH, (LOGINS,), TODAY)
    # A: (2*10 + 5 + 5 + 10) / 5; B: no logins scores 0 at weight 2, one open issue 10, no renewal nor NPS.
    assert _scores(store) == {(a, TODAY): 8.0, (b, TODAY): 3.3}
    rows = store.con.execute(
        'SELECT "companyId", input, "value", score, weight FROM health_score_inputs WHERE "day" = ?', [TODAY]
    ).fetchall()
    assert {(c, i): (v, s, w) for c, i, v, s, w in rows} == {
        (a, "usage"): (3.0, 10.0, 2.0),
        (a, "renewal"): (30.0, 5.0, 1.0),
        (a, "issues"): (2.0, 5.0, 1.0),
        (a, "nps"): (9.0, 10.0, 1.0),
        (b, "usage"): (0.0, 0.0, 2.0),
        (b, "renewal"): (None, None, 1.0),
        (b, "issues"): (1.0, 10.0, 1.0),
        (b, "nps"): (None, None, 1.0),
    }
    assert dict(store.con.execute("SELECT id, h FROM company").fetchall()) == {a: 8.0, b: 3.3}
    assert result.companies == 2
    assert result.average == pytest.approx(5.65)
    assert result.metadata() == {
        "companies": 2,
        "changed": 2,
        "average_score": result.average,
        "scores_0_2": 0,
        "scores_2_4": 1,
        "scores_4_6": 0,
        "scores_6_8": 0,
        "scores_8_10": 1,
    }


@pytest.mark.all_catalogs
def test_a_rerun_the_same_day_overwrites_and_a_later_day_adds_history(store: ModelStore) -> None:
    ids = _seed(store)
    a, b = ids["A"], ids["B"]
    compute_metric(store, LOGINS, TODAY)
    compute_health_scores(store, HEALTH, (LOGINS,), TODAY)
    before = store.con.execute("SELECT * FROM health_score_inputs ORDER BY ALL").fetchall()
    again = compute_health_scores(store, HEALTH, (LOGINS,), TODAY)
    assert again.changed == 0
    assert store.con.execute("SELECT * FROM health_score_inputs ORDER BY ALL").fetchall() == before
    assert store.con.execute("SELECT count(*) FROM health_scores").fetchall() == [(2,)]

    tomorrow = TODAY + timedelta(days=1)
    store.upsert_arrow(
        "nps",
        pa.table({"externalId": ["n4"], "companyId": [b], "score": [9], "date": [datetime(2026, 3, 11)]}),
        "externalId",
    )
    compute_metric(store, LOGINS, tomorrow)
    later = compute_health_scores(store, HEALTH, (LOGINS,), tomorrow)
    # A: renewal now 29 days away scores 0: (20 + 0 + 5 + 10) / 5. B: its NPS of 9 joins: (0 + 10 + 10) / 4.
    assert _scores(store) == {(a, TODAY): 8.0, (b, TODAY): 3.3, (a, tomorrow): 7.0, (b, tomorrow): 5.0}
    assert later.changed == 2
    assert dict(store.con.execute("SELECT id, h FROM company").fetchall()) == {a: 7.0, b: 5.0}
    per_day = store.con.execute('SELECT "day", count(*) FROM health_score_inputs GROUP BY 1 ORDER BY 1').fetchall()
    assert per_day == [(TODAY, 8), (tomorrow, 8)]


def test_an_input_dropped_from_the_config_loses_its_rows_of_the_day(store: ModelStore) -> None:
    ids = _seed(store)
    compute_metric(store, LOGINS, TODAY)
    compute_health_scores(store, HEALTH, (LOGINS,), TODAY)
    fewer = HealthScoreConfig(HEALTH.inputs[1:])
    result = compute_health_scores(store, fewer, (LOGINS,), TODAY)
    inputs = {i for (i,) in store.con.execute("SELECT DISTINCT input FROM health_score_inputs").fetchall()}
    assert inputs == {"renewal", "issues", "nps"}
    # A without usage: (5 + 5 + 10) / 3; B: only its issues score.
    assert _scores(store) == {(ids["A"], TODAY): 6.7, (ids["B"], TODAY): 10.0}
    assert result.changed == 2


@pytest.mark.parametrize("health", [HealthScoreConfig(), HealthScoreConfig(HEALTH.inputs, enabled=False)])
def test_disabled_or_without_inputs_computes_nothing(store: ModelStore, health: HealthScoreConfig) -> None:
    _seed(store)
    result = compute_health_scores(store, health, (LOGINS,), TODAY)
    assert result == HealthResult(0, 0, None, {"0-2": 0, "2-4": 0, "4-6": 0, "6-8": 0, "8-10": 0})
    assert store.con.execute("SELECT count(*) FROM health_scores").fetchall() == [(0,)]
    assert store.con.execute("SELECT count(*) FROM company WHERE h IS NOT NULL").fetchall() == [(0,)]
