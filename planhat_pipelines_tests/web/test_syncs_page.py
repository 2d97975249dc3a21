"""``/syncs``: connections and their credential health, each section's last runs, and the searchable rejected rows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from planhat_pipelines.config import Config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.web.app import create_app
from planhat_pipelines.web.pages.syncs import DEFAULT_FIX, PAGE_SIZE
from planhat_pipelines_tests.builders import crm_section, duckdb_connection, usage_section, write_config

SECRET = "pw-5f1e-never-shown"
SCRIPT = "<script>alert(1)</script>"


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """Two sections, a DuckDB and a Snowflake connection whose password (from the environment) is SECRET."""
    monkeypatch.setenv("WEB_TEST_SNOWFLAKE_PASSWORD", SECRET)
    snowflake = {
        "type": "snowflake",
        "account": "acme-eu1",
        "user": "PLANHAT_SYNC",
        "database": "ANALYTICS",
        "schema": "PLANHAT",
        "password": {"env": "WEB_TEST_SNOWFLAKE_PASSWORD"},
    }
    return write_config(
        tmp_path,
        connections={"wh": duckdb_connection(tmp_path / "wh.duckdb", create=True), "snow": snowflake},
        crm=[crm_section("companies"), crm_section("licenses", "crm_licenses", connection="snow")],
        usage=[usage_section("events")],
    )


def _rejects(keys: list[str], reasons: list[str], values: list[str | None] | None = None) -> pa.Table:
    return pa.table(
        {"key": keys, "reason": reasons, "value": values if values is not None else [f"v-{k}" for k in keys]},
        schema=pa.schema([("key", pa.string()), ("reason", pa.string()), ("value", pa.string())]),
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A store with exact cases: runs, health checks and rejects (one resolved), and the app over it.

    The password stays in the environment while the app serves, so a page that read it would show it.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _small(tmp_path_factory.mktemp("syncs"), monkeypatch)


def _small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    config = _config(tmp_path, monkeypatch)
    store = ModelStore(config.store)
    try:
        first = store.start_run("companies", "crm")
        store.record_rejects(
            "companies",
            first,
            _rejects(["gone"], ["field name: 'x' is not a date"]),
            resolve_others=True,
        )
        store.finish_run(first, "success", rows_read=5, inserted=4, rejected=1)
        second = store.start_run("companies", "crm")
        store.record_rejects(
            "companies",
            second,
            _rejects(
                [SCRIPT, "C-100", "c-200"],
                [
                    "duplicate key: column 'id' holds 'C-1' in 2 rows. Fix: make 'id' unique in the warehouse",
                    "field arr: 'abc' is not a number",
                    "field email: 'nope' is not an email address",
                ],
            ),
            resolve_others=True,  # resolves 'gone'
        )
        store.finish_run(second, "success", rows_read=12, inserted=3, updated=4, unchanged=2, rejected=3)
        failed = store.start_run("licenses", "crm")
        store.finish_run(failed, "failed", rows_read=0, error="warehouse unreachable. Fix: check the network")
        events = store.start_run("events", "usage")
        store.record_rejects(
            "events", events, _rejects(["7", "8"], ["missing date (occurred_at)", "strange"]), resolve_others=True
        )
        store.finish_run(events, "success", rows_read=100, inserted=98, rejected=2)
        store.record_health("wh", datetime(2026, 5, 1, 8), "ok")
        store.record_health("snow", datetime(2026, 5, 1, 7), "ok")
        store.record_health(
            "snow",
            datetime(2026, 5, 1, 9),
            "expiring",
            error="the key expires in 3 days",
            fix="rotate the key",
            expires_at=datetime(2026, 5, 4),
        )
    finally:
        store.close()
    with TestClient(create_app(config)) as client:
        yield client


def _cells(html: str, css: str) -> list[str]:
    return re.findall(rf'<td class="{css}">(.*?)</td>', html, re.S)


def test_connections_show_latest_health_and_location(small: TestClient) -> None:
    data = small.get("/api/syncs").json()["syncs"]
    by_name = {c["name"]: c for c in data["connections"]}
    assert by_name["snow"] == {
        "name": "snow",
        "type": "snowflake",
        "location": "acme-eu1 ANALYTICS.PLANHAT",
        "status": "expiring",
        "checked_at": "2026-05-01T09:00:00",
        "error": "the key expires in 3 days",
        "fix": "rotate the key",
        "expires_at": "2026-05-04T00:00:00",
    }
    assert by_name["wh"]["status"] == "ok" and by_name["wh"]["location"].endswith("wh.duckdb")
    html = small.get("/syncs").text
    assert '<span class="badge health-expiring">expiring</span>' in html
    assert "Fix: rotate the key" in html


def test_secrets_never_appear_on_any_page(small: TestClient) -> None:
    for url in ("/", "/syncs", "/api/syncs", "/api/portfolio", "/okrs", "/api/okrs"):
        response = small.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.text, url
    assert "acme-eu1" in small.get("/syncs").text  # the page does show where the connection points


def test_sections_list_their_last_runs_with_counts(small: TestClient) -> None:
    sections = {s["name"]: s for s in small.get("/api/syncs").json()["syncs"]["sections"]}
    assert list(sections) == ["companies", "licenses", "events"]
    companies = sections["companies"]
    assert [r["rows_read"] for r in companies["runs"]] == [12, 5]  # newest first
    newest = companies["runs"][0]
    assert (newest["inserted"], newest["updated"], newest["unchanged"], newest["rejected"]) == (3, 4, 2, 3)
    assert newest["duration_seconds"] is not None and newest["duration_seconds"] >= 0
    assert companies["open_rejects"] == 3 and sections["events"]["open_rejects"] == 2
    assert sections["licenses"]["runs"][0]["status"] == "failed"
    assert sections["events"]["domain"] == "usage"
    health = small.get("/api/syncs").json()["syncs"]["sync_health"]["failing"]
    assert health == [{"kind": "section", "name": "licenses", "error": "warehouse unreachable. Fix: check the network"}]
    html = small.get("/syncs").text
    assert "1 failing" in html and "warehouse unreachable" in html


def test_only_five_runs_per_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, monkeypatch)
    store = ModelStore(config.store)
    try:
        for n in range(7):
            store.finish_run(store.start_run("events", "usage"), "success", rows_read=n)
    finally:
        store.close()
    with TestClient(create_app(config)) as client:
        events = next(s for s in client.get("/api/syncs").json()["syncs"]["sections"] if s["name"] == "events")
        html = client.get("/syncs").text
    assert [r["rows_read"] for r in events["runs"]] == [6, 5, 4, 3, 2]
    assert html.count('<tr class="run"') == 5


def test_open_rejects_by_default_and_resolved_on_request(small: TestClient) -> None:
    open_ = small.get("/api/syncs").json()["syncs"]["rejects"]
    assert open_["total"] == 5
    assert "gone" not in {r["key"] for r in open_["rows"]}
    everything = small.get("/api/syncs?resolved=1").json()["syncs"]["rejects"]
    assert everything["total"] == 6
    gone = next(r for r in everything["rows"] if r["key"] == "gone")
    assert gone["resolved_at"] is not None
    assert small.get("/syncs?resolved=1").text.count('<tr class="reject resolved">') == 1


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        ("section=events", {"7", "8"}),
        ("key=c-", {"C-100", "c-200"}),  # case-insensitive contains
        ("key=C-1", {"C-100"}),
        ("reason=EMAIL", {"c-200"}),
        ("section=companies&reason=not", {"C-100", "c-200"}),
        ("section=events&key=c-", set()),
        ("key=%25", set()),  # a LIKE wildcard is just a character: no key holds '%'
        ("key=%27", set()),  # a quote is a bound value, not SQL
        ("section=nosuch", set()),
    ],
)
def test_rejects_search(small: TestClient, query: str, keys: set[str]) -> None:
    data = small.get(f"/api/syncs?{query}").json()["syncs"]["rejects"]
    assert {r["key"] for r in data["rows"]} == keys
    assert data["total"] == len(keys)
    assert small.get(f"/syncs?{query}").text.count('<tr class="reject">') == len(keys)


def test_reason_split_from_fix_and_offending_value_shown(small: TestClient) -> None:
    rows = {r["key"]: r for r in small.get("/api/syncs").json()["syncs"]["rejects"]["rows"]}
    duplicate = rows[SCRIPT]
    assert duplicate["reason"] == "duplicate key: column 'id' holds 'C-1' in 2 rows"
    assert duplicate["fix"] == "make 'id' unique in the warehouse"
    assert duplicate["value"] == f"v-{SCRIPT}"
    assert rows["c-200"]["fix"] == "Correct the email address in the warehouse."
    assert rows["7"]["fix"] == "Fill in the missing column in the warehouse."
    assert rows["8"]["fix"] == DEFAULT_FIX
    html = small.get("/syncs?section=companies&key=C-100").text
    assert _cells(html, "reason") == ["field arr: &#39;abc&#39; is not a number"]
    assert _cells(html, "value") == ["<code>v-C-100</code>"]


def test_reject_key_is_escaped(small: TestClient) -> None:
    html = small.get("/syncs").text
    assert SCRIPT not in html
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in html


def test_search_form_is_htmx_and_plain_html(small: TestClient) -> None:
    html = small.get("/syncs?key=C-1").text
    form = re.search(r"<form[^>]*>", html, re.S)
    assert form is not None
    for attribute in (
        'method="get"',
        'action="/syncs"',
        'hx-get="/syncs"',
        'hx-target="#rejects"',
        'hx-push-url="true"',
    ):
        assert attribute in form.group(0)
    for name in ("section", "key", "reason"):
        assert f'name="{name}"' in html
    assert 'name="key" value="C-1"' in html  # the search is echoed into the form
    assert '<div id="rejects">' in html and 'id="rejects-table"' in html


def test_htmx_search_gets_only_the_rejects_fragment(small: TestClient) -> None:
    fragment = small.get("/syncs?section=events", headers={"HX-Request": "true"}).text
    assert "<html" not in fragment and "<form" not in fragment
    assert 'id="rejects-table"' in fragment and fragment.count('<tr class="reject">') == 2
    restore = small.get("/syncs", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}).text
    assert "<html" in restore  # the back button after hx-push-url needs the whole page


def test_rejects_are_paginated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, monkeypatch)
    store = ModelStore(config.store)
    try:
        run = store.start_run("events", "usage")
        keys = [str(n) for n in range(2 * PAGE_SIZE + 7)]
        store.record_rejects(
            "events", run, _rejects(keys, ["missing date (occurred_at)"] * len(keys)), resolve_others=True
        )
        store.finish_run(run, "success", rejected=len(keys))
    finally:
        store.close()
    with TestClient(create_app(config)) as client:
        pages = [client.get(f"/api/syncs?page={n}").json()["syncs"]["rejects"] for n in (1, 2, 3, 4)]
        assert [len(p["rows"]) for p in pages] == [PAGE_SIZE, PAGE_SIZE, 7, 0]
        assert {p["total"] for p in pages} == {len(keys)} and {p["pages"] for p in pages} == {3}
        seen = [r["key"] for p in pages for r in p["rows"]]
        assert sorted(seen) == sorted(keys)  # every row once, on exactly one page
        html = client.get("/syncs?page=2&key=1").text
        assert "page=1" in html and "page=3" not in html  # links keep the search: key=1 matches fewer rows
        assert "key=1" in re.search(r'<a href="/syncs\?([^"]*)" hx-get', html).group(1)  # type: ignore[union-attr]
        bad = client.get("/api/syncs?page=zero")
        assert bad.status_code == 400 and "page=" in bad.json()["error"] and "Fix" in bad.json()["error"]
        assert client.get("/syncs?page=0").status_code == 400


def test_demo_syncs_page(client: TestClient, demo_config: Config) -> None:
    data = client.get("/api/syncs").json()["syncs"]
    names = [s.name for s in demo_config.crm] + [s.name for s in demo_config.usage]
    assert [s["name"] for s in data["sections"]] == names
    assert all(s["runs"] for s in data["sections"]), "the demo job runs every section"
    assert {c["name"] for c in data["connections"]} == set(demo_config.connections)
    html = client.get("/syncs").text
    assert html.count('<tr class="run"') == sum(len(s["runs"]) for s in data["sections"])
    # The JSON twin and the page show the same numbers: every run's rows read, in order.
    page_rows_read = re.findall(r'<tr class="run".*?</td>.*?</td>.*?</td>\s*<td class="num">([\d,]+)</td>', html, re.S)
    assert [int(n.replace(",", "")) for n in page_rows_read] == [
        r["rows_read"] for s in data["sections"] for r in s["runs"]
    ]
    assert html.count('<tr class="reject') == len(data["rejects"]["rows"])
