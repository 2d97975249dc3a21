"""The change log on the web app: a company's "Sync changes" on its profile, each CRM section's newest changes
on /syncs and one record's changes with ``?section=&key=`` (the JSON twins carry the same rows)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from planhat_pipelines.config import Config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.web.pages.syncs import CHANGES_PER_SECTION


@pytest.fixture(scope="module")
def company(demo_config: Config) -> dict[str, Any]:
    """A demo company the ``companies`` section inserted, with its change-log rows as the store has them."""
    with ModelStore(demo_config.store, read_only=True) as store:
        row = store.con.execute(
            'SELECT c.id, c."externalId" FROM company c JOIN change_log l ON l.record_id = c.id '
            "WHERE l.section = 'companies' AND l.op = 'insert' ORDER BY c.id LIMIT 1"
        ).fetchall()
        assert row, "the demo's companies section logged no insert"
        changes = store.changes(record_id=row[0][0])
    return {"id": row[0][0], "externalId": row[0][1], "changes": changes}


def test_the_profile_shows_the_companys_sync_changes(client: TestClient, company: dict[str, Any]) -> None:
    data = client.get(f"/api/companies/{company['externalId']}").json()["profile"]
    rows = data["sync_changes"]
    assert len(rows) == len(company["changes"]) >= 1
    assert {r["record_id"] for r in rows} == {company["id"]}  # this company's rows only
    insert = next(r for r in rows if r["section"] == "companies" and r["op"] == "insert")
    assert insert["key"] == company["externalId"] and insert["run_id"]
    name = insert["fields"]["name"]
    assert name[0] is None and name[1]  # inserted: no old value, the new name
    html = client.get(f"/companies/{company['externalId']}").text
    panel = html.split('id="sync-changes"', 1)[1].split("</section>", 1)[0]
    assert panel.count('class="sync-change"') == len(rows)
    assert 'data-op="insert"' in panel and f'data-key="{company["externalId"]}"' in panel
    assert "<strong>name</strong>: " in panel and insert["run_id"] in panel


def test_the_syncs_page_shows_each_crm_sections_newest_changes(client: TestClient) -> None:
    sections = {s["name"]: s for s in client.get("/api/syncs").json()["syncs"]["sections"]}
    newest = sections["companies"]["changes"]
    assert 1 <= len(newest) <= CHANGES_PER_SECTION
    assert {c["section"] for c in newest} == {"companies"}
    assert [c["changed_at"] for c in newest] == sorted((c["changed_at"] for c in newest), reverse=True)
    assert all(s["changes"] == [] for s in sections.values() if s["domain"] == "usage")
    html = client.get("/syncs").text
    block = html.split('id="section-companies"', 1)[1].split('<div class="panel section"', 1)[0]
    assert block.count('class="sync-change"') == len(newest)


def test_section_and_key_show_one_records_changes(client: TestClient, company: dict[str, Any]) -> None:
    key = company["externalId"]
    record = client.get("/api/syncs", params={"section": "companies", "key": key}).json()["syncs"]["record"]
    assert (record["section"], record["key"]) == ("companies", key)
    assert record["changes"] and {(c["section"], c["key"]) for c in record["changes"]} == {("companies", key)}
    html = client.get("/syncs", params={"section": "companies", "key": key}).text
    panel = html.split('id="record-changes"', 1)[1].split("</section>", 1)[0]
    assert panel.count('class="sync-change"') == len(record["changes"])
    # An unknown key says so; without a key there is no record panel.
    empty = client.get("/syncs", params={"section": "companies", "key": "no-such-key"}).text
    assert "No changes kept for the key 'no-such-key'" in empty
    assert client.get("/api/syncs").json()["syncs"]["record"] is None
