"""The company profile (``/companies/{key}``): keys, numbers, charts, the usage range picker, escaping, empty states."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from planhat_pipelines.config import Config, KeyResult, Objective
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.okr_values import OkrValue
from planhat_pipelines.web.app import create_app
from planhat_pipelines.web.formatting import money, number
from planhat_pipelines.web.pages.profile_data import find_company, revenue
from planhat_pipelines.web.reader import StoreReader
from planhat_pipelines_tests.web.conftest import demo_config_in

SCRIPT = "<script>alert(1)</script>"
TODAY = date.today()
D1 = TODAY - timedelta(days=1)
OLD = TODAY - timedelta(days=200)


def chart(html: str, chart_id: str) -> str:
    """The markup of the chart in ``<div id="chart_id">`` (up to its ``</svg>``, or its empty message)."""
    found = re.search(rf'<div id="{chart_id}">(.*?)(</svg>|</p>)', html, re.S)
    assert found, f"no #{chart_id} on the page"
    return found.group(1)


def assert_drawn(html: str, chart_id: str) -> None:
    """The chart has a drawn line (a path with at least one segment) and points on it."""
    markup = chart(html, chart_id)
    assert re.search(r'<path class="series[^"]*" d="M [\d.]+,[\d.]+', markup), f"#{chart_id} drew no line"
    assert re.search(r'<circle class="point" data-date="\d{4}-\d\d-\d\d" data-value="[-\d.e]+"', markup), chart_id


# --- the demo store ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def busy(demo_config: Config) -> dict[str, Any]:
    """A demo company with licenses, a health score, an ARR history and usage in the last 30 days."""
    with ModelStore(demo_config.store, read_only=True) as store:
        cursor = store.con.execute(
            'SELECT c.id, c."externalId" FROM company c WHERE c.h IS NOT NULL AND c.arr > 0 '
            'AND c.id IN (SELECT "companyId" FROM license) AND c.id IN (SELECT "companyId" FROM company_daily) '
            'AND c.id IN (SELECT "companyId" FROM usage_daily WHERE kind = \'activities\' AND "day" >= ?) '
            "ORDER BY c.id LIMIT 1",
            [TODAY - timedelta(days=29)],
        )
        row = cursor.fetchall()
    assert row, "the demo store has no company with licenses, a score and recent usage"
    return {"id": row[0][0], "externalId": row[0][1]}


def test_id_and_external_id_open_the_same_profile(client: TestClient, busy: dict[str, Any]) -> None:
    by_external = client.get(f"/api/companies/{busy['externalId']}").json()["profile"]
    by_id = client.get(f"/api/companies/{busy['id']}").json()["profile"]
    assert by_external["company"]["id"] == by_id["company"]["id"] == busy["id"]
    assert by_external["company"] == by_id["company"]


def test_html_shows_the_numbers_of_the_json(client: TestClient, busy: dict[str, Any]) -> None:
    data = client.get(f"/api/companies/{busy['externalId']}").json()["profile"]
    html = client.get(f"/companies/{busy['externalId']}").text
    company = data["company"]
    assert company["arr"] > 0 and company["status"] and company["h"] is not None
    assert f'id="company-arr">{money(company["arr"])}<' in html
    assert f'id="company-status">{company["status"]}<' in html
    assert f'id="company-health">{number(company["h"], 1)}<' in html
    assert data["health"]["score"] == company["h"]
    assert data["health"]["inputs"], "the demo's health score has inputs"
    assert data["licenses"]["total"] == len(data["licenses"]["rows"]) > 0


def test_each_chart_draws(client: TestClient, busy: dict[str, Any]) -> None:
    html = client.get(f"/companies/{busy['externalId']}").text
    for chart_id in ("arr-chart", "usage-chart", "health-chart"):
        assert_drawn(html, chart_id)


def test_the_range_picker_swaps_only_the_usage(client: TestClient, busy: dict[str, Any]) -> None:
    url = f"/companies/{busy['externalId']}?range=30"
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<section class="panel" id="usage">')
    assert "<html" not in fragment.text and 'id="arr-chart"' not in fragment.text
    assert re.search(r'class="active" aria-current="true">30 days<', fragment.text)
    assert 'hx-target="#usage"' in fragment.text and 'hx-push-url="true"' in fragment.text
    # The links keep the key the visitor used, so the pushed URL is the page's own with ?range=.
    assert f'hx-get="/companies/{busy["externalId"]}?range=90"' in fragment.text
    assert_drawn(fragment.text, "usage-chart")
    profile = client.get(f"/api/companies/{busy['externalId']}?range=30").json()["profile"]
    usage, today = profile["usage"], date.fromisoformat(profile["today"])  # the page's day (a run may pass midnight)
    assert usage["range"] == "30" and usage["since"] == (today - timedelta(days=29)).isoformat()
    assert len(usage["activities"]) == 30


def test_a_bad_range_is_refused(client: TestClient, busy: dict[str, Any]) -> None:
    page = client.get(f"/companies/{busy['externalId']}?range=7")
    api = client.get(f"/api/companies/{busy['externalId']}?range=7")
    assert page.status_code == api.status_code == 400
    assert "range=&#39;7&#39; is not a usage range" in page.text
    assert "Fix: use range=30, range=90, range=365, range=all" in api.json()["error"]


def test_an_unknown_key_is_not_found(client: TestClient) -> None:
    page = client.get("/companies/no-such-co")
    api = client.get("/api/companies/no-such-co")
    assert page.status_code == api.status_code == 404
    message = api.json()["error"]
    assert "no company has the id, externalId or sourceId 'no-such-co'" in message and "/companies" in message
    assert "no company has the id, externalId or sourceId &#39;no-such-co&#39;" in page.text


def test_the_change_history_names_the_syncs(client: TestClient, busy: dict[str, Any]) -> None:
    history = client.get(f"/api/companies/{busy['externalId']}/history").json()["history"]
    sections = {change["section"] for change in history["changes"]}
    assert "companies" in sections  # the CRM section that inserted the company
    inserted = [c for c in history["changes"] if c["kind"] == "inserted"]
    assert inserted and inserted[0]["section"] == "companies" and inserted[0]["run_id"]
    html = client.get(f"/companies/{busy['externalId']}/history").text
    assert '<span class="sync-section">companies</span>' in html and "<html" in html
    fragment = client.get(f"/companies/{busy['externalId']}/history", headers={"HX-Request": "true"}).text
    assert '<span class="sync-section">companies</span>' in fragment and "<html" not in fragment
    # The profile itself does not wait for the change feed: it asks for it once shown.
    profile = client.get(f"/companies/{busy['externalId']}").text
    assert f'hx-get="/companies/{busy["externalId"]}/history"' in profile and "sync-section" not in profile


# --- a small store with exact cases ------------------------------------------------------------------------
@pytest.fixture
def small(tmp_path: Path) -> tuple[Config, dict[str, str]]:
    """Three companies: c-1 named like a script tag with nothing else, c-2 with end users and usage, c-3 whose
    keys collide with the others' (its externalId is c-1's id, its sourceId is c-2's externalId)."""
    config = demo_config_in(tmp_path)
    with ModelStore(config.store) as store:
        store.upsert_arrow(
            "company",
            pa.table({"externalId": ["c-1", "c-2", "c-3"], "name": [SCRIPT, "Busy Co", "Third"]}),
            "externalId",
        )
        ids = dict(store.con.execute('SELECT "externalId", id FROM company').fetchall())
        store.con.execute(
            "UPDATE company SET \"sourceId\" = CASE \"externalId\" WHEN 'c-2' THEN 'src-2' ELSE 'c-2' END, "
            '"externalId" = CASE "externalId" WHEN \'c-3\' THEN ? ELSE "externalId" END '
            "WHERE \"externalId\" IN ('c-2', 'c-3')",
            [ids["c-1"]],
        )
        store.upsert_arrow(
            "enduser",
            pa.table(
                {
                    "externalId": ["u-1", "u-2", "u-3"],
                    "email": ["one@busy.example", "two@busy.example", "three@busy.example"],
                    "firstName": ["Ada", "Bo", "Cy"],
                    "companyId": [ids["c-2"]] * 3,
                }
            ),
            "externalId",
        )
        users = dict(store.con.execute('SELECT "externalId", id FROM enduser').fetchall())
        # Partial aggregates as batches append them: one group (u-1, view, D1) in two rows, summed when read.
        rows = [
            ("activities", D1, "enduser", users["u-1"], "view", 2, 2.0, datetime.combine(D1, time(10))),
            ("activities", D1, "enduser", users["u-1"], "view", 3, 3.0, datetime.combine(D1, time(15))),
            ("activities", D1, "enduser", users["u-2"], "login", 1, 1.0, datetime.combine(D1, time(9))),
            ("activities", OLD, "enduser", users["u-3"], "view", 4, 4.0, datetime.combine(OLD, time(8))),
            ("metrics", D1, "company", ids["c-2"], "seats", 1, 4.0, datetime.combine(D1, time(6))),
            ("metrics", D1, "company", ids["c-2"], "seats", 1, 6.0, datetime.combine(D1, time(7))),
        ]
        for kind, day, model, record, series, n, total, last_at in rows:  # six fixed test rows
            store.con.execute(
                'INSERT INTO usage_daily (section, kind, "day", model, "recordId", "companyId", series, "rows", '
                "total, last_at) VALUES ('s', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [kind, day, model, record, ids["c-2"], series, n, total, last_at],
            )
    return config, ids


