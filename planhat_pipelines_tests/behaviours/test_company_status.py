"""Company status and revenue from licenses and Churn records (store/derived.py), on the real store.

Each case is one company ``c`` with licenses ``l0``, ``l1``, … and Churn records naming licenses by those keys
(translated to native ids), refreshed on ``TODAY``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.behaviours.seed import ids, seed

TODAY = date(2026, 6, 1)
D = date


def _status(store: ModelStore, licenses: list[dict[str, Any]], churns: list[dict[str, Any]]) -> tuple[Any, ...]:
    seed(store, "company", [{"externalId": "c"}])
    cid = ids(store, "company")["c"]
    if licenses:
        seed(store, "license", [{"externalId": f"l{i}", "companyId": cid, **lic} for i, lic in enumerate(licenses)])
    native = ids(store, "license")
    if churns:
        rows = [
            {
                "externalId": f"ch{i}",
                "companyId": cid,
                "date": ch.get("date"),
                "licenseIds": None if ch.get("names") is None else [native[k] for k in ch["names"]],
            }
            for i, ch in enumerate(churns)
        ]
        seed(store, "churn", rows)
    store.refresh_company_fields(TODAY)
    row = store.con.execute(
        'SELECT mrr, arr, "renewalDate", "customerFrom", "customerTo", status FROM company'
    ).fetchall()[0]
    return (str(row[0]), str(row[1]), *row[2:])


RUNNING = {"fromDate": D(2026, 1, 1), "toDate": D(2026, 12, 31), "mrr": "100"}

CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], tuple[Any, ...]]] = {
    "prospect-no-license": ([], [], ("0.000000", "0.000000", None, None, None, "prospect")),
    "coming-first-license-in-the-future": (
        [{"fromDate": D(2026, 9, 1), "toDate": D(2027, 8, 31), "mrr": "50"}],
        [],
        ("0.000000", "0.000000", None, D(2026, 9, 1), None, "coming"),
    ),
    "customer-running-license": (
        [RUNNING],
        [],
        ("100.000000", "1200.000000", D(2026, 12, 31), D(2026, 1, 1), None, "customer"),
    ),
    # Churned but still running: canceled, keeps its revenue until the period ends, no renewal date.
    "canceled-renewal-status-lost-while-running": (
        [{**RUNNING, "renewalStatus": " Lost "}],
        [],
        ("100.000000", "1200.000000", None, D(2026, 1, 1), None, "canceled"),
    ),
    "canceled-churn-record-names-the-license": (
        [RUNNING],
        [{"date": D(2026, 5, 1), "names": ["l0"]}],
        ("100.000000", "1200.000000", None, D(2026, 1, 1), None, "canceled"),
    ),
    "canceled-churn-record-names-none": (
        [RUNNING],
        [{"date": D(2026, 5, 1), "names": []}],
        ("100.000000", "1200.000000", None, D(2026, 1, 1), None, "canceled"),
    ),
    "canceled-churn-record-with-null-license-ids": (
        [RUNNING],
        [{"date": D(2026, 5, 1), "names": None}],
        ("100.000000", "1200.000000", None, D(2026, 1, 1), None, "canceled"),
    ),
    "lost-after-the-churned-period-ended": (
        [{"fromDate": D(2025, 1, 1), "toDate": D(2025, 12, 31), "arr": "1200"}],
        [{"date": D(2025, 10, 1), "names": []}],
        ("0.000000", "0.000000", None, D(2025, 1, 1), D(2025, 12, 31), "lost"),
    ),
    # The bug in issue 17: a lost license that auto-renews was read as running forever (customer, 50/600).
    "lost-license-with-auto-renews-does-not-run": (
        [
            {
                "fromDate": D(2024, 1, 1),
                "toDate": D(2025, 1, 1),
                "mrr": "50",
                "autoRenews": True,
                "renewalStatus": "lost",
            }
        ],
        [],
        ("0.000000", "0.000000", None, D(2024, 1, 1), D(2025, 1, 1), "lost"),
    ),
    "named-license-with-auto-renews-stops-at-its-to-date": (
        [{"fromDate": D(2025, 1, 1), "toDate": D(2026, 3, 31), "mrr": "50", "autoRenews": True}],
        [{"date": D(2026, 2, 1), "names": ["l0"]}],
        ("0.000000", "0.000000", None, D(2025, 1, 1), D(2026, 3, 31), "lost"),
    ),
    # A returning customer: the churn (naming none) was before the new license started, so it is untouched.
    "churn-before-a-later-license-stays-customer": (
        [
            {"fromDate": D(2023, 1, 1), "toDate": D(2023, 12, 31), "mrr": "10"},
            {"fromDate": D(2025, 1, 1), "toDate": D(2026, 12, 31), "mrr": "20"},
        ],
        [{"date": D(2023, 12, 1), "names": []}],
        ("20.000000", "240.000000", D(2026, 12, 31), D(2023, 1, 1), None, "customer"),
    ),
    "churn-naming-none-skips-a-license-ended-before-it": (
        [
            {"fromDate": D(2024, 1, 1), "toDate": D(2024, 12, 31), "mrr": "10"},
            {"fromDate": D(2025, 1, 1), "toDate": D(2026, 12, 31), "mrr": "20", "autoRenews": True},
        ],
        [{"date": D(2026, 5, 1), "names": []}],
        ("20.000000", "240.000000", None, D(2024, 1, 1), None, "canceled"),
    ),
    # One churned and one un-churned license running: customer; both count in MRR, the renewal date is the
    # un-churned one's.
    "customer-beside-a-churned-running-license": (
        [
            {"fromDate": D(2026, 1, 1), "toDate": D(2026, 7, 31), "mrr": "10", "renewalStatus": "lost"},
            {"fromDate": D(2026, 1, 1), "toDate": D(2026, 12, 31), "arr": "360"},
        ],
        [],
        ("40.000000", "480.000000", D(2026, 12, 31), D(2026, 1, 1), None, "customer"),
    ),
    "canceled-beats-a-booked-next-license": (
        [{**RUNNING, "renewalStatus": "lost"}, {"fromDate": D(2027, 1, 1), "toDate": D(2027, 12, 31), "mrr": "5"}],
        [],
        ("100.000000", "1200.000000", None, D(2026, 1, 1), None, "canceled"),
    ),
    "churned-open-ended-license-runs-until-the-churn-date": (
        [{"fromDate": D(2025, 1, 1), "mrr": "30"}],
        [{"date": D(2026, 7, 15), "names": ["l0"]}],
        ("30.000000", "360.000000", None, D(2025, 1, 1), None, "canceled"),
    ),
    "churned-open-ended-license-ended-on-a-past-churn-date": (
        [{"fromDate": D(2025, 1, 1), "mrr": "30"}],
        [{"date": D(2026, 3, 15), "names": ["l0"]}],
        ("0.000000", "0.000000", None, D(2025, 1, 1), D(2026, 3, 15), "lost"),
    ),
    "open-ended-license-lost-by-status-only-has-ended": (
        [{"fromDate": D(2025, 1, 1), "mrr": "30", "renewalStatus": "LOST"}],
        [],
        ("0.000000", "0.000000", None, D(2025, 1, 1), None, "lost"),
    ),
    "undated-churn-naming-none-covers-nothing": (
        [RUNNING],
        [{"date": None, "names": []}],
        ("100.000000", "1200.000000", D(2026, 12, 31), D(2026, 1, 1), None, "customer"),
    ),
}


@pytest.mark.parametrize(("licenses", "churns", "expected"), list(CASES.values()), ids=list(CASES))
def test_company_status_and_revenue(
    store: ModelStore, licenses: list[dict[str, Any]], churns: list[dict[str, Any]], expected: tuple[Any, ...]
) -> None:
    assert _status(store, licenses, churns) == expected


def test_mrr_of_arr_only_licenses_stays_exact_decimal(store: ModelStore) -> None:
    licenses = [{"fromDate": D(2026, 1, 1), "arr": a} for a in ("100000.10", "200000.00", "44983.10")]
    mrr, arr, *_ = _status(store, licenses, [])
    assert (Decimal(mrr), Decimal(arr)) == (Decimal("28748.600000"), Decimal("344983.200000"))


def test_refresh_after_churn_is_a_no_op_the_second_time(store: ModelStore) -> None:
    _status(store, [RUNNING], [{"date": D(2026, 5, 1), "names": []}])
    assert store.refresh_company_fields(TODAY) == 0
