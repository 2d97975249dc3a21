"""Shared helpers for the OKR tests: a config built from a dict, with real DuckDB files in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from planhat_pipelines.config import Config, KeyResult
from planhat_pipelines_tests.builders import config_doc, duckdb_connection, key_result, objective, parse

MakeConfig = Callable[..., Config]

#: One key result as it appears in the YAML file (an increasing 100 -> 500 target over 2026).
key_result_data = key_result


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    """Build a Config with parse_config; the same document is written to tmp_path/config.yaml because
    WarehouseResource reads the file named by ``config.path``."""

    def make(warehouse: dict[str, Any] | None = None, objectives: list[dict[str, Any]] | None = None) -> Config:
        wh = warehouse or duckdb_connection(tmp_path / "warehouse.duckdb", create=True)
        if objectives is None:
            objectives = [objective(title="Grow the pipeline")]
        data = config_doc(tmp_path, connections={"wh": wh}, okrs=objectives)
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
        return parse(data, tmp_path)

    return make


def one_key_result(config: Config, name: str = "leads") -> KeyResult:
    return next(kr for kr in config.key_results if kr.name == name)
