"""The web app's fixtures: one store filled by the demo (built once per test session), and a test client over it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import yaml
from filelock import FileLock
from starlette.testclient import TestClient

from planhat_pipelines.config import Config, load_config
from planhat_pipelines.demo.run import run_all, seed
from planhat_pipelines.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]


def demo_config_in(folder: Path) -> Config:
    """The demo config with its store and warehouse in ``folder``."""
    raw = yaml.safe_load((ROOT / "planhat_pipelines.yaml").read_text())
    raw["store"]["catalog"] = str(folder / "planhat.sqlite")
    raw["connections"]["embedded"]["path"] = str(folder / "warehouse.duckdb")
    path = folder / "planhat_pipelines.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.fixture(scope="session")
def demo_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A store filled by `make demo`'s job (seeded warehouse, every section, behaviours, metrics, OKRs).

    Built once per test session: under pytest-xdist the first worker builds it in the session's shared temp folder
    and the other waits and reads the same store (the web tests only read it).
    """
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "web_demo"
    with FileLock(f"{shared}.lock"):
        done = shared / "built"
        if done.exists():
            return load_config(shared / "planhat_pipelines.yaml")
        shared.mkdir(exist_ok=True)
        config = demo_config_in(shared)
        lines: list[str] = []
        with dg.instance_for_test() as instance:
            seed(config, lines.append)
            run_all(config, instance, lines.append)
        assert not [line for line in lines if "FAILED" in line], lines
        done.write_text(date.today().isoformat())
        return config


@pytest.fixture(scope="session")
def demo_day(demo_config: Config) -> date:
    """The day the demo store was built: its derived company fields are as of that day (a run may pass midnight)."""
    return date.fromisoformat((demo_config.path.parent / "built").read_text())


@pytest.fixture(scope="session")
def client(demo_config: Config) -> Iterator[TestClient]:
    """The app over the demo store, through Starlette's test client."""
    with TestClient(create_app(demo_config)) as test_client:
        yield test_client
