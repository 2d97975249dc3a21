"""The health score's config refusals: each names its location and the fix."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from planhat_pipelines.config.health_score import check_health_inputs
from planhat_pipelines.errors import ConfigError
from planhat_pipelines_tests.builders import config_doc, parse

STEPS = [{"at": 0, "score": 0}, {"at": 10, "score": 10}]
METRICS = [
    {
        "name": "active_users",
        "model": "company",
        "source": "activities",
        "operation": "distinct_users",
        "window_days": 7,
    },
    {"name": "user_logins", "model": "enduser", "source": "activities", "operation": "count", "window_days": 7},
]


def _doc(tmp_path: Path, **health_input: Any) -> dict[str, Any]:
    item = {"name": "usage", "source": "metric", "thresholds": STEPS, **health_input}
    return config_doc(tmp_path, calculated_metrics=METRICS, health_score={"inputs": [item]})


@pytest.mark.parametrize(
    ("health_input", "where", "problem", "fix"),
    [
        (
            {"metric": "active_user"},
            "health_score.inputs[0].metric",
            "'active_user' is not a declared calculated metric",
            "did you mean 'active_users'? declare it under 'calculated_metrics:'",
        ),
        (
            {"metric": "user_logins"},
            "health_score.inputs[0].metric",
            "'user_logins' is a metric on enduser",
            "declare a metric with 'model: company'",
        ),
    ],
)
def test_a_metric_input_must_name_a_declared_company_metric(
    tmp_path: Path, health_input: dict[str, Any], where: str, problem: str, fix: str
) -> None:
    # Loading the config runs the check (the inputs against calculated_metrics:), so the file is refused.
    with pytest.raises(ConfigError) as caught:
        parse(_doc(tmp_path, **health_input), tmp_path)
    assert caught.value.where == where
    assert problem in caught.value.problem
    assert fix in caught.value.fix
    assert str(caught.value).startswith(f"{tmp_path / 'config.yaml'}: {where}: ")


def test_declared_company_metrics_and_fields_pass(tmp_path: Path) -> None:
    doc = _doc(tmp_path, metric="active_users")
    doc["health_score"]["inputs"] += [
        {"name": "arr", "source": "field", "field": "arr", "thresholds": STEPS},
        {"name": "seats", "source": "field", "field": "custom.seats", "thresholds": STEPS},
        {"name": "renewal", "source": "days_to_renewal", "thresholds": STEPS},
    ]
    config = parse(doc, tmp_path)
    check_health_inputs(config.health_score, config.calculated_metrics, config.path)
    assert [i.ref for i in config.health_score.inputs] == ["active_users", "arr", "custom.seats", None]


@pytest.mark.parametrize(
    ("health_input", "where", "message"),
    [
        (
            {"source": "field", "field": "arrr"},
            "health_score.inputs[0].field",
            "unknown Company field 'arrr'. Fix: did you mean 'arr'?",
        ),
        (
            {"source": "field", "field": "renewalDate"},
            "health_score.inputs[0].field",
            "Company.renewalDate is date, not a number. Fix: use 'source: days_to_renewal'",
        ),
        (
            {"metric": "active_users", "thresholds": [{"at": 10, "score": 10}, {"at": 0, "score": 0}]},
            "health_score.inputs[0].thresholds",
            "thresholds are not in ascending order of 'at' ([10.0, 0.0]). Fix: list each 'at' once, smallest first",
        ),
    ],
)
def test_the_file_refuses_unknown_fields_and_unordered_thresholds(
    tmp_path: Path, health_input: dict[str, Any], where: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(_doc(tmp_path, **health_input), tmp_path)
    assert caught.value.where == where
    assert message in str(caught.value)


def test_check_health_inputs_refuses_an_unknown_field_too(tmp_path: Path) -> None:
    # A config built in code (not parsed) is checked the same way.
    config = parse(_doc(tmp_path, metric="active_users"), tmp_path)
    bad = replace(config.health_score.inputs[0], source="field", ref="nmae")
    with pytest.raises(ConfigError, match=r"inputs\[0\]\.field: unknown Company field 'nmae'.*did you mean 'name'"):
        check_health_inputs(replace(config.health_score, inputs=(bad,)), config.calculated_metrics, config.path)
