"""``/okrs``: objectives and key results, bars coloured by status, expected progress, value history, check-ins."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from planhat_pipelines.config import Config
from planhat_pipelines.okrs.current import find_key_result
from planhat_pipelines.okrs.refresh import check_in
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.okr_values import SOURCE_QUERY, STATUS_ERROR, OkrValue
from planhat_pipelines.web.app import create_app
from planhat_pipelines.web.pages.okrs import bar_percent
from planhat_pipelines_tests.builders import duckdb_connection, key_result, objective, write_config

TITLE = "Leads <b>won</b>"


def _config(tmp_path: Path) -> Config:
    """Key results running from 50 days ago to 50 days ahead (expected progress today: exactly 0.5), 0 -> 100."""
    today = datetime.now(UTC).date()
    period = {
        "start_value": 0,
        "target": 100,
        "start_date": str(today - timedelta(50)),
        "end_date": str(today + timedelta(50)),
    }
    grow = objective(
        key_result("on_track", title=TITLE, weight=2, **period),
        key_result("behind", **period),
        key_result("at_risk", **period),
        key_result("kpi", direction="kpi", target=None, start_date=period["start_date"], end_date=period["end_date"]),
        key_result("empty", **period),
        name="grow",
        title="Grow",
    )
    retain = objective(key_result("overshoot", **period), name="retain", title="Retain")
    return write_config(
        tmp_path, connections={"wh": duckdb_connection(tmp_path / "wh.duckdb", create=True)}, okrs=[grow, retain]
    )


def _query_row(config: Config, name: str, at: datetime, value: float | None, error: str | None = None) -> OkrValue:
    kr = find_key_result(config, name)
    status = STATUS_ERROR if error else None
    return OkrValue(kr.name, kr.objective, at, value, SOURCE_QUERY, None, None, status, error)


@pytest.fixture(scope="module")
def okr_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One key result in each band, a KPI, one without a value, one past its target; check-ins and a failure."""
    config = _config(tmp_path_factory.mktemp("okrs"))
    now = datetime.now(UTC).replace(tzinfo=None)
    store = ModelStore(config.store)
    try:
        store.append_okr_value(_query_row(config, "on_track", now - timedelta(days=3), 20))
        store.append_okr_value(_query_row(config, "on_track", now - timedelta(days=2), 40))
        check_in(store, find_key_result(config, "on_track"), 60, now - timedelta(days=1))
        store.append_okr_value(_query_row(config, "behind", now - timedelta(days=2), 40))
        store.append_okr_value(_query_row(config, "behind", now - timedelta(hours=1), None, "warehouse timed out"))
        check_in(store, find_key_result(config, "at_risk"), 10, now - timedelta(hours=2), manual=True)
        store.append_okr_value(_query_row(config, "kpi", now - timedelta(hours=2), 7.5))
        store.append_okr_value(_query_row(config, "overshoot", now - timedelta(hours=2), 150))
    finally:
        store.close()
    with TestClient(create_app(config)) as client:
        yield client


def _rows(html: str) -> dict[str, str]:
    """Each key result's table row, by name."""
    return dict(re.findall(r'<tr class="key-result" id="kr-(\w+)".*?>(.*?)</tr>', html, re.S))


def _bar(row: str) -> tuple[str, str, float, float] | None:
    """(class, data-status, width, expected position) of a row's progress bar; None without one."""
    bar = re.search(r'<div class="bar ([\w-]+)" data-status="(\w+)" style="width:([\d.]+)%"', row)
    expected = re.search(r'<div class="expected" style="left:([\d.]+)%"', row)
    if bar is None or expected is None:
        return None
    return bar.group(1), bar.group(2), float(bar.group(3)), float(expected.group(1))


def _chart(html: str, name: str) -> str:
    found = re.search(rf'<div class="kr-chart" data-key-result="{name}">(.*?)</div>', html, re.S)
    assert found is not None, name
    return found.group(1)


def _json_krs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {kr["name"]: kr for o in data["okrs"]["objectives"] for kr in o["key_results"]}


def test_bar_percent_clamps() -> None:
    assert (bar_percent(-0.2), bar_percent(0.4567), bar_percent(1.5), bar_percent(None)) == (0.0, 45.7, 100.0, None)


def test_bars_coloured_by_status_with_expected_marker(okr_client: TestClient) -> None:
    rows = _rows(okr_client.get("/okrs").text)
    assert _bar(rows["on_track"]) == ("on-track", "on_track", 60.0, 50.0)
    assert _bar(rows["behind"]) == ("behind", "behind", 40.0, 50.0)
    assert _bar(rows["at_risk"]) == ("at-risk", "at_risk", 10.0, 50.0)
    assert _bar(rows["overshoot"]) == ("on-track", "on_track", 100.0, 50.0)  # 150 % done: the bar stops at 100


