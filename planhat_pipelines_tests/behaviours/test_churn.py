"""apply_churns on the real store: which licenses a Churn record sets lost, the company's status, idempotence."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from planhat_pipelines.behaviours import BehaviourResult, apply_churns
from planhat_pipelines.config import ChurnBehaviour
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.behaviours.seed import ids, seed, table_contents
from planhat_pipelines_tests.behaviours.warehouse import receive
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness

TODAY = date(2026, 6, 1)
D = date


def _seed(store: ModelStore, licenses: list[dict[str, Any]], churns: list[dict[str, Any]]) -> None:
    seed(store, "company", [{"externalId": "c"}])
    cid = ids(store, "company")["c"]
    seed(store, "license", [{"externalId": f"l{i}", "companyId": cid, **lic} for i, lic in enumerate(licenses)])
    store.refresh_company_fields(TODAY)  # as the License receive does; the churns below arrive without one
    native = ids(store, "license")
    rows = [
        {
            "externalId": f"ch{i}",
            "companyId": cid,
            "date": ch["date"],
            "licenseIds": None if ch["names"] is None else [native[k] for k in ch["names"]],
        }
        for i, ch in enumerate(churns)
    ]
    seed(store, "churn", rows)


def _lost(store: ModelStore) -> list[str]:
    sql = 'SELECT "externalId" FROM license WHERE lower(trim("renewalStatus")) = \'lost\' ORDER BY 1'
    return [r[0] for r in store.con.execute(sql).fetchall()]


def _status(store: ModelStore) -> tuple[Any, ...]:
    return tuple(store.con.execute("SELECT status, CAST(mrr AS VARCHAR) FROM company").fetchall()[0])


RUNNING = {"fromDate": D(2026, 1, 1), "toDate": D(2026, 12, 31), "mrr": "100"}
ENDED = {"fromDate": D(2024, 1, 1), "toDate": D(2024, 12, 31), "mrr": "10"}
LATER = {"fromDate": D(2026, 9, 1), "toDate": D(2027, 8, 31), "mrr": "10"}

CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], list[str], tuple[int, ...], tuple[Any, ...]]] = {
    # Named: only l0; l1 still runs un-churned, so the company stays a customer.
    "names-one-license": (
        [RUNNING, RUNNING],
        [{"date": D(2026, 5, 1), "names": ["l0"]}],
        ["l0"],
        (1, 1, 0, 0),
        ("customer", "200.000000"),
    ),
    # Names none: the license running on the churn date, not one that ended before or starts after it.
    "names-none-running-on-the-churn-date-only": (
        [RUNNING, ENDED, LATER],
        [{"date": D(2026, 5, 1), "names": []}],
        ["l0"],
        (1, 1, 0, 1),
        ("canceled", "100.000000"),
    ),
    "null-license-ids-is-names-none": (
        [RUNNING, ENDED],
        [{"date": D(2026, 5, 1), "names": None}],
        ["l0"],
        (1, 1, 0, 1),
        ("canceled", "100.000000"),
    ),
    # Already lost (any case, padded): left alone, counted as skipped; the company was canceled already.
    "already-lost-is-skipped": (
        [{**RUNNING, "renewalStatus": " LOST "}],
        [{"date": D(2026, 5, 1), "names": ["l0"]}],
        ["l0"],
        (1, 0, 1, 0),
        ("canceled", "100.000000"),
    ),
    "two-churns-one-license": (
        [RUNNING],
        [{"date": D(2026, 5, 1), "names": ["l0"]}, {"date": D(2026, 5, 2), "names": []}],
        ["l0"],
        (2, 1, 0, 1),
        ("canceled", "100.000000"),
    ),
}


@pytest.mark.parametrize(("licenses", "churns", "lost", "counts", "company"), list(CASES.values()), ids=list(CASES))
def test_churn_sets_the_named_or_running_licenses_lost(
    store: ModelStore,
    licenses: list[dict[str, Any]],
    churns: list[dict[str, Any]],
    lost: list[str],
    counts: tuple[int, ...],
    company: tuple[Any, ...],
) -> None:
    _seed(store, licenses, churns)
    result = apply_churns(store, ChurnBehaviour(), TODAY)
    assert (result.examined, result.changed, result.skipped_existing, result.companies_changed) == counts
    assert _lost(store) == lost
    assert _status(store) == company


def test_company_moves_to_canceled_then_lost_when_the_period_ends(store: ModelStore) -> None:
    _seed(store, [{**RUNNING, "autoRenews": True}], [])
    assert _status(store) == ("customer", "100.000000")
    # The churn arrives without a refresh (a plain upsert): the behaviour's run moves the company.
    cid = ids(store, "company")["c"]
    seed(store, "churn", [{"externalId": "ch", "companyId": cid, "date": D(2026, 5, 1), "licenseIds": []}])
    first = apply_churns(store, ChurnBehaviour(), TODAY)
    assert (first.changed, first.companies_changed) == (1, 1)
    assert _status(store) == ("canceled", "100.000000")  # keeps its revenue until the period ends
    later = apply_churns(store, ChurnBehaviour(), D(2027, 1, 15))
    # The license was lost already; the run's refresh moves the company to lost (its period ended).
    assert (later.changed, later.skipped_existing, later.companies_changed) == (0, 1, 1)
    assert _status(store) == ("lost", "0.000000")  # a lost license does not auto-renew


@pytest.mark.all_catalogs
def test_second_run_changes_nothing(store: ModelStore) -> None:
    _seed(store, [RUNNING, ENDED], [{"date": D(2026, 5, 1), "names": []}])
    apply_churns(store, ChurnBehaviour(), TODAY)
    before = {t: table_contents(store, t, leave_out=["recorded_at"]) for t in ("license", "company", "company_daily")}
    again = apply_churns(store, ChurnBehaviour(), TODAY)
    assert again == BehaviourResult("churn_licenses", examined=1, changed=0, skipped_existing=1, companies_changed=0)
    assert {t: table_contents(store, t, leave_out=["recorded_at"]) for t in before} == before


def test_disabled_writes_nothing(store: ModelStore) -> None:
    _seed(store, [RUNNING], [{"date": D(2026, 5, 1), "names": []}])
    before = {t: table_contents(store, t) for t in ("license", "company", "company_daily")}
    result = apply_churns(store, ChurnBehaviour(enabled=False), TODAY)
    assert result.metadata() == {"examined": 0, "changed": 0, "skipped_existing": 0, "companies_changed": 0}
    assert {t: table_contents(store, t) for t in before} == before
    assert _lost(store) == []


def test_a_churn_receive_refreshes_the_company(
    store: ModelStore, duckdb_harness: DuckDBHarness, tmp_path: Path
) -> None:
    _seed(store, [RUNNING], [])
    assert _status(store)[0] == "customer"
    receive(
        store,
        duckdb_harness,
        tmp_path,
        "churn",
        {"key": ["ch1"], "company_key": ["c"], "on": [D(2026, 5, 1)]},
        {"date": "on"},
    )
    # The receive refreshes for the real today; the license runs through 2026-12-31, so it reads canceled.
    assert _status(store)[0] == ("canceled" if date.today() <= D(2026, 12, 31) else "lost")


def test_a_churn_names_licenses_by_the_keys_the_warehouse_knows(store: ModelStore) -> None:
    # A warehouse's churn table holds its own license keys (externalId or sourceId), not Planhat's native ids.
    seed(store, "company", [{"externalId": "c"}])
    cid = ids(store, "company")["c"]
    seed(
        store,
        "license",
        [
            {"externalId": "LIC-1", "companyId": cid, **RUNNING},
            {"externalId": "LIC-2", "sourceId": "src-2", "companyId": cid, **RUNNING},
            {"externalId": "LIC-3", "companyId": cid, **RUNNING},
        ],
    )
    seed(
        store,
        "churn",
        [{"externalId": "ch", "companyId": cid, "date": D(2026, 5, 1), "licenseIds": ["LIC-1", "src-2"]}],
    )
    result = apply_churns(store, ChurnBehaviour(), TODAY)
    assert (result.examined, result.changed) == (1, 2)
    assert _lost(store) == ["LIC-1", "LIC-2"]
    assert _status(store) == ("customer", "300.000000")  # LIC-3 still runs un-churned


def test_the_churn_wins_over_the_warehouses_renewal_status(
    store: ModelStore, duckdb_harness: DuckDBHarness, tmp_path: Path
) -> None:
    # The warehouse keeps sending 'pending' for a license a churn named: a receive writes it, the behaviour (run
    # after every license receive) sets it back, and the company never reads customer in between.
    seed(store, "company", [{"externalId": "c"}])
    cid = ids(store, "company")["c"]
    license_rows: dict[str, list[Any]] = {
        "key": ["LIC-1"],
        "company_key": ["c"],
        "start": [D(2026, 1, 1)],
        "end": [D(2026, 12, 31)],
        "status": ["pending"],
    }
    fields = {"fromDate": "start", "toDate": "end", "renewalStatus": "status"}
    receive(store, duckdb_harness, tmp_path, "license", license_rows, fields)
    seed(store, "churn", [{"externalId": "ch", "companyId": cid, "date": D(2026, 5, 1), "licenseIds": ["LIC-1"]}])
    assert apply_churns(store, ChurnBehaviour(), TODAY).changed == 1
    store.con.execute("DELETE FROM crm_source_hashes")  # a full sync: every source row is compared again
    receive(store, duckdb_harness, tmp_path, "license", license_rows, fields)
    assert _lost(store) == []  # the warehouse's value was written...
    assert _status(store)[0] == "canceled"  # ...but the status reads the Churn record itself
    assert apply_churns(store, ChurnBehaviour(), TODAY).changed == 1
    assert _lost(store) == ["LIC-1"]
