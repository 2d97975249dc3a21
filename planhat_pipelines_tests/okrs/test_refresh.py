"""Refresh and check-in against a real DuckDB warehouse and a real model store in tmp_path."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pytest

from planhat_pipelines.config import Config, KeyResult
from planhat_pipelines.errors import ConfigError, OkrQueryError, PlanhatPipelinesError, WarehouseError
from planhat_pipelines.okrs.current import current_values, find_key_result, history
from planhat_pipelines.okrs.refresh import check_in, refresh_key_result, single_number
from planhat_pipelines.okrs.status import Status
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.okr_values import OkrValue
from planhat_pipelines.warehouses.base import Warehouse
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness
from planhat_pipelines_tests.harness import WarehouseHarness
from planhat_pipelines_tests.okrs.conftest import MakeConfig, key_result_data, one_key_result

# 2026-07-02 is day 182 of the 364-day period 2026-01-01 .. 2026-12-31: expected progress is 0.5.
MIDYEAR = datetime(2026, 7, 2, 9, 30)
LEADS = pa.table({"n": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b", "c"]})


@pytest.fixture
def warehouse(duckdb_harness: DuckDBHarness) -> Warehouse:
    duckdb_harness.create_table("leads", LEADS)
    return duckdb_harness.warehouse("wh")


@pytest.fixture
def config(make_config: MakeConfig, duckdb_harness: DuckDBHarness) -> Config:
    return make_config(
        duckdb_harness.connection_config(),
        [
            {
                "name": "grow",
                "title": "Grow the pipeline",
                "key_results": [
                    # 100 -> 500: a query value of 300 is progress 0.5
                    key_result_data("leads", query="SELECT 300"),
                    key_result_data("churn", query="SELECT 7.0", start_value=10, target=4, direction="decrease"),
                ],
            },
            {
                "name": "health",
                "title": "Healthy customers",
                "key_results": [key_result_data("nps", query="SELECT 42", target=None, direction="kpi")],
            },
        ],
    )


def rows(store: ModelStore) -> list[tuple[object, ...]]:
    return store.con.execute(
        'SELECT key_result, objective, recorded_at, "value", source, progress, expected, status, error '
        "FROM okr_values ORDER BY recorded_at, rowid"
    ).fetchall()


def written(store: ModelStore, warehouse: Warehouse, kr: KeyResult, now: datetime) -> OkrValue:
    """Refresh in automatic mode: the row the refresh wrote."""
    result = refresh_key_result(store, warehouse, kr, now)
    assert not result.skipped_manual and result.row is not None
    return result.row


# --- refresh -------------------------------------------------------------------------------------
def test_refresh_records_value_progress_expected_and_status(
    store: ModelStore, warehouse: Warehouse, config: Config
) -> None:
    kr = replace(one_key_result(config), query="SELECT count(*) * 100 FROM leads")  # 300
    row = written(store, warehouse, kr, MIDYEAR)
    assert (row.value, row.progress, row.expected, row.status, row.source) == (300.0, 0.5, 0.5, "on_track", "query")
    assert rows(store) == [("leads", "grow", MIDYEAR, 300.0, "query", 0.5, 0.5, "on_track", None)]


def test_refresh_of_a_decreasing_target(store: ModelStore, warehouse: Warehouse, config: Config) -> None:
    row = written(store, warehouse, one_key_result(config, "churn"), MIDYEAR)  # 10 -> 4, now 7
    assert (row.value, row.progress, row.status) == (7.0, 0.5, "on_track")


def test_refresh_of_a_kpi_records_only_the_value(store: ModelStore, warehouse: Warehouse, config: Config) -> None:
    row = written(store, warehouse, one_key_result(config, "nps"), MIDYEAR)
    assert (row.value, row.progress, row.expected, row.status) == (42.0, None, None, None)


@pytest.mark.parametrize(
    ("sql", "value"),
    [
        ("SELECT 7", 7.0),
        ("SELECT CAST(7 AS TINYINT)", 7.0),
        ("SELECT CAST(7.25 AS DECIMAL(10, 2))", 7.25),
        ("SELECT CAST(7.5 AS FLOAT)", 7.5),
        ("SELECT sum(n) FROM leads", 6.0),  # HUGEINT in DuckDB
        ("WITH t AS (SELECT n FROM leads) SELECT max(n) FROM t", 3.0),
    ],
)
def test_every_numeric_type_is_read_as_a_float(
    store: ModelStore, warehouse: Warehouse, config: Config, sql: str, value: float
) -> None:
    row = written(store, warehouse, replace(one_key_result(config), query=sql), MIDYEAR)
    assert row.value == value


def test_timezone_aware_now_is_recorded_as_utc(store: ModelStore, warehouse: Warehouse, config: Config) -> None:
    stockholm_summer = timezone(timedelta(hours=2))
    row = written(store, warehouse, one_key_result(config), datetime(2026, 7, 2, 11, 30, tzinfo=stockholm_summer))
    assert row.recorded_at == MIDYEAR


@pytest.mark.parametrize(
    ("sql", "problem", "shown", "fix"),
    [
        ("SELECT n FROM leads WHERE n < 0", "returned no rows", "0 row(s) of column(s) [n int64]", "aggregate"),
        ("SELECT n FROM leads ORDER BY n LIMIT 2", "returned 2 rows instead of one", "[n int64]: (1,), (2,)", "single"),
        ("SELECT 1 AS a, 2 AS b", "returned 2 columns instead of one", "[a int32, b int32]: (1, 2)", "only the number"),
        ("SELECT CAST(NULL AS INTEGER) AS v", "returned NULL", "[v int32]: (None,)", "COALESCE"),
        ("SELECT sum(n) FROM leads WHERE n < 0", "returned NULL", ": (None,)", "COALESCE"),
        ("SELECT 'many' AS v", "returned a string value, not a number", "[v string]: ('many',)", "CAST"),
        ("SELECT TRUE AS v", "returned a bool value, not a number", "[v bool]: (True,)", "CAST"),
        ("SELECT 'nan'::DOUBLE AS v", "returned nan, not a finite number", "[v double]: (nan,)", "NULLIF"),
    ],
)
def test_bad_results_raise_show_what_came_back_and_are_recorded(
    store: ModelStore, warehouse: Warehouse, config: Config, sql: str, problem: str, shown: str, fix: str
) -> None:
    kr = replace(one_key_result(config), query=sql)
    with pytest.raises(OkrQueryError) as info:
        refresh_key_result(store, warehouse, kr, MIDYEAR)
    message = str(info.value)
    assert message.startswith("key result 'leads' (objective 'grow', connection 'wh'): the query ")
    assert problem in message
    assert shown in message
    assert fix in message.split("Fix:")[1]
    assert rows(store) == [("leads", "grow", MIDYEAR, None, "query", None, None, "error", message)]


def test_refused_sql_never_reaches_the_warehouse(
    store: ModelStore, warehouse: Warehouse, config: Config, duckdb_harness: DuckDBHarness
) -> None:
    kr = replace(one_key_result(config), query="DELETE FROM leads")
    with pytest.raises(OkrQueryError, match="contains DELETE, which is not read-only"):
        refresh_key_result(store, warehouse, kr, MIDYEAR)
    warehouse.close()
    assert duckdb_harness.fetch("SELECT count(*) FROM leads") == [(3,)]
    assert [r[7] for r in rows(store)] == ["error"]


def test_warehouse_errors_are_recorded_and_re_raised(store: ModelStore, warehouse: Warehouse, config: Config) -> None:
    kr = replace(one_key_result(config), query="SELECT count(*) FROM no_such_table")
    with pytest.raises(WarehouseError, match="connection 'wh', query: failed") as info:
        refresh_key_result(store, warehouse, kr, MIDYEAR)
    assert rows(store)[0][7:] == ("error", str(info.value))


def test_query_timeout_is_passed_to_the_warehouse(store: ModelStore, warehouse: Warehouse, config: Config) -> None:
    slow = "SELECT count(*) FROM range(100000000) a, range(100000) b WHERE a.range + b.range < 0"
    kr = replace(one_key_result(config), query=slow, timeout_seconds=0.2)
    with pytest.raises(WarehouseError, match=r"timed out after 0.2 s"):
        refresh_key_result(store, warehouse, kr, MIDYEAR)
    assert rows(store)[0][7] == "error"


def test_single_number_message_truncates_long_results(config: Config) -> None:
    table = pa.table({"n": list(range(1000))})
    with pytest.raises(OkrQueryError) as info:
        single_number(one_key_result(config), table)
    assert "returned 1000 rows" in str(info.value)
    assert "(4,), ..." in str(info.value)
    assert single_number(one_key_result(config), pa.table({"d": pa.array([Decimal("1.5")])})) == 1.5


# --- check-ins and the current value ---------------------------------------------------------------
def test_check_in_records_a_manual_value(store: ModelStore, config: Config) -> None:
    row = check_in(store, one_key_result(config), 200.0, MIDYEAR)  # progress 0.25, expected 0.5
    assert (row.source, row.value, row.progress, row.expected, row.status) == ("checkin", 200.0, 0.25, 0.5, "behind")
    assert history(store, "leads") == [row]


def test_check_in_refuses_non_numbers(store: ModelStore, config: Config) -> None:
    with pytest.raises(PlanhatPipelinesError, match=r"key result 'leads'.*is not a number"):
        check_in(store, one_key_result(config), float("nan"), MIDYEAR)
    assert rows(store) == []


def test_a_check_in_stands_until_the_next_successful_refresh(
    store: ModelStore, warehouse: Warehouse, config: Config
) -> None:
    kr = one_key_result(config)  # the query returns 300
    refresh_key_result(store, warehouse, kr, MIDYEAR)
    check_in(store, kr, 150.0, MIDYEAR + timedelta(minutes=10))

    def leads_now(at: datetime) -> tuple[float | None, str | None, bool]:
        summary = current_values(store, config, at)[0].key_results[0]
        assert summary.key_result == kr
        assert summary.current is not None
        return summary.current.value, summary.current.source, summary.failure is not None

    assert leads_now(MIDYEAR + timedelta(minutes=20)) == (150.0, "checkin", False)

    # A failed refresh is recorded but does not replace the check-in; the failure is reported.
    broken = replace(kr, query="SELECT NULL")
    with pytest.raises(OkrQueryError):
        refresh_key_result(store, warehouse, broken, MIDYEAR + timedelta(hours=1))
    assert leads_now(MIDYEAR + timedelta(hours=1)) == (150.0, "checkin", True)

    # The next successful refresh replaces it.
    refresh_key_result(store, warehouse, kr, MIDYEAR + timedelta(hours=2))
    assert leads_now(MIDYEAR + timedelta(hours=2)) == (300.0, "query", False)

    # And a later check-in overrides the query again.
    check_in(store, kr, 420.0, MIDYEAR + timedelta(hours=2, minutes=5))
    assert leads_now(MIDYEAR + timedelta(hours=3)) == (420.0, "checkin", False)
    assert [r.source for r in history(store, "leads")] == ["query", "checkin", "query", "query", "checkin"]


def test_rows_recorded_at_the_same_instant_go_to_the_one_written_last(store: ModelStore, config: Config) -> None:
    kr = one_key_result(config)
    check_in(store, kr, 120.0, MIDYEAR)
    check_in(store, kr, 130.0, MIDYEAR)
    current = current_values(store, config, MIDYEAR)[0].key_results[0].current
    assert current is not None and current.value == 130.0


def test_current_values_judge_for_the_day_asked_and_take_the_worst_status(
    store: ModelStore, warehouse: Warehouse, config: Config
) -> None:
    for kr in config.key_results:
        refresh_key_result(store, warehouse, kr, MIDYEAR)
    grow, health = current_values(store, config, MIDYEAR)
    assert [s.status for s in grow.key_results] == [Status.ON_TRACK, Status.ON_TRACK]
    assert grow.status is Status.ON_TRACK
    assert health.status is None  # only a KPI
    assert health.key_results[0].evaluation is not None and health.key_results[0].evaluation.value == 42.0

    # Four months on, without a new value, expected progress has risen: 0.5 done of ~0.83 expected.
    later = current_values(store, config, datetime(2026, 11, 1, tzinfo=UTC))[0]
    assert [s.status for s in later.key_results] == [Status.AT_RISK, Status.AT_RISK]
    assert later.status is Status.AT_RISK

    # One key result behind makes the objective Behind.
    check_in(store, one_key_result(config), 200.0, MIDYEAR)  # progress 0.25 of 0.5
    assert current_values(store, config, MIDYEAR)[0].status is Status.BEHIND


def test_current_values_without_any_value(store: ModelStore, warehouse: Warehouse, config: Config) -> None:
    summary = current_values(store, config, MIDYEAR)
    assert [(s.current, s.evaluation, s.failure) for o in summary for s in o.key_results] == [(None, None, None)] * 3
    assert [o.status for o in summary] == [None, None]
    with pytest.raises(OkrQueryError):
        refresh_key_result(store, warehouse, replace(one_key_result(config), query="SELECT 'x'"), MIDYEAR)
    failed = current_values(store, config, MIDYEAR)[0].key_results[0]
    assert failed.current is None and failed.failure is not None and "string" in (failed.failure.error or "")


def test_find_key_result(config: Config) -> None:
    kr: KeyResult = find_key_result(config, "churn")
    assert kr.direction == "decrease"
    with pytest.raises(ConfigError, match=r"okrs: has no key result 'nope'.*leads, churn, nps"):
        find_key_result(config, "nope")


# --- the same query shapes on every warehouse ------------------------------------------------------
@pytest.fixture
def leads_harness(harness: WarehouseHarness) -> WarehouseHarness:
    harness.create_table("leads", LEADS)
    return harness


@pytest.mark.parametrize(
    ("sql", "value"),
    [
        ("SELECT count(*) FROM leads", 3.0),
        ("SELECT sum(n) FROM leads", 6.0),
        ("WITH t AS (SELECT n FROM leads) SELECT max(n) FROM t", 3.0),
        ("SELECT count(*) FROM leads UNION ALL SELECT 0 FROM leads WHERE n < 0", 3.0),
        ("SELECT 7.25", 7.25),  # DECIMAL in DuckDB, NUMBER(3,2) in Snowflake, FLOAT64 in BigQuery
    ],
)
def test_good_query_shapes_on_every_warehouse(
    store: ModelStore, leads_harness: WarehouseHarness, config: Config, sql: str, value: float
) -> None:
    kr = replace(one_key_result(config), query=sql)
    row = written(store, leads_harness.warehouse("wh"), kr, MIDYEAR)
    assert row.value == pytest.approx(value)
    assert row.status is not None


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("SELECT n FROM leads WHERE n < 0", "returned no rows"),
        ("SELECT n FROM leads", "returned 3 rows instead of one"),
        ("SELECT 1 AS a, 2 AS b", "returned 2 columns instead of one"),
        ("SELECT max(n) FROM leads WHERE n < 0", "returned NULL"),
        ("SELECT 'many' AS v", "not a number"),
    ],
)
def test_bad_query_shapes_on_every_warehouse(
    store: ModelStore, leads_harness: WarehouseHarness, config: Config, sql: str, problem: str
) -> None:
    kr = replace(one_key_result(config), query=sql)
    with pytest.raises(OkrQueryError, match=problem):
        refresh_key_result(store, leads_harness.warehouse("wh"), kr, MIDYEAR)
    assert [r[7] for r in rows(store)] == ["error"]


@pytest.mark.parametrize(
    "sql", ["DELETE FROM leads WHERE TRUE", "DROP TABLE leads", "SELECT count(*) FROM leads; DROP TABLE leads"]
)
def test_refused_sql_never_reaches_any_warehouse(
    store: ModelStore, leads_harness: WarehouseHarness, config: Config, sql: str
) -> None:
    kr = replace(one_key_result(config), query=sql)
    warehouse = leads_harness.warehouse("wh")
    with pytest.raises(OkrQueryError, match="key result 'leads'"):
        refresh_key_result(store, warehouse, kr, MIDYEAR)
    warehouse.close()
    assert leads_harness.fetch("SELECT count(*) FROM leads") == [(3,)]
