"""The change log's retention: ``store.change_log_days`` (default 14), pruned by the daily maintenance."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from planhat_pipelines.config import parse_config
from planhat_pipelines.config.errors import ConfigError
from planhat_pipelines.store import ModelStore, StoreLocation
from planhat_pipelines.store.maintenance import maintain

NOW = datetime(2026, 6, 30, 12, 0, 0)


def _add(store: ModelStore, key: str, at: datetime) -> None:
    store.write(
        "INSERT INTO change_log VALUES (?, 'companies', 'run-1', 'company', ?, ?, 'update', "
        """'{"name": {"old": "a", "new": "b"}}')""",
        [at, key, f"id-{key}"],
    )


def test_maintenance_prunes_rows_older_than_change_log_days_and_keeps_the_young(tmp_path: Path) -> None:
    days = 3  # not the default, so the setting (not a constant) is what maintenance reads
    base = StoreLocation.of_file(tmp_path / "store.sqlite")
    location = StoreLocation(base.kind, base.catalog, base.data_path, change_log_days=days)
    with ModelStore(location) as store:
        _add(store, "young", NOW - timedelta(days=days - 1))
        _add(store, "edge", NOW - timedelta(days=days, seconds=-60))
        _add(store, "old", NOW - timedelta(days=days, seconds=60))
        _add(store, "ancient", NOW - timedelta(days=400))
        report = maintain(store, NOW)
        assert report.change_log_rows_pruned == 2
        assert report.metadata()["change_log_rows_pruned"] == 2
        kept = {c.key for c in store.changes()}
        assert kept == {"young", "edge"}
        assert maintain(store, NOW).change_log_rows_pruned == 0  # nothing older is left


def test_prune_change_log_returns_how_many_went(tmp_path: Path) -> None:
    with ModelStore(tmp_path / "store.sqlite") as store:
        for i in range(3):
            _add(store, f"k{i}", NOW - timedelta(days=i * 10))
        assert store.prune_change_log(NOW - timedelta(days=5)) == 2
        assert [c.key for c in store.changes()] == ["k0"]


def _doc(**store: Any) -> dict[str, Any]:
    warehouse = {"type": "duckdb", "path": "wh.duckdb"}
    return {"store": {"catalog": "store.sqlite", **store}, "connections": {"wh": warehouse}}


def test_change_log_days_defaults_to_14_and_takes_a_set_value(tmp_path: Path) -> None:
    assert parse_config(_doc(), tmp_path / "c.yaml").store.change_log_days == 14
    assert parse_config(_doc(change_log_days=60), tmp_path / "c.yaml").store.change_log_days == 60
    without_store = _doc()
    del without_store["store"]
    assert parse_config(without_store, tmp_path / "c.yaml").store.change_log_days == 14


@pytest.mark.parametrize("value", [0, -1, "x"])
def test_a_bad_change_log_days_names_the_field_and_the_fix(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_doc(change_log_days=value), tmp_path / "c.yaml")
    err = info.value
    assert err.where == "store.change_log_days"
    assert ("must be a positive integer" if isinstance(value, int) else "must be int") in err.problem
    assert "change_log_days: 14" in err.fix
