"""convert_won_deals on the real store: only won deals convert, the mapping, never twice, the warehouse wins."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from planhat_pipelines.behaviours import BehaviourResult, convert_won_deals
from planhat_pipelines.config import WonDealBehaviour
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.behaviours.seed import ids, seed, table_contents
from planhat_pipelines_tests.behaviours.warehouse import company, receive
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness

TODAY = date(2026, 6, 1)
D = date
_LICENSE = (
    'SELECT "externalId", "opportunityId", CAST(mrr AS VARCHAR), CAST(arr AS VARCHAR), "fromDate", "toDate", '
    'product, currency, "renewalStatus" FROM license ORDER BY "externalId"'
)


def _licenses(store: ModelStore) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store.con.execute(_LICENSE).fetchall()]


def _opportunities(store: ModelStore, rows: list[dict[str, Any]]) -> dict[str, str]:
    cid = company(store)
    seed(store, "opportunity", [{"companyId": cid, **row} for row in rows])
    store.refresh_company_fields(TODAY)  # the company's fields as the last receive left them
    return ids(store, "opportunity")


WON = {"externalId": "o1", "status": " Closed Won ", "title": "Pro", "arr": "1200", "closeDate": D(2026, 3, 1)}


@pytest.mark.parametrize(
    ("opportunity", "expected"),
    [
        (WON, [("opp:o1", "o1", None, "1200.000000", D(2026, 3, 1), D(2027, 2, 28), "Pro", None, "pending")]),
        (
            {**WON, "status": "won", "mrr": "50", "arr": None},
            [("opp:o1", "o1", "50.000000", None, D(2026, 3, 1), D(2027, 2, 28), "Pro", None, "pending")],
        ),
        (
            {**WON, "status": "closed/won", "closeDate": None},
            [("opp:o1", "o1", None, "1200.000000", TODAY, D(2027, 5, 31), "Pro", None, "pending")],
        ),
        ({**WON, "status": "lost"}, []),
        ({**WON, "status": "open"}, []),
        ({**WON, "status": None}, []),
    ],
    ids=["won-arr-only-mrr-stays-null", "won-mrr", "won-without-close-date-starts-today", "lost", "open", "no-status"],
)
def test_only_won_opportunities_convert_with_the_mapping(
    store: ModelStore, opportunity: dict[str, Any], expected: list[tuple[Any, ...]]
) -> None:
    native = _opportunities(store, [opportunity])
    result = convert_won_deals(store, WonDealBehaviour(), TODAY)
    linked = [(row[0], native[row[1]] if row[1] else None, *row[2:]) for row in expected]
    assert _licenses(store) == linked
    assert (result.examined, result.changed, result.skipped_existing) == (len(expected),) * 2 + (0,)
    status = store.con.execute("SELECT status FROM company").fetchall()[0][0]
    assert status == ("customer" if expected and expected[0][4] <= TODAY else "prospect")
    assert result.companies_changed == (1 if expected else 0)


def test_custom_mapping_defaults_term_and_keys(store: ModelStore) -> None:
    native = _opportunities(
        store,
        [
            {**WON, "externalId": None, "sourceId": "sf-1"},  # no externalId: keyed by its native id
            {**WON, "externalId": "o2", "title": None},
            {**WON, "externalId": "o3", "companyId": None},  # no company: not examined
        ],
    )
    behaviour = WonDealBehaviour(
        fields={"arr": "arr", "product": "title"}, defaults={"product": "Base", "currency": "EUR"}, term_months=1
    )
    result = convert_won_deals(store, behaviour, TODAY)
    assert result == BehaviourResult("won_deal_license", examined=2, changed=2, skipped_existing=0, companies_changed=1)
    unkeyed = next(v for k, v in native.items() if k is None)
    # fromDate is not mapped: the close date; a null title takes the default product. (Hex ids sort before 'o'.)
    assert _licenses(store) == [
        (f"opp:{unkeyed}", unkeyed, None, "1200.000000", D(2026, 3, 1), D(2026, 3, 31), "Pro", "EUR", "pending"),
        ("opp:o2", native["o2"], None, "1200.000000", D(2026, 3, 1), D(2026, 3, 31), "Base", "EUR", "pending"),
    ]


@pytest.mark.all_catalogs
def test_second_run_creates_nothing(store: ModelStore) -> None:
    _opportunities(store, [WON, {**WON, "externalId": "o2", "status": "open"}])
    first = convert_won_deals(store, WonDealBehaviour(), TODAY)
    before = {t: table_contents(store, t, leave_out=["recorded_at"]) for t in ("license", "company", "company_daily")}
    again = convert_won_deals(store, WonDealBehaviour(), TODAY)
    assert (first.changed, again.changed, again.skipped_existing, again.companies_changed) == (1, 0, 1, 0)
    assert {t: table_contents(store, t, leave_out=["recorded_at"]) for t in before} == before


def test_disabled_writes_nothing(store: ModelStore) -> None:
    _opportunities(store, [WON])
    before = {t: table_contents(store, t) for t in ("license", "company", "company_daily")}
    result = convert_won_deals(store, WonDealBehaviour(enabled=False), TODAY)
    assert result == BehaviourResult("won_deal_license")
    assert {t: table_contents(store, t) for t in before} == before


def test_an_unknown_field_in_a_hand_built_behaviour_is_refused(store: ModelStore) -> None:
    _opportunities(store, [WON])
    with pytest.raises(
        PlanhatPipelinesError, match=r"behaviours\.won_deal_license\.fields\.arrr: .*did you mean 'arr'"
    ):
        convert_won_deals(store, WonDealBehaviour(fields={"arrr": "arr"}), TODAY)
    assert store.count("license") == 0


# --- which wins: the warehouse's license for the same opportunity --------------------------------------------
def test_a_license_the_warehouse_sent_first_wins(
    store: ModelStore, duckdb_harness: DuckDBHarness, tmp_path: Path
) -> None:
    native = _opportunities(store, [WON, {**WON, "externalId": "o2"}])
    receive(
        store,
        duckdb_harness,
        tmp_path,
        "license",
        {"key": ["opp:o1"], "company_key": ["c"], "arr": [999.0]},
        {"arr": "arr"},
    )
    # o2's license is linked by opportunityId under a key of the warehouse's own.
    seed(
        store,
        "license",
        [{"externalId": "wh-7", "companyId": ids(store, "company")["c"], "opportunityId": native["o2"]}],
    )
    before = table_contents(store, "license")
    result = convert_won_deals(store, WonDealBehaviour(), TODAY)
    assert (result.examined, result.changed, result.skipped_existing) == (2, 0, 2)
    assert table_contents(store, "license") == before


def test_the_warehouse_updates_the_license_the_behaviour_made(
    store: ModelStore, duckdb_harness: DuckDBHarness, tmp_path: Path
) -> None:
    native = _opportunities(store, [WON])
    convert_won_deals(store, WonDealBehaviour(), TODAY)
    (made,) = store.con.execute("SELECT id FROM license").fetchall()[0]
    receive(
        store,
        duckdb_harness,
        tmp_path,
        "license",
        {"key": ["opp:o1"], "company_key": ["c"], "arr": [999.0], "product": ["Enterprise"]},
        {"arr": "arr", "product": "product"},
    )
    # The same record, the warehouse's values win field by field; the rest (the link, the dates) stays.
    assert store.con.execute("SELECT id FROM license").fetchall() == [(made,)]
    assert _licenses(store) == [
        ("opp:o1", native["o1"], None, "999.000000", D(2026, 3, 1), D(2027, 2, 28), "Enterprise", None, "pending")
    ]
    assert convert_won_deals(store, WonDealBehaviour(), TODAY).changed == 0
    assert store.con.execute("SELECT CAST(arr AS VARCHAR) FROM company").fetchall() == [("999.000000",)]