def test_every_bar_class_matches_its_status(okr_client: TestClient) -> None:
    html = okr_client.get("/okrs").text
    bars = re.findall(r'<div class="bar ([\w-]+)" data-status="(\w+)"', html)
    assert {status for _, status in bars} == {"on_track", "behind", "at_risk"}
    assert all(css == status.replace("_", "-") for css, status in bars)


def test_kpi_and_missing_value_get_a_grey_bar(okr_client: TestClient) -> None:
    rows = _rows(okr_client.get("/okrs").text)
    assert _bar(rows["empty"]) is None and "no value yet" in rows["empty"]
    assert _bar(rows["kpi"]) is None and "KPI: no target" in rows["kpi"] and "7.50" in rows["kpi"]


def test_mode_error_and_source_shown(okr_client: TestClient) -> None:
    html = okr_client.get("/okrs").text
    rows = _rows(html)
    assert '<td class="mode">manual</td>' in rows["at_risk"]
    assert '<td class="mode">automatic</td>' in rows["on_track"]
    assert "check-in" in rows["on_track"]
    assert "Last refresh failed" in html and "warehouse timed out" in html
    krs = _json_krs(okr_client.get("/api/okrs").json())
    assert krs["behind"]["error"] == "warehouse timed out" and krs["behind"]["value"] == 40
    assert krs["on_track"]["error"] is None


def test_value_history_chart_marks_check_ins(okr_client: TestClient) -> None:
    html = okr_client.get("/okrs").text
    chart = _chart(html, "on_track")
    values = [float(v) for v in re.findall(r'<circle class="point"[^>]*data-value="([\d.]+)"', chart)]
    assert values == [20, 40, 60]
    assert chart.count('<g class="mark">') == 1 and "check-in" in chart
    assert '<g class="mark">' not in _chart(html, "behind")  # query values only: no mark
    assert _chart(html, "at_risk").count('<g class="mark">') == 1
    assert "chart-empty" in _chart(html, "empty")


def test_objective_roll_up(okr_client: TestClient) -> None:
    objectives = {o["name"]: o for o in okr_client.get("/api/okrs").json()["okrs"]["objectives"]}
    grow = objectives["grow"]
    # Weighted: on_track 0.6 x 2, behind 0.4, at_risk 0.1 (the KPI and the empty one left out).
    assert grow["progress"] == pytest.approx((0.6 * 2 + 0.4 + 0.1) / 4)
    assert (grow["status"], grow["bar_class"], grow["bar_width"]) == ("at_risk", "at-risk", 42.5)
    html = okr_client.get("/okrs").text
    section = re.search(r'<section class="panel objective" id="objective-grow".*?</section>', html, re.S)
    assert section is not None
    assert '<div class="bar at-risk" data-status="at_risk" style="width:42.5%">' in section.group(0)


def test_objective_filter(okr_client: TestClient) -> None:
    data = okr_client.get("/api/okrs?objective=retain").json()["okrs"]
    assert [o["name"] for o in data["objectives"]] == ["retain"]
    assert data["objective_names"] == ["grow", "retain"]
    html = okr_client.get("/okrs?objective=retain").text
    assert list(_rows(html)) == ["overshoot"]
    assert '<option value="retain" selected>' in html
    missing = okr_client.get("/api/okrs?objective=nope")
    assert missing.status_code == 404 and "grow, retain" in missing.json()["error"]
    assert okr_client.get("/okrs?objective=nope").status_code == 404


def test_titles_are_escaped(okr_client: TestClient) -> None:
    html = okr_client.get("/okrs").text
    assert TITLE not in html and "Leads &lt;b&gt;won&lt;/b&gt;" in html


def _assert_twins_agree(client: TestClient) -> int:
    """The page's bars show the JSON twin's numbers; returns how many bars were compared."""
    rows = _rows(client.get("/okrs").text)
    krs = _json_krs(client.get("/api/okrs").json())
    assert set(rows) == set(krs)
    compared = 0
    for name, kr in krs.items():
        bar = _bar(rows[name])
        if kr["bar_width"] is None:
            assert bar is None
            continue
        assert bar == (kr["bar_class"], kr["status"], kr["bar_width"], kr["expected_left"])
        compared += 1
    return compared


def test_json_twin_matches_the_page(okr_client: TestClient) -> None:
    assert _assert_twins_agree(okr_client) == 4


def test_demo_okrs_page(client: TestClient, demo_config: Config) -> None:
    response = client.get("/okrs")
    assert response.status_code == 200
    html = response.text
    for kr in demo_config.key_results:
        assert f'id="kr-{kr.name}"' in html
        assert '<circle class="point"' in _chart(html, kr.name)  # the demo refreshed every key result
    assert _assert_twins_agree(client) == len(demo_config.key_results)
    bars = re.findall(r'<div class="bar ([\w-]+)" data-status="(\w+)"', html)
    assert bars and all(css == status.replace("_", "-") for css, status in bars)
