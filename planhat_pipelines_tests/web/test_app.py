"""The app as a whole: the portfolio and companies pages and their JSON, escaping, read-only access, the token."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from planhat_pipelines.cli import main
from planhat_pipelines.config import Config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore, StoreLocation
from planhat_pipelines.store.location import CATALOG_ALIAS
from planhat_pipelines.web.access import TOKEN_ENV, is_loopback, token_for_bind
from planhat_pipelines.web.app import create_app
from planhat_pipelines.web.pages.portfolio import portfolio
from planhat_pipelines.web.reader import StoreReader
from planhat_pipelines_tests.web.conftest import demo_config_in

SCRIPT = "<script>alert(1)</script>"


def _snapshots(config: Config) -> int:
    with ModelStore(config.store, read_only=True) as store:
        return int(store.con.execute(f"SELECT count(*) FROM {CATALOG_ALIAS}.snapshots()").fetchall()[0][0])


@pytest.fixture
def small_config(tmp_path: Path) -> Config:
    """A store of four companies (one named like a script tag) with known ARR, statuses and renewal dates."""
    config = demo_config_in(tmp_path)
    today = date.today()
    companies = pa.table(
        {
            "externalId": ["c-1", "c-2", "c-3", "c-4"],
            "name": [SCRIPT, "Acme 100% Corp", "Beta_co", "Gamma"],
            "owner": ["ann", "bob", "ann", None],
        }
    )
    with ModelStore(config.store) as store:
        store.upsert_arrow("company", companies, "externalId")
        # The derived fields (status, ARR, renewal date) as the license rules would set them.
        store.con.execute(
            "UPDATE company SET status = CASE \"externalId\" WHEN 'c-4' THEN 'lost' ELSE 'customer' END, "
            "arr = CASE \"externalId\" WHEN 'c-1' THEN 1200 WHEN 'c-2' THEN 2400 WHEN 'c-3' THEN 600 ELSE 0 END, "
            "mrr = arr / 12, h = CASE \"externalId\" WHEN 'c-1' THEN 9.5 WHEN 'c-2' THEN 3 END, "
            "\"renewalDate\" = CASE \"externalId\" WHEN 'c-1' THEN CAST(? AS DATE) WHEN 'c-2' THEN CAST(? AS DATE) END",
            [today + timedelta(days=10), today + timedelta(days=60)],
        )
    return config


def test_portfolio_numbers_html_and_json_agree(small_config: Config) -> None:
    with TestClient(create_app(small_config)) as client:
        data = client.get("/api/portfolio").json()["portfolio"]
        html = client.get("/").text
    assert data["companies"] == 4 and data["arr"] == 4200
    assert data["by_status"] == {"customer": 3, "lost": 1}
    assert [(r["days"], r["companies"], r["arr"]) for r in data["renewals"]] == [(30, 1, 1200), (90, 2, 3600)]
    assert dict(data["health_bands"]) == {"0-2": 0, "2-4": 1, "4-6": 0, "6-8": 0, "8-10": 1}
    assert data["unscored"] == 2
    assert re.search(r'id="total-arr">4,200<', html)
    assert 'id="sync-badge"' in html and "Syncs healthy" in html


def test_a_failing_section_turns_the_badge(small_config: Config) -> None:
    with ModelStore(small_config.store) as store:
        run = store.start_run("companies", "crm")
        store.finish_run(run, "failed", error="warehouse table crm_companies is missing")
        store.record_health(
            "nowhere", datetime.now(), "failing", error="not in the config"
        )  # a connection the config does not name
    with TestClient(create_app(small_config)) as client:
        failing = client.get("/api/portfolio").json()["portfolio"]["sync_health"]["failing"]
        html = client.get("/").text
    assert failing == [{"kind": "section", "name": "companies", "error": "warehouse table crm_companies is missing"}]
    assert "1 failing" in html and "crm_companies is missing" in html


def test_names_are_escaped_everywhere(small_config: Config) -> None:
    with TestClient(create_app(small_config)) as client:
        pages = [client.get(path).text for path in ("/companies", "/companies?q=script", "/companies?q=%3Cscript")]
    for html in pages:
        assert SCRIPT not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_companies_search_filter_sort_and_pages(small_config: Config) -> None:
    with TestClient(create_app(small_config)) as client:

        def names(query: str) -> list[str]:
            return [row["name"] for row in client.get(f"/api/companies?{query}").json()["table"]["rows"]]

        assert names("") == [SCRIPT, "Acme 100% Corp", "Beta_co", "Gamma"]  # by name: '<' sorts first
        assert names("sort=arr&desc=1") == ["Acme 100% Corp", SCRIPT, "Beta_co", "Gamma"]
        assert names("sort=health")[:2] == ["Acme 100% Corp", SCRIPT]  # no score last
        assert names("q=ACME") == ["Acme 100% Corp"]
        assert names("q=c-3") == ["Beta_co"]  # the key matches too
        assert names("q=100%25") == ["Acme 100% Corp"]  # % is a character, not a wildcard
        assert names("q=a_c") == ["Beta_co"] and names("q=e_c") == []  # _ is a character too
        assert names("status=lost") == ["Gamma"]
        assert names("owner=ann") == [SCRIPT, "Beta_co"]
        assert names("renewal_within=30") == [SCRIPT]
        assert names("q=x' OR 1=1 --") == []
        table = client.get("/api/companies?page=9").json()["table"]
        assert (table["total"], table["pages"], table["filters"]["page"]) == (4, 1, 1)  # past the end: the last page
        fragment = client.get("/companies?q=acme", headers={"HX-Request": "true"}).text
        assert 'id="companies-table"' in fragment and "<html" not in fragment
        assert "<html" in client.get("/companies?q=acme").text
        bad = client.get("/companies?sort=password")
        assert bad.status_code == 400 and "sort=&#39;password&#39; is not a column" in bad.text
        assert client.get("/api/companies?page=-1").json()["error"].startswith("page='-1' is not a positive")


def test_companies_paginate_the_demo(client: TestClient) -> None:
    first = client.get("/api/companies?sort=arr&desc=1").json()["table"]
    second = client.get("/api/companies?sort=arr&desc=1&page=2").json()["table"]
    assert first["total"] == 500 and first["pages"] == 10 and len(first["rows"]) == 50
    arrs = [r["arr"] for r in first["rows"] + second["rows"]]
    assert arrs == sorted(arrs, reverse=True)
    assert not {r["id"] for r in first["rows"]} & {r["id"] for r in second["rows"]}
    # Last activity comes from the usage series; sorting by it puts the most recent first.
    by_activity = client.get("/api/companies?sort=lastActivity&desc=1").json()["table"]["rows"]
    stamps = [r["last_activity"] for r in by_activity if r["last_activity"]]
    assert len(stamps) == 50 and stamps == sorted(stamps, reverse=True)


def test_pages_never_write_the_store(demo_config: Config, client: TestClient) -> None:
    before = _snapshots(demo_config)
    for path in ("/", "/api/portfolio", "/companies", "/companies?sort=lastActivity", "/syncs", "/okrs", "/explorer"):
        assert client.get(path).status_code == 200, path
    assert _snapshots(demo_config) == before


def test_static_files_are_served_by_the_app(client: TestClient) -> None:
    html = client.get("/").text
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert client.get(src).status_code == 200, src
    assert "https://" not in html.split("<main>")[0]  # no CDN in the head


def test_a_non_loopback_bind_needs_a_token(monkeypatch: pytest.MonkeyPatch, small_config: Config) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    assert token_for_bind("127.0.0.1") is None
    with pytest.raises(PlanhatPipelinesError, match=f"{TOKEN_ENV} is not set"):
        token_for_bind("0.0.0.0")
    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(PlanhatPipelinesError, match="shorter than 16"):
        token_for_bind("0.0.0.0")
    monkeypatch.delenv(TOKEN_ENV)
    assert main(["--config", str(small_config.path), "serve", "--host", "0.0.0.0", "--port", "1"]) == 2


def test_every_request_carries_the_token(small_config: Config) -> None:
    token = "s3cret-token-of-24-chars"
    with TestClient(create_app(small_config, token=token)) as client:
        for path in ("/", "/api/portfolio", "/companies", "/static/app.css"):
            refused = client.get(path)
            assert refused.status_code == 401 and "needs its token" in refused.text, path
        assert client.get("/", headers={"Authorization": "Bearer wrong-token-of-24-chars"}).status_code == 401
        assert client.get("/api/portfolio", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        # ?token= once: redirected without it, then the cookie carries it.
        first = client.get(f"/companies?q=acme&token={token}", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].endswith("/companies?q=acme")
        assert "httponly" in first.headers["set-cookie"].lower()
        assert client.get("/companies?q=acme").status_code == 200


def test_a_duckdb_file_catalog_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanhatPipelinesError, match="would block every sync"):
        StoreReader(StoreLocation.of_file(tmp_path / "store.duckdb"))


def test_no_store_yet_says_what_to_do(tmp_path: Path) -> None:
    config = demo_config_in(tmp_path)  # nothing synced: no catalog file
    with TestClient(create_app(config)) as client:
        page = client.get("/")
        data = client.get("/api/portfolio")
    assert page.status_code == 503 and "run a sync first" in page.text
    assert data.status_code == 503 and "run a sync first" in data.json()["error"]


def test_a_store_no_sync_has_upgraded_says_what_to_do(small_config: Config) -> None:
    with ModelStore(small_config.store) as store:
        store.atomic(lambda: store.con.execute("DROP TABLE usage_daily"))
    with TestClient(create_app(small_config)) as client:
        page = client.get("/companies")
    assert page.status_code == 503
    assert "written by an earlier release (no usage_daily yet)" in page.text and "run any sync once" in page.text
    # A writer's first open adds the table (with the series of the rows already stored), and the page works.
    ModelStore(small_config.store).close()
    with TestClient(create_app(small_config)) as client:
        assert client.get("/companies").status_code == 200


def test_the_portfolio_arr_history_ends_at_todays_total(demo_config: Config, demo_day: date) -> None:
    with StoreReader(demo_config.store).view() as store:  # as of the day the demo computed the companies' ARR
        data = portfolio(store, demo_config, demo_day)
    history = data.arr_history
    assert len(history) > 12 and history[-1][0] == demo_day
    assert history[-1][1] == pytest.approx(float(data.arr))  # the same rules as the companies' ARR, summed
    assert [d for d, _ in history[:-1]] == sorted(d for d, _ in history[:-1]) and all(
        d.day == 1 for d, _ in history[:-1]
    )
