"""Shared fixtures: the warehouse harnesses every cross-warehouse test is parametrized over, and a store.

Config documents are built with planhat_pipelines_tests/builders.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from planhat_pipelines.store import ModelStore, StoreLocation
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness
from planhat_pipelines_tests.harness import WarehouseHarness

WAREHOUSE_KINDS = ["duckdb", "bigquery", "snowflake"]

#: Test tiers (``pytest -m "not emulator"`` is the quick loop). Each test gets exactly one, by what it needs:
#: ``emulator`` (the BigQuery emulator or fakesnow), ``e2e`` (the demo, the daemon or the CLI in subprocesses),
#: ``dagster`` (Dagster definitions, runs, sensors), ``store`` (a real DuckDB store or warehouse), ``pure``.
TIERS = ("pure", "store", "dagster", "e2e", "emulator")
_EMULATOR_FIXTURES = {
    "bigquery_harness",
    "snowflake_harness",
    "bigquery_emulator",
    "snowflake_emulator",
    "duckdb2_python",
}
_E2E_MODULES = {
    "test_demo",
    "test_demo_emulators",
    "test_demo_seeding",
    "test_demo_checkout",
    "test_run_monitoring",
    "test_cli",
    "test_cli_progress",
    "test_image_steps",
    "test_postgres_instance",
}
_STORE_FIXTURES = {"store", "duckdb_harness", "tmp_path"}


def _tier(item: pytest.Item) -> str:
    fixtures = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    kind = callspec.params.get("harness") if callspec is not None else None
    if fixtures & _EMULATOR_FIXTURES or kind in ("bigquery", "snowflake"):
        return "emulator"
    module_obj = getattr(item, "module", None)
    module = module_obj.__name__.rsplit(".", 1)[-1] if module_obj is not None else ""
    if module in _E2E_MODULES:
        return "e2e"
    if ".defs." in item.nodeid.replace("/", ".") or module in ("test_alerts", "test_defs", "test_health_skips"):
        return "dagster"
    if fixtures & _STORE_FIXTURES or "harness" in fixtures:
        return "store"
    return "pure"


def pytest_configure(config: pytest.Config) -> None:
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: test tier (see planhat_pipelines_tests/conftest.py)")
    config.addinivalue_line("markers", "all_catalogs: also run on the PostgreSQL catalog (see _catalog_repeat)")


def _catalog_times_emulator(item: pytest.Item) -> bool:
    """A test that would run the PostgreSQL catalog against an emulated warehouse.

    The store's catalog and the warehouse are independent axes: every test on the PostgreSQL catalog runs
    against the DuckDB warehouse, every emulated warehouse against the embedded catalog. Their full cross
    product would add ~100 emulator runs (several minutes) that test no pairing the two halves do not.
    """
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    return params.get("store") == "postgres" and params.get("harness") in ("bigquery", "snowflake")


#: Test packages whose rules are set-based SQL over the model tables, the same on every catalog: they run on the
#: embedded (SQLite) catalog, and only their tests marked ``all_catalogs`` on PostgreSQL too.
_ONE_CATALOG_PACKAGES = (".behaviours.", ".metrics.")


def _catalog_repeat(item: pytest.Item) -> bool:
    """A PostgreSQL-catalog repeat of a test of :data:`_ONE_CATALOG_PACKAGES` not marked ``all_catalogs``.

    What the catalog changes (commits, concurrency, types) is tested by the store and sync tests on both catalogs;
    repeating every behaviour and metric case there doubled their time without reaching different code.
    """
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    nodeid = "." + item.nodeid.replace("/", ".")
    return (
        params.get("store") == "postgres"
        and any(package in nodeid for package in _ONE_CATALOG_PACKAGES)
        and item.get_closest_marker("all_catalogs") is None
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [item for item in items if _catalog_times_emulator(item) or _catalog_repeat(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not (_catalog_times_emulator(item) or _catalog_repeat(item))]
    for item in items:
        item.add_marker(getattr(pytest.mark, _tier(item)))


@pytest.fixture(params=WAREHOUSE_KINDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarehouseHarness]:
    """A fresh, isolated place in each warehouse kind (DuckDB file, BigQuery dataset, Snowflake schema)."""
    kind = request.param
    if kind == "duckdb":
        h = DuckDBHarness(tmp_path / "warehouse.duckdb")
        yield h
        h.close()
    else:
        # Emulator harnesses come from session-scoped fixtures in emulators/<kind>.py.
        yield request.getfixturevalue(f"{kind}_harness")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ModelStore]:
    """An empty model store on each catalog: ``sqlite``, the embedded catalog ``tmp_path / "store.sqlite"``
    (where config_doc points), and ``postgres``, a fresh database in a real PostgreSQL server with its files in
    ``tmp_path / "files"`` (the session's server comes from emulators/postgres.py)."""
    if request.param == "sqlite":
        location: StoreLocation | Path = tmp_path / "store.sqlite"
    else:
        location = request.getfixturevalue("postgres_server").store_location(tmp_path / "files")
    with ModelStore(location) as s:
        yield s


@pytest.fixture
def duckdb_harness(tmp_path: Path) -> Iterator[DuckDBHarness]:
    h = DuckDBHarness(tmp_path / "warehouse.duckdb")
    yield h
    h.close()


from planhat_pipelines_tests.emulators.bigquery import bigquery_emulator, bigquery_harness  # noqa: E402,F401
from planhat_pipelines_tests.emulators.postgres import postgres_server  # noqa: E402,F401
from planhat_pipelines_tests.emulators.snowflake import snowflake_emulator, snowflake_harness  # noqa: E402,F401
