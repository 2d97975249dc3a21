"""Asset checks on sync assets, run through Dagster on a real DuckDB warehouse and store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
import yaml

from planhat_pipelines.config import Config, load_config
from planhat_pipelines.defs.checks import build_sync_checks
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.defs.usage import RANGE_END_TAG, RANGE_START_TAG, build_usage_asset, usage_partitions
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.ranges import ranges_between
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness

SPAN = 10


def _config(tmp_path: Path, harness: DuckDBHarness, crm: list[dict[str, Any]] | None = None) -> Config:
    raw = {
        "store": {"catalog": str(tmp_path / "store.sqlite")},
        "connections": {"wh": harness.connection_config()},
        "crm": crm or [],
        "usage": [
            {
                "name": "events",
                "kind": "activities",
                "model": "enduser",
                "connection": "wh",
                "table": "events",
                "key": "event_id",
                "record_match": "email",
                "unknown_reference": "keep",
                "fields": {"record": "user_email", "action": "action", "date": "occurred_at"},
                "batch_size": 5,
                "partition_span": SPAN,
                "cadence": {"every_minutes": 5},
            }
        ],
    }
    # The warehouse resource reads the file at run time.
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def _seed(harness: DuckDBHarness, keys: list[int | None], *, null_email_at: int | None = None) -> None:
    n = len(keys)
    emails: list[str | None] = [f"u{i % 4}@x.io" for i in range(n)]
    if null_email_at is not None:
        emails[keys.index(null_email_at)] = None
    harness.create_table(
        "events",
        pa.table(
            {
                "event_id": pa.array(keys, pa.int64()),
                "user_email": pa.array(emails, pa.string()),
                "action": ["login"] * n,
                "occurred_at": [f"2026-01-01 00:00:{i % 60:02d}" for i in range(n)],
            }
        ),
    )


def _results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


class Usage:
    """The usage section's asset and checks, materialized on one instance."""

    def __init__(self, config: Config, instance: dg.DagsterInstance) -> None:
        self.config = config
        self.section = config.usage[0]
        self.instance = instance
        self.asset = build_usage_asset(self.section, config)
        self.checks = build_sync_checks(config)
        self.resources = build_resources(config)

    def sync(self, through: int) -> dict[str, dg.AssetCheckEvaluation]:
        """Load every range up to ``through`` in one run, with the checks."""
        keys = [s.partition_key for s in ranges_between(0, through, SPAN)]
        self.instance.add_dynamic_partitions(usage_partitions(self.section).name or "", keys)
        result = dg.materialize(
            [self.asset, *self.checks],
            instance=self.instance,
            resources=self.resources,
            tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]},
        )
        assert result.success
        return _results(result)

    def check(self) -> dict[str, dg.AssetCheckEvaluation]:
        """Run the checks alone (as from the UI's 'Execute checks')."""
        result = dg.materialize(
            [self.asset, *self.checks],
            instance=self.instance,
            resources=self.resources,
            selection=dg.AssetSelection.all_asset_checks(),
        )
        assert result.success
        return _results(result)

    def store(self) -> ModelStore:
        return ModelStore(self.config.store)


@pytest.fixture
def instance() -> Any:
    with dg.instance_for_test() as instance:
        yield instance


