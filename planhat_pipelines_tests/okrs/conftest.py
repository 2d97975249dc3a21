"""Shared helpers for the OKR tests: a config built from a dict, with real DuckDB files in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from planhat_pipelines.config import Config, KeyResult, parse_config

MakeConfig = Callable[..., Config]


def key_result_data(name: str = "leads", **overrides: Any) -> dict[str, Any]:
    """One key result as it appears in the YAML file (an increasing 100 -> 500 target over 2026)."""
    data: dict[str, Any] = {
        "name": name,
        "connection": "wh",
        "query": "SELECT count(*) FROM leads",
        "start_value": 100,
        "target": 500,
        "start_date": "2026-01-01",
        "end_date": "2026-12-31",
        "direction": "increase",
    }
    data.update(overrides)
    return data


def config_data(
    warehouse: dict[str, Any], store: Path, objectives: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A whole config document: one warehouse connection called ``wh`` and the given objectives."""
    if objectives is None:
        objectives = [{"name": "grow", "title": "Grow the pipeline", "key_results": [key_result_data()]}]
    return {"store": {"path": str(store)}, "connections": {"wh": warehouse}, "okrs": objectives}


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    """Build a Config with parse_config; the same document is written to tmp_path/config.yaml because
    WarehouseResource reads the file named by ``config.path``."""

    def make(warehouse: dict[str, Any] | None = None, objectives: list[dict[str, Any]] | None = None) -> Config:
        wh = warehouse or {"type": "duckdb", "path": str(tmp_path / "warehouse.duckdb"), "create": True}
        data = config_data(wh, tmp_path / "store.duckdb", objectives)
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        return parse_config(data, path)

    return make


def one_key_result(config: Config, name: str = "leads") -> KeyResult:
    return next(kr for kr in config.key_results if kr.name == name)