def test_keys_resolve_by_id_then_external_id_then_source_id(small: tuple[Config, dict[str, str]]) -> None:
    config, ids = small
    with TestClient(create_app(config)) as client:

        def found(key: str) -> str:
            response = client.get(f"/api/companies/{key}")
            assert response.status_code == 200, response.text
            return str(response.json()["profile"]["company"]["name"])

        assert found(ids["c-1"]) == SCRIPT  # c-1's id beats c-3's externalId
        assert found("c-2") == "Busy Co"  # c-2's externalId beats c-3's sourceId
        assert found("src-2") == "Busy Co"  # by sourceId
        assert found(ids["c-3"]) == "Third"


def test_names_are_escaped_and_empty_parts_say_so(small: tuple[Config, dict[str, str]]) -> None:
    config, _ = small
    with TestClient(create_app(config)) as client:
        page = client.get("/companies/c-1")
        data = client.get("/api/companies/c-1").json()["profile"]
    assert page.status_code == 200
    assert SCRIPT not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert data["licenses"]["rows"] == [] and data["licenses"]["total"] == 0
    assert data["usage"]["activities"] == [] and data["usage"]["dimensions"] == []
    assert "No licenses." in page.text and 'id="usage-empty"' in page.text and "No end users." in page.text
    assert "No health score computed" in page.text and "No changes kept" not in page.text
    for chart_id in ("arr-chart", "health-chart"):
        assert 'class="chart-empty"' in chart(page.text, chart_id)
    assert "None linked" in page.text


