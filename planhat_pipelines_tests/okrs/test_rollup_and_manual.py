"""Objective roll-up (weighted progress, worst status) and manual mode, on a real store and DuckDB warehouse."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from planhat_pipelines.config import Config, load_config
from planhat_pipelines.errors import ConfigError, PlanhatPipelinesError
from planhat_pipelines.okrs.current import current_values, history, objective_history
from planhat_pipelines.okrs.refresh import MODE_AUTOMATIC, MODE_MANUAL, check_in, refresh_key_result, set_mode
from planhat_pipelines.okrs.status import Status
from planhat_pipelines.store import ModelStore
from planhat_pipelines.warehouses.base import Warehouse
from planhat_pipelines_tests.builders import config_doc, duckdb_connection
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness
from planhat_pipelines_tests.okrs.conftest import MakeConfig, key_result_data, one_key_result

# Expected progress is 0.5 on this day for the 2026 key results of key_result_data.
MIDYEAR = datetime(2026, 7, 2, 9, 30)
HOUR = timedelta(hours=1)


@pytest.fixture
def warehouse(duckdb_harness: DuckDBHarness) -> Warehouse:
    return duckdb_harness.warehouse("wh")


@pytest.fixture
def config(make_config: MakeConfig, duckdb_harness: DuckDBHarness) -> Config:
    return make_config(
        duckdb_harness.connection_config(),
        [
            {
                "name": "grow",
                "key_results": [
                    key_result_data("leads", query="SELECT 300"),  # 100 -> 500: progress 0.5
                    key_result_data("deals", query="SELECT 20", start_value=0, target=100, weight=3),  # 0.2
                ],
            }
        ],
    )


def query_rows(store: ModelStore, key_result: str) -> int:
    return sum(1 for r in history(store, key_result) if r.source == "query")


# --- objective progress and status -----------------------------------------------------------------------
# Each key result: (name, weight, direction, checked-in value or None). Targets are 0 -> 100, so the value
# is the progress in percent; a kpi has no target.
ROLLUPS: list[tuple[str, list[tuple[str, float, str, float | None]], float | None]] = [
    ("equal_weights", [("a", 1, "increase", 50), ("b", 1, "increase", 100)], 0.75),
    ("unequal_weights", [("a", 3, "increase", 50), ("b", 1, "increase", 100)], 0.625),
    ("absent_weight_counts_as_one", [("a", 1, "increase", 20), ("b", 2, "increase", 80)], 0.6),
    ("kpi_left_out", [("a", 1, "increase", 40), ("k", 1, "kpi", 1000)], 0.4),
    ("without_value_left_out", [("a", 1, "increase", 40), ("b", 5, "increase", None)], 0.4),
    ("all_kpis", [("k", 1, "kpi", 10), ("l", 2, "kpi", 20)], None),
    ("no_values", [("a", 1, "increase", None)], None),
]


@pytest.mark.parametrize(("key_results", "expected"), [c[1:] for c in ROLLUPS], ids=[c[0] for c in ROLLUPS])
def test_objective_progress_is_weighted_over_key_results_with_progress(
    store: ModelStore,
    make_config: MakeConfig,
    key_results: list[tuple[str, float, str, float | None]],
    expected: float | None,
) -> None:
    items = []
    for name, weight, direction, _ in key_results:
        extra: dict[str, Any] = {"target": None} if direction == "kpi" else {"start_value": 0, "target": 100}
        if weight != 1:
            extra["weight"] = weight
        items.append(key_result_data(name, direction=direction, **extra))
    config = make_config(None, [{"name": "grow", "key_results": items}])
    assert [kr.weight for kr in config.key_results] == [float(w) for _, w, _, _ in key_results]
    for kr, (_, _, _, value) in zip(config.key_results, key_results, strict=True):
        if value is not None:
            check_in(store, kr, value, MIDYEAR)
    [grow] = current_values(store, config, MIDYEAR)
    assert grow.progress == (None if expected is None else pytest.approx(expected))


def test_objective_status_is_the_worst_and_progress_shows_beside_it(store: ModelStore, config: Config) -> None:
    leads, deals = config.key_results
    check_in(store, leads, 300, MIDYEAR)  # 0.5 of 0.5: On track
    check_in(store, deals, 40, MIDYEAR)  # 0.4 of 0.5: Behind
    [grow] = current_values(store, config, MIDYEAR)
    assert [s.status for s in grow.key_results] == [Status.ON_TRACK, Status.BEHIND]
    assert grow.status is Status.BEHIND
    assert grow.progress == pytest.approx((0.5 + 0.4 * 3) / 4)
    check_in(store, deals, 10, MIDYEAR + HOUR)  # 0.1 of 0.5: At risk
    [grow] = current_values(store, config, MIDYEAR + HOUR)
    assert grow.status is Status.AT_RISK
    assert grow.progress == pytest.approx((0.5 + 0.1 * 3) / 4)


def test_objective_history_charts_weighted_progress_over_time(
    store: ModelStore, warehouse: Warehouse, config: Config
) -> None:
    leads, deals = config.key_results
    refresh_key_result(store, warehouse, leads, MIDYEAR)  # leads 0.5
    refresh_key_result(store, warehouse, deals, MIDYEAR + HOUR)  # deals 0.2 (weight 3)
    check_in(store, leads, 500, MIDYEAR + 2 * HOUR)  # leads 1.0
    points = objective_history(store, config.objectives[0])
    assert [at for at, _ in points] == [MIDYEAR, MIDYEAR + HOUR, MIDYEAR + 2 * HOUR]
    assert [p for _, p in points] == pytest.approx([0.5, (0.5 + 0.6) / 4, (1.0 + 0.6) / 4])


# --- manual mode ---------------------------------------------------------------------------------------------
def test_a_manual_check_in_survives_the_next_refresh(store: ModelStore, warehouse: Warehouse, config: Config) -> None:
    kr = one_key_result(config)  # the query returns 300
    refresh_key_result(store, warehouse, kr, MIDYEAR)
    check_in(store, kr, 150.0, MIDYEAR + timedelta(minutes=10), manual=True)
    assert store.okr_modes() == {"leads": MODE_MANUAL}

    result = refresh_key_result(store, warehouse, kr, MIDYEAR + HOUR)
    assert result.skipped_manual and result.mode == MODE_MANUAL
    assert result.row is not None and (result.row.value, result.row.source) == (150.0, "checkin")
    assert query_rows(store, "leads") == 1  # no new query row
    [grow] = current_values(store, config, MIDYEAR + HOUR)
    leads = grow.key_results[0]
    assert leads.mode == MODE_MANUAL
    assert leads.current is not None and (leads.current.value, leads.current.source) == (150.0, "checkin")
    # The check-in in manual mode is in the history, with its source.
    assert [(r.source, r.value) for r in history(store, "leads")] == [("query", 300.0), ("checkin", 150.0)]


def test_switching_back_to_automatic_lets_the_next_refresh_overwrite(
    store: ModelStore, warehouse: Warehouse, config: Config
) -> None:
    kr = one_key_result(config)
    check_in(store, kr, 150.0, MIDYEAR, manual=True)
    refresh_key_result(store, warehouse, kr, MIDYEAR + HOUR)
    assert set_mode(store, kr, MODE_AUTOMATIC, MIDYEAR + HOUR + timedelta(minutes=5)) is True
    # Until the next refresh the check-in is still the latest value.
    current = current_values(store, config, MIDYEAR + HOUR)[0].key_results[0]
    assert current.mode == MODE_AUTOMATIC and current.current is not None and current.current.value == 150.0

    result = refresh_key_result(store, warehouse, kr, MIDYEAR + 2 * HOUR)
    assert not result.skipped_manual and result.row is not None and result.row.value == 300.0
    current = current_values(store, config, MIDYEAR + 2 * HOUR)[0].key_results[0]
    assert current.current is not None and (current.current.value, current.current.source) == (300.0, "query")
    assert [r.source for r in history(store, "leads")] == ["checkin", "query"]


def test_manual_mode_without_a_check_in_keeps_the_value_it_had(
    store: ModelStore, warehouse: Warehouse, config: Config
) -> None:
    kr = one_key_result(config)
    assert refresh_key_result(store, warehouse, kr, MIDYEAR).row is not None
    assert set_mode(store, kr, MODE_MANUAL, MIDYEAR + timedelta(minutes=1)) is True
    assert set_mode(store, kr, MODE_MANUAL, MIDYEAR + timedelta(minutes=2)) is False  # already manual: no row
    assert store.con.execute("SELECT count(*) FROM okr_modes").fetchone() == (1,)
    result = refresh_key_result(store, warehouse, kr, MIDYEAR + HOUR)
    assert result.skipped_manual and result.row is not None and result.row.recorded_at == MIDYEAR
    # A manual key result that never had a value: nothing stands.
    deals = one_key_result(config, "deals")
    set_mode(store, deals, MODE_MANUAL, MIDYEAR)
    assert refresh_key_result(store, warehouse, deals, MIDYEAR + HOUR).row is None
    assert history(store, "deals") == []


def test_manual_mode_ignores_query_rows_newer_than_the_switch(
    store: ModelStore, warehouse: Warehouse, config: Config
) -> None:
    kr = one_key_result(config)
    check_in(store, kr, 150.0, MIDYEAR, manual=True)
    # A refresh that was already past its mode check when the switch happened lands a row after it.
    set_mode(store, kr, MODE_AUTOMATIC, MIDYEAR + timedelta(minutes=1))
    refresh_key_result(store, warehouse, kr, MIDYEAR + timedelta(minutes=3))  # 300, recorded after ...
    set_mode(store, kr, MODE_MANUAL, MIDYEAR + timedelta(minutes=2))  # ... this switch back to manual
    current = current_values(store, config, MIDYEAR + HOUR)[0].key_results[0]
    assert current.current is not None and current.current.value == 150.0
    set_mode(store, kr, MODE_AUTOMATIC, MIDYEAR + HOUR)
    current = current_values(store, config, MIDYEAR + HOUR)[0].key_results[0]
    assert current.current is not None and current.current.value == 300.0


def test_a_plain_check_in_in_manual_mode_stands_too(store: ModelStore, warehouse: Warehouse, config: Config) -> None:
    kr = one_key_result(config)
    set_mode(store, kr, MODE_MANUAL, MIDYEAR)
    check_in(store, kr, 120.0, MIDYEAR + timedelta(minutes=1))
    check_in(store, kr, 180.0, MIDYEAR + timedelta(minutes=2))
    refresh_key_result(store, warehouse, kr, MIDYEAR + HOUR)
    current = current_values(store, config, MIDYEAR + HOUR)[0].key_results[0]
    assert current.current is not None and current.current.value == 180.0
    assert query_rows(store, "leads") == 0


def test_mode_persists_across_store_reopen(config: Config, warehouse: Warehouse) -> None:
    kr = one_key_result(config)
    with ModelStore(config.store) as store:
        check_in(store, kr, 150.0, MIDYEAR, manual=True)
    with ModelStore(config.store) as store:
        assert store.okr_modes() == {"leads": MODE_MANUAL}
        assert store.latest_okr_modes()["leads"].changed_at == MIDYEAR
        assert refresh_key_result(store, warehouse, kr, MIDYEAR + HOUR).skipped_manual
        set_mode(store, kr, MODE_AUTOMATIC, MIDYEAR + 2 * HOUR)
    with ModelStore(config.store, read_only=True) as store:
        assert store.okr_modes() == {"leads": MODE_AUTOMATIC}


def test_a_failed_manual_check_in_switches_nothing(store: ModelStore, config: Config) -> None:
    kr = one_key_result(config)
    with pytest.raises(PlanhatPipelinesError, match="is not a number"):
        check_in(store, kr, float("nan"), MIDYEAR, manual=True)
    assert store.okr_modes() == {}


def test_unknown_modes_are_refused(store: ModelStore, config: Config) -> None:
    with pytest.raises(PlanhatPipelinesError, match=r"key result 'leads'.*unknown mode 'hand'. Fix: use one of"):
        set_mode(store, one_key_result(config), "hand", MIDYEAR)
    with pytest.raises(ValueError, match="unknown OKR mode 'hand'"):
        store.set_okr_mode("leads", "hand", MIDYEAR)
    assert store.okr_modes() == {}


# --- weight: in the config ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("weight", "problem"),
    [
        (0, "must be a positive number, got 0"),
        (-2, "must be a positive number, got -2"),
        (float("nan"), "must be a positive number, got nan"),
        (float("inf"), "must be a positive number, got inf"),
    ],
)
def test_weight_refusals_name_the_field_and_the_fix(tmp_path: Path, weight: float, problem: str) -> None:
    doc = config_doc(
        tmp_path,
        connections={"wh": duckdb_connection(tmp_path / "wh.duckdb", create=True)},
        okrs=[{"name": "grow", "key_results": [key_result_data("leads", weight=weight)]}],
    )
    file = tmp_path / "config.yaml"
    file.write_text(yaml.safe_dump(doc))  # .nan and .inf, as a person would write them
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert info.value.where == "okrs[0].key_results[0].weight"
    assert f"{problem}. Fix: write 'weight: 1'" in str(info.value)


def test_weight_defaults_to_one_and_accepts_fractions(make_config: MakeConfig) -> None:
    config = make_config(
        None, [{"name": "grow", "key_results": [key_result_data("a"), key_result_data("b", weight=0.5)]}]
    )
    assert [kr.weight for kr in config.key_results] == [1.0, 0.5]