def test_usage_checks_pass_after_a_sync_then_a_deleted_row_fails_row_count(
    tmp_path: Path, duckdb_harness: DuckDBHarness, instance: dg.DagsterInstance
) -> None:
    _seed(duckdb_harness, list(range(1, 36)))
    usage = Usage(_config(tmp_path, duckdb_harness), instance)
    results = usage.sync(35)
    assert set(results) == {"unique_keys", "row_count_matches_source", "fresh", "source_schema_unchanged"}
    assert all(r.passed for r in results.values()), {k: r.description for k, r in results.items()}
    row_count = results["row_count_matches_source"].metadata
    # Ranges 0-9, 10-19, 20-29 are closed (loaded through 35); 30-39 is still being filled.
    assert row_count["closed_ranges"].value == 3
    assert row_count["checked_through_key"].value == "29"
    assert row_count["source_distinct_keys"].value == 29 and row_count["stored_rows"].value == 29

    with usage.store() as store:
        store.con.execute('DELETE FROM user_activities WHERE "key" = 17')
    results = usage.check()
    failed = results["row_count_matches_source"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["difference"].value == 1
    # The advice names what fixes it: a lookback that covers key 17 (35 - 17 + 1 keys) and one re-read of 10-19.
    assert failed.metadata["lowest_missing_key"].value == "17"
    description = failed.description or ""
    assert "set `lookback: 19`" in description
    assert f"--partition {10:032d}-{19:032d}" in description and '"reread": true' in description
    assert results["unique_keys"].passed


def test_rejected_and_duplicated_source_rows_are_accounted_for(
    tmp_path: Path, duckdb_harness: DuckDBHarness, instance: dg.DagsterInstance
) -> None:
    # Key 12 twice in the source (both rows rejected), key 7 without a user (rejected), 25 rows in all.
    keys: list[int | None] = [*range(1, 13), 12, *range(13, 25)]
    _seed(duckdb_harness, keys, null_email_at=7)
    usage = Usage(_config(tmp_path, duckdb_harness), instance)
    results = usage.sync(24)
    row_count = results["row_count_matches_source"]
    assert row_count.passed, row_count.description
    assert row_count.metadata["source_rows"].value == 20  # keys 1..19 with 12 twice
    assert row_count.metadata["source_distinct_keys"].value == 19
    assert row_count.metadata["open_rejects_not_stored"].value == 2  # 7 and 12
    assert row_count.metadata["stored_rows"].value == 17


def test_unique_keys_fails_on_a_row_above_the_cursor(
    tmp_path: Path, duckdb_harness: DuckDBHarness, instance: dg.DagsterInstance
) -> None:
    _seed(duckdb_harness, list(range(1, 16)))
    usage = Usage(_config(tmp_path, duckdb_harness), instance)
    assert usage.sync(15)["unique_keys"].passed
    with usage.store() as store:
        store.con.execute(
            "INSERT INTO user_activities (section, \"key\", model, action) VALUES ('events', 999, 'enduser', 'x')"
        )
    result = usage.check()["unique_keys"]
    assert not result.passed
    assert result.metadata["rows_above_cursor"].value == 1 and result.metadata["loaded_through"].value == "15"


def test_usage_fresh_is_stale_only_when_the_source_has_new_rows(
    tmp_path: Path, duckdb_harness: DuckDBHarness, instance: dg.DagsterInstance
) -> None:
    _seed(duckdb_harness, list(range(1, 16)))
    usage = Usage(_config(tmp_path, duckdb_harness), instance)
    assert usage.sync(15)["fresh"].passed
    with usage.store() as store:
        store.con.execute("UPDATE sync_runs SET ended_at = ended_at - INTERVAL 1 HOUR")
    quiet = usage.check()["fresh"]
    assert quiet.passed and "nothing above the loaded-through cursor 15" in (quiet.description or "")
    _seed(duckdb_harness, list(range(1, 21)))
    stale = usage.check()["fresh"]
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    assert stale.metadata["source_max_key"].value == "20"
    assert float(stale.metadata["age_minutes"].value) >= 60  # type: ignore[arg-type]


CRM = [
    {
        "name": "companies",
        "model": "company",
        "connection": "wh",
        "table": "crm_companies",
        "direction": "receive",
        "keys": {"planhat": "externalId", "warehouse": "company_key"},
        "fields": [{"planhat": "name", "warehouse": "name"}],
    }
]


def _crm_checks(config: Config, instance: dg.DagsterInstance) -> dict[str, dg.AssetCheckEvaluation]:
    checks = [
        c
        for c in build_sync_checks(config)
        if any(k.asset_key == dg.AssetKey(["crm", "companies"]) for k in c.check_keys)
    ]
    result = dg.materialize(
        checks, instance=instance, resources=build_resources(config), selection=dg.AssetSelection.all_asset_checks()
    )
    assert result.success
    return _results(result)


def test_crm_checks_unique_keys(tmp_path: Path, duckdb_harness: DuckDBHarness, instance: dg.DagsterInstance) -> None:
    _seed(duckdb_harness, [1])
    config = _config(tmp_path, duckdb_harness, CRM)
    with ModelStore(config.store) as store:
        store.upsert_arrow(
            "company", pa.table({"externalId": ["a", "b", None], "name": ["A", "B", "no key"]}), "externalId"
        )
    results = _crm_checks(config, instance)
    # freshness is the asset's FreshnessPolicy, not a check
    assert set(results) == {"unique_keys", "source_schema_unchanged"}
    assert results["unique_keys"].passed

    with ModelStore(config.store) as store:
        # A second record with externalId 'a' (the store's key is the native id, so nothing stops this).
        store.con.execute("INSERT INTO company (id, \"externalId\", name) VALUES ('x1', 'a', 'A again')")
    dupes = _crm_checks(config, instance)["unique_keys"]
    assert not dupes.passed and dupes.metadata["duplicate_keys"].value == 1
    assert "a (x2)" in str(dupes.metadata["sample"].value)


def test_every_sync_asset_gets_its_checks(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    duckdb_harness.execute("CREATE TABLE placeholder (x INTEGER)")  # the warehouse file must exist to load
    config = _config(tmp_path, duckdb_harness, CRM)
    keys = {(c.asset_key.to_user_string(), c.name) for d in build_sync_checks(config) for c in d.check_keys}
    assert keys == {
        ("crm/companies", "unique_keys"),
        ("crm/companies", "source_schema_unchanged"),
        ("usage/events", "unique_keys"),
        ("usage/events", "row_count_matches_source"),
        ("usage/events", "fresh"),
        ("usage/events", "source_schema_unchanged"),
    }
    assert not any(spec.blocking for d in build_sync_checks(config) for spec in d.check_specs)