def test_usage_sums_the_partial_aggregates(small: tuple[Config, dict[str, str]]) -> None:
    config, _ = small
    with TestClient(create_app(config)) as client:
        profile = client.get("/api/companies/c-2").json()["profile"]
        usage, today = profile["usage"], date.fromisoformat(profile["today"])  # the page's day, as above
        page = client.get("/companies/c-2").text
        everything = client.get("/api/companies/c-2?range=all").json()["profile"]["usage"]
        people = client.get("/api/companies/c-2").json()["profile"]["end_users"]
    assert usage["since"] == (today - timedelta(days=89)).isoformat() and len(usage["activities"]) == 90
    assert dict(usage["activities"])[D1.isoformat()] == 6  # 2 + 3 + 1 activity rows
    assert dict(usage["active_users"])[D1.isoformat()] == 2
    assert sum(v for _, v in usage["activities"]) == 6  # the 200-day-old activity is out of range
    assert usage["dimensions"] == [{"name": "seats", "points": [[D1.isoformat(), 10.0]]}]
    assert f'data-date="{D1.isoformat()}" data-value="6"' in chart(page, "usage-chart")
    assert everything["since"] == OLD.isoformat() and dict(everything["activities"])[OLD.isoformat()] == 4
    assert [(u["email"], u["last_activity"]) for u in people["users"]] == [
        ("one@busy.example", datetime.combine(D1, time(15)).isoformat()),
        ("two@busy.example", datetime.combine(D1, time(9)).isoformat()),
        ("three@busy.example", datetime.combine(OLD, time(8)).isoformat()),
    ]


