"""Owners set per section show on its asset; an owner Dagster cannot show is refused by the config."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from planhat_pipelines.config import load_config
from planhat_pipelines.definitions import build_definitions
from planhat_pipelines.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _demo_with(tmp_path: Path, crm_owners: object, usage_owners: object) -> Path:
    raw = yaml.safe_load((ROOT / "planhat_pipelines.yaml").read_text())
    raw["store"]["catalog"] = str(tmp_path / "store.sqlite")
    raw["connections"]["embedded"]["path"] = str(tmp_path / "warehouse.duckdb")
    raw["crm"][0]["owners"] = crm_owners
    raw["usage"][0]["owners"] = usage_owners
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_section_owners_are_the_assets_owners(tmp_path: Path) -> None:
    config = load_config(_demo_with(tmp_path, ["jane@acme.com", "team:cs-ops"], ["team:data"]))
    graph = build_definitions(config).resolve_asset_graph()
    crm_key = dg.AssetKey(["crm", config.crm[0].name])
    usage_key = dg.AssetKey(["usage", config.usage[0].name])
    assert list(graph.get(crm_key).owners) == ["jane@acme.com", "team:cs-ops"]
    assert list(graph.get(usage_key).owners) == ["team:data"]
    assert list(graph.get(dg.AssetKey(["crm", config.crm[1].name])).owners) == []


def test_an_owner_that_is_neither_an_email_nor_a_team_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_demo_with(tmp_path, ["jane"], []))
    assert info.value.where == "crm[0].owners"
    assert info.value.problem == "'jane' is neither an email nor 'team:<name>'"
    assert info.value.fix == "write owners: [jane@acme.com, team:cs-ops]"
