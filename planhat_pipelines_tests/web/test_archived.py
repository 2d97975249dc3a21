"""Archived records (``on_missing: archive``) are hidden from the web app's lists and totals; a profile still opens.

A small store of its own: a live company with a live and an archived license, a live and an archived end user;
an archived company with a license and the only ``custom.legacy`` field; an archived churn record. The derived
company fields are refreshed after archiving, as a sync does in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from planhat_pipelines.config import Config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.web.app import create_app
from planhat_pipelines_tests.web.conftest import demo_config_in

TODAY = date.today()


def _build(folder: Path) -> Config:
    config = demo_config_in(folder)
    started, ends = TODAY - timedelta(days=100), TODAY + timedelta(days=200)
    with ModelStore(config.store) as store:
        store.upsert_arrow(
            "company",
            pa.table({"externalId": ["c-live", "c-gone"], "name": ["Live Co", "Gone Co"], "owner": ["ann", "zed"]}),
            "externalId",
        )
        ids = dict(store.con.execute('SELECT "externalId", id FROM company').fetchall())
        live, gone = ids["c-live"], ids["c-gone"]
        store.upsert_arrow(
            "license",
            pa.table(
                {
                    "externalId": ["l-live", "l-archived", "l-of-gone"],
                    "companyId": [live, live, gone],
                    "arr": [1200.0, 600.0, 5000.0],
                    "fromDate": [started] * 3,
                    "toDate": [ends] * 3,
                }
            ),
            "externalId",
        )
        store.upsert_arrow(
            "enduser",
            pa.table({"externalId": ["u-live", "u-gone"], "companyId": [live, live], "email": ["a@x.io", "b@x.io"]}),
            "externalId",
        )
        # A churn record naming the live company's running license: archived, it churns nothing.
        store.upsert_arrow(
            "churn",
            pa.table({"externalId": ["ch-1"], "companyId": [live], "date": [TODAY - timedelta(days=5)]}),
            "externalId",
        )
        store.con.execute("""UPDATE company SET custom = '{"legacy": 1}' WHERE "externalId" = 'c-gone'""")
        for table, key in (("company", "c-gone"), ("license", "l-archived"), ("enduser", "u-gone"), ("churn", "ch-1")):
            store.con.execute(f'UPDATE {table} SET _archived_at = now() WHERE "externalId" = ?', [key])
        store.refresh_company_fields(TODAY)
    return config


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(create_app(_build(tmp_path_factory.mktemp("archived")))) as test_client:
        yield test_client


def test_companies_list_total_and_filter_choices_leave_out_the_archived_company(client: TestClient) -> None:
    table = client.get("/api/companies").json()["table"]
    assert [row["key"] for row in table["rows"]] == ["c-live"]
    assert table["total"] == 1
    assert table["owners"] == ["ann"]
    assert "Gone Co" not in client.get("/companies").text
    assert client.get("/api/companies?q=Gone").json()["table"]["total"] == 0


def test_portfolio_counts_neither_the_archived_company_nor_the_archived_license(client: TestClient) -> None:
    data = client.get("/api/portfolio").json()["portfolio"]
    assert data["companies"] == 1
    # The live company's ARR is its live license's: the archived license (600) and company (5000) count nowhere.
    assert data["arr"] == 1200
    assert data["by_status"] == {"customer": 1}  # not canceled: the archived churn record churns nothing
    assert [r["companies"] for r in data["renewals"]] == [0, 0]
    assert data["unscored"] == 1
    assert data["arr_history"][-1][1] == 1200


def test_explorer_leaves_out_archived_records_and_their_custom_fields(client: TestClient) -> None:
    companies = client.get("/api/explorer?model=company&col=name").json()["explorer"]
    assert companies["rows"] == [["Live Co"]] and companies["total"] == 1
    assert companies["custom_fields"] == []
    licenses = client.get("/api/explorer?model=license&group=companyId&agg=sum:arr").json()["explorer"]
    # The live company's 1200 without its archived license's 600; the archived company's license is itself live.
    assert sorted(row[1] for row in licenses["rows"]) == [1200, 5000]
    series = client.get("/api/explorer?model=license&time=fromDate&bucket=month").json()["explorer"]["series"]
    assert [value for _, value in series[0]["points"]] == [2]


def test_archived_company_profile_opens_marked_archived(client: TestClient) -> None:
    company = client.get("/api/companies/c-gone").json()["profile"]["company"]
    assert company["name"] == "Gone Co" and company["archived_at"] is not None
    page = client.get("/companies/c-gone")
    assert page.status_code == 200
    assert 'id="company-archived"' in page.text and f"Archived {company['archived_at'][:10]}" in page.text


def test_live_company_profile_lists_live_records_only(client: TestClient) -> None:
    profile = client.get("/api/companies/c-live").json()["profile"]
    assert profile["company"]["archived_at"] is None
    assert profile["licenses"]["total"] == 1 and profile["licenses"]["rows"][0]["arr"] == 1200
    assert [u["email"] for u in profile["end_users"]["users"]] == ["a@x.io"]
    assert [c["total"] for c in profile["related"] if c["name"] == "churns"] == [0]
    assert profile["revenue"]["arr"][-1][1] == 1200
    assert 'id="company-archived"' not in client.get("/companies/c-live").text