def test_a_key_result_naming_the_company_is_linked(small: tuple[Config, dict[str, str]]) -> None:
    config, _ = small
    key_result = KeyResult(
        name="busy_seats",
        objective="grow",
        title="Busy Co seats",
        connection="embedded",
        query="SELECT seats FROM accounts WHERE company_key = 'c-2'",
        start_value=0,
        target=20,
        start_date=date(2026, 1, 1),
        end_date=date(2026, 12, 31),
        direction="increase",
    )
    config = dataclasses.replace(config, objectives=(Objective("grow", "Grow Busy Co", (key_result,)),))
    with ModelStore(config.store) as store:
        store.append_okr_value(
            OkrValue("busy_seats", "grow", datetime(2026, 3, 1), 12.0, "query", 0.6, 0.2, "on_track", None)
        )
    with TestClient(create_app(config)) as client:
        linked = client.get("/api/companies/c-2").json()["profile"]["okrs"]
        unlinked = client.get("/api/companies/c-1").json()["profile"]["okrs"]
    assert [(k["objective_title"], k["title"], k["value"]) for k in linked] == [("Grow Busy Co", "Busy Co seats", 12.0)]
    assert unlinked == []


def test_the_revenue_history_follows_the_license_periods(tmp_path: Path) -> None:
    """Month by month from the first license: a license counts from its start until it ends, an auto-renewing one
    runs on past its end date, an ARR-only license adds a twelfth of its ARR to the MRR; today is the last point."""
    config = demo_config_in(tmp_path)
    with ModelStore(config.store) as store:
        store.upsert_arrow("company", pa.table({"externalId": ["c-1"], "name": ["Rev Co"]}), "externalId")
        company_id = store.con.execute("SELECT id FROM company").fetchall()[0][0]
        store.upsert_arrow(
            "license",
            pa.table(
                {
                    "externalId": ["l-1", "l-2"],
                    "companyId": [company_id] * 2,
                    "fromDate": [date(2025, 1, 15), date(2025, 3, 1)],
                    "toDate": [date(2025, 6, 30), date(2025, 5, 31)],
                    "mrr": [100.0, None],
                    "arr": [None, 2400.0],
                    "autoRenews": [False, True],
                }
            ),
            "externalId",
        )
    with StoreReader(config.store).view() as store:
        found = revenue(store, find_company(store, "c-1"), date(2025, 8, 10))
    assert [(d.isoformat(), v) for d, v in found.arr] == [
        ("2025-01-01", 0.0),
        ("2025-02-01", 1200.0),
        ("2025-03-01", 3600.0),
        ("2025-04-01", 3600.0),
        ("2025-05-01", 3600.0),
        ("2025-06-01", 3600.0),
        ("2025-07-01", 2400.0),  # l-1 ended on June 30; l-2 renews itself
        ("2025-08-01", 2400.0),
        ("2025-08-10", 2400.0),
    ]
    assert [v for _, v in found.mrr] == [0.0, 100.0, 300.0, 300.0, 300.0, 300.0, 200.0, 200.0, 200.0]


def test_a_key_with_a_slash_opens_its_profile_and_history(tmp_path: Path) -> None:
    config = demo_config_in(tmp_path)
    with ModelStore(config.store) as store:
        store.upsert_arrow("company", pa.table({"externalId": ["acme/emea"], "name": ["Acme EMEA"]}), "externalId")
    with TestClient(create_app(config)) as client:
        listed = client.get("/companies").text
        assert 'href="/companies/acme/emea"' in listed  # the table's link, as the browser follows it
        assert client.get("/api/companies/acme/emea").json()["profile"]["company"]["name"] == "Acme EMEA"
        history = client.get("/api/companies/acme/emea/history").json()
        assert history["company"]["name"] == "Acme EMEA" and history["history"]["total"] >= 1
