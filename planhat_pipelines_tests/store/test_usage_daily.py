"""The daily usage series: every committed usage row counted once, a store of the previous release backfilled once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from planhat_pipelines.config import UsageSection
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore, StoreLocation
from planhat_pipelines.store.location import CATALOG_ALIAS
from planhat_pipelines.store.schema import migrate
from planhat_pipelines.store.usage_daily import aggregate_sql, daily_usage
from planhat_pipelines.sync.ranges import KeyRangeSpan
from planhat_pipelines.sync.usage import UsageProgress, run_usage
from planhat_pipelines_tests.builders import config_doc, duckdb_connection, parse, usage_section
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness

SPAN = KeyRangeSpan(0, 99)
#: Per kind: the raw table, the column naming the series and the summed one.
_RAW = {
    "activities": ("user_activities", "action", '"count"'),
    "metrics": ("custom_metrics", '"dimensionId"', '"value"'),
}


def _activities(tmp_path: Path, **overrides: Any) -> UsageSection:
    fields = {"record": "user_email", "action": "action", "date": "occurred_at", "count": "cnt"}
    section = usage_section(fields=fields, batch_size=4, partition_span=100, **overrides)
    raw = config_doc(tmp_path, connections={"wh": duckdb_connection("warehouse.duckdb")}, usage=[section])
    return parse(raw, tmp_path).usage[0]


def _metrics(tmp_path: Path) -> UsageSection:
    section = usage_section(
        "metrics",
        "metrics",
        kind="metrics",
        model="company",
        record_match="externalId",
        key="metric_id",
        fields={"record": "company_key", "dimension": "dimension", "value": "value", "date": "measured_at"},
        batch_size=3,
        partition_span=100,
    )
    raw = config_doc(tmp_path, connections={"wh": duckdb_connection("warehouse.duckdb")}, usage=[section])
    return parse(raw, tmp_path).usage[0]


def _events(keys: Sequence[int]) -> pa.Table:
    """Three End Users (two of company c1, one of c2), two actions, over three days, counts 1 to 4."""
    return pa.table(
        {
            "event_id": pa.array(keys, pa.int64()),
            "user_email": [f"u{k % 3}@x.io" for k in keys],
            "action": [("login", "export")[k % 2] for k in keys],
            "occurred_at": pa.array([datetime(2026, 1, 1 + (k // 4) % 3, 8 + k % 5) for k in keys], pa.timestamp("us")),
            "cnt": pa.array([1 + k % 4 for k in keys], pa.int64()),
        }
    )


def _seed(store: ModelStore) -> dict[str, str]:
    """Companies c1 and c2 and their End Users; returns the companies' ids by external id."""
    store.upsert_arrow("company", pa.table({"externalId": ["c1", "c2"]}), "externalId")
    ids = dict(store.con.execute('SELECT "externalId", id FROM company').fetchall())
    users = {"externalId": ["e0", "e1", "e2"], "email": ["u0@x.io", "u1@x.io", "u2@x.io"]}
    users["companyId"] = [ids["c1"], ids["c1"], ids["c2"]]
    store.upsert_arrow("enduser", pa.table(users), "externalId")
    return ids


def _rows(store: ModelStore, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store.con.execute(sql, list(params)).fetchall()]


def _grouped(store: ModelStore, kind: str) -> list[tuple[Any, ...]]:
    """The raw usage rows with a date, grouped at the series' grain."""
    table, series, total = _RAW[kind]
    return _rows(
        store,
        f'SELECT section, CAST("date" AS DATE), model, "recordId", "companyId", {series}, count(*), sum({total}), '
        f'max("date") FROM {table} WHERE "date" IS NOT NULL GROUP BY ALL ORDER BY ALL',
    )


def _series(store: ModelStore, kind: str) -> list[tuple[Any, ...]]:
    """The daily series summed over its partial rows, at the same grain."""
    return _rows(
        store,
        'SELECT section, "day", model, "recordId", "companyId", series, sum("rows"), sum(total), max(last_at) '
        "FROM usage_daily WHERE kind = ? GROUP BY ALL ORDER BY ALL",
        [kind],
    )


def _daily_rows(store: ModelStore) -> int:
    return int(store.con.execute("SELECT count(*) FROM usage_daily").fetchall()[0][0])


def _snapshots(store: ModelStore) -> int:
    return int(store.con.execute(f"SELECT count(*) FROM {CATALOG_ALIAS}.snapshots()").fetchall()[0][0])


def test_activities_series_equals_the_raw_rows_grouped_after_a_sync_and_an_incremental_one(
    duckdb_harness: DuckDBHarness, store: ModelStore, tmp_path: Path
) -> None:
    _seed(store)
    section = _activities(tmp_path)
    duckdb_harness.create_table("events", _events(range(1, 11)))
    assert run_usage(section, store, duckdb_harness.warehouse(), [SPAN]).inserted == 10
    grouped = _grouped(store, "activities")
    assert _series(store, "activities") == grouped and len(grouped) > 1
    duckdb_harness.create_table("events", _events(range(1, 16)))
    assert run_usage(section, store, duckdb_harness.warehouse(), [SPAN]).inserted == 5
    assert _series(store, "activities") == _grouped(store, "activities")
    assert store.con.execute('SELECT sum("rows"), sum(total) FROM usage_daily').fetchall() == [(15, 39.0)]
    # Append-only: groups that several batches touched hold one partial row per batch (readers sum them).
    partial = store.con.execute(
        'SELECT count(*) FROM (SELECT 1 FROM usage_daily GROUP BY section, "day", model, "recordId", series '
        "HAVING count(*) > 1)"
    ).fetchall()[0][0]
    assert partial > 0


def test_metrics_series_sums_values_per_dimension_and_leaves_rejected_rows_out(
    duckdb_harness: DuckDBHarness, store: ModelStore, tmp_path: Path
) -> None:
    ids = _seed(store)
    duckdb_harness.create_table(
        "metrics",
        pa.table(
            {
                "metric_id": pa.array(range(1, 9), pa.int64()),
                "company_key": ["c1", "c1", "c2", "c1", "c1", "c2", "c1", "c1"],
                "dimension": ["api", "api", "api", "seats", "api", "seats", "api", "api"],
                "value": [1.5, 2.0, 4.0, 10.0, 0.25, 3.0, 7.0, 8.0],
                "measured_at": [
                    datetime(2026, 2, 1, 9),
                    datetime(2026, 2, 1, 17),
                    datetime(2026, 2, 1, 10),
                    datetime(2026, 2, 1, 11),
                    datetime(2026, 2, 2, 9),
                    datetime(2026, 2, 2, 9),
                    None,  # rejected: a row without a date is in neither the raw rows nor the series
                    datetime(2026, 2, 2, 23, 59),
                ],
            }
        ),
    )
    result = run_usage(_metrics(tmp_path), store, duckdb_harness.warehouse(), [SPAN])
    assert (result.inserted, result.rejected) == (7, 1)
    assert _series(store, "metrics") == _grouped(store, "metrics")
    c1 = ids["c1"]
    assert _rows(
        store,
        'SELECT "day", series, sum("rows"), sum(total), max(last_at) FROM usage_daily WHERE "companyId" = ? '
        "GROUP BY ALL ORDER BY ALL",
        [c1],
    ) == [
        (date(2026, 2, 1), "api", 2, 3.5, datetime(2026, 2, 1, 17)),
        (date(2026, 2, 1), "seats", 1, 10.0, datetime(2026, 2, 1, 11)),
        (date(2026, 2, 2), "api", 2, 8.25, datetime(2026, 2, 2, 23, 59)),
    ]
    assert daily_usage(store.con, company_id=c1, since=date(2026, 2, 2)) == [
        (date(2026, 2, 2), "metrics", "api", 2, 8.25, 0)  # metrics on Companies count no End Users
    ]


def test_rerunning_a_range_or_rereading_it_adds_no_series_rows(
    duckdb_harness: DuckDBHarness, store: ModelStore, tmp_path: Path
) -> None:
    _seed(store)
    section = _activities(tmp_path, lookback=6)
    duckdb_harness.create_table("events", _events(range(1, 11)))
    run_usage(section, store, duckdb_harness.warehouse(), [SPAN])
    before, series = _daily_rows(store), _series(store, "activities")
    again = run_usage(section, store, duckdb_harness.warehouse(), [SPAN])  # the lookback re-reads keys 5-10
    reread = run_usage(section, store, duckdb_harness.warehouse(), [SPAN], reread=True)  # lookback, then 1-10
    assert (again.inserted, again.unchanged, reread.inserted, reread.unchanged) == (0, 6, 0, 16)
    assert _daily_rows(store) == before
    assert _series(store, "activities") == series == _grouped(store, "activities")


#: Another writer: a process holding the SQLite catalog's write lock until it reads a line (as one mid-commit does).
_HOLD = (
    "import sqlite3, sys; con = sqlite3.connect(sys.argv[1], isolation_level=None); "
    "con.execute('BEGIN EXCLUSIVE'); print('held', flush=True); sys.stdin.readline(); con.rollback()"
)


def _release(holder: subprocess.Popen[str]) -> None:
    if holder.poll() is None:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
    holder.wait(timeout=30)


def test_a_batch_whose_commit_lost_a_race_and_ran_again_is_counted_once(
    duckdb_harness: DuckDBHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer holds the catalog from batch 1's end until batch 2 runs again: batch 2's first commit fails
    (after its inserts), its second attempt lands."""
    catalog = tmp_path / "store.sqlite"
    holders: list[subprocess.Popen[str]] = []
    attempts: list[str] = []
    label_commit = ModelStore.label_commit

    def counted(self: ModelStore, section: str, run_id: str) -> None:
        # Every batch attempt starts by naming its commit: the third is batch 2's second, so the lock goes now.
        attempts.append(section)
        if len(attempts) == 3:
            _release(holders[0])
        label_commit(self, section, run_id)

    def hold_after_batch_1(_: UsageProgress) -> None:
        if not holders:
            holder = subprocess.Popen(
                [sys.executable, "-c", _HOLD, str(catalog)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            holders.append(holder)
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

    monkeypatch.setattr(ModelStore, "label_commit", counted)
    duckdb_harness.create_table("events", _events(range(1, 13)))
    with ModelStore(catalog, lock_timeout=20) as store:
        _seed(store)
        try:
            section = _activities(tmp_path)
            result = run_usage(section, store, duckdb_harness.warehouse(), [SPAN], progress=hold_after_batch_1)
        finally:
            for holder in holders:
                _release(holder)
        assert (result.inserted, result.batches) == (12, 3)
        assert len(attempts) == 4  # three batches, the second twice
        assert _series(store, "activities") == _grouped(store, "activities")
        assert store.con.execute('SELECT sum("rows") FROM usage_daily').fetchall()[0][0] == 12


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreLocation]:
    """A store location on each catalog that can be opened again (the ``store`` fixture's two)."""
    if request.param == "sqlite":
        yield StoreLocation.of_file(tmp_path / "store.sqlite")
    else:
        yield request.getfixturevalue("postgres_server").store_location(tmp_path / "files")


_RAW_ACTIVITIES = """INSERT INTO user_activities VALUES
    ('events', 1, 'enduser', 'u0', 'c1', 'a@x.io', 'login', TIMESTAMP '2026-01-01 08:00', 2, 1, NULL, 'r0'),
    ('events', 2, 'enduser', 'u0', 'c1', 'a@x.io', 'login', TIMESTAMP '2026-01-01 21:30', 3, 1, NULL, 'r0'),
    ('events', 3, 'enduser', 'u1', 'c1', 'b@x.io', 'login', TIMESTAMP '2026-01-02 08:00', 1, 1, NULL, 'r0'),
    ('events', 4, 'enduser', 'u1', 'c1', 'b@x.io', 'export', NULL, 5, 1, NULL, 'r0')"""
_RAW_METRICS = """INSERT INTO custom_metrics VALUES
    ('metrics', 1, 'company', 'c1', 'c1', 'C-1', 'api', 1.5, TIMESTAMP '2026-01-01 08:00', 'r0'),
    ('metrics', 2, 'company', 'c1', 'c1', 'C-1', 'api', 2.5, TIMESTAMP '2026-01-01 09:00', 'r0'),
    ('metrics', 3, 'company', 'c1', 'c1', 'C-1', 'api', 9.0, NULL, 'r0')"""


def test_migrate_backfills_a_store_of_the_previous_release_once(location: StoreLocation) -> None:
    with ModelStore(location) as store:
        store.con.execute(_RAW_ACTIVITIES)
        store.con.execute(_RAW_METRICS)
        store.con.execute("DROP TABLE usage_daily")  # as the previous release left its store
    with ModelStore(location) as store:
        assert _series(store, "activities") == _grouped(store, "activities")
        assert _series(store, "metrics") == _grouped(store, "metrics")
        # The rows without a date (keys 4 and 3) belong to no day.
        assert daily_usage(store.con) == [
            (date(2026, 1, 1), "activities", "login", 2, 5.0, 1),
            (date(2026, 1, 1), "metrics", "api", 2, 4.0, 0),
            (date(2026, 1, 2), "activities", "login", 1, 1.0, 1),
        ]
        rows, snapshots = _daily_rows(store), _snapshots(store)
    with ModelStore(location) as store:  # up to date: opening writes nothing, backfills nothing again
        assert (_daily_rows(store), _snapshots(store)) == (rows, snapshots)
        assert migrate(store.con) == []


def test_opening_an_up_to_date_store_writes_no_snapshot(location: StoreLocation) -> None:
    with ModelStore(location) as store:
        snapshots = _snapshots(store)
    with ModelStore(location) as store:
        assert _snapshots(store) == snapshots
        assert _daily_rows(store) == 0


def test_daily_usage_filters_by_company_record_and_days(
    duckdb_harness: DuckDBHarness, store: ModelStore, tmp_path: Path
) -> None:
    ids = _seed(store)
    duckdb_harness.create_table("events", _events(range(1, 13)))
    run_usage(_activities(tmp_path), store, duckdb_harness.warehouse(), [SPAN])
    # The same figures straight from the raw rows, for each filter.
    raw = (
        'SELECT CAST("date" AS DATE), \'activities\', action, count(*), sum("count"), count(DISTINCT "recordId") '
        "FROM user_activities WHERE {} GROUP BY ALL ORDER BY ALL"
    )
    assert daily_usage(store.con) == _rows(store, raw.format("true"))
    c1 = ids["c1"]
    assert daily_usage(store.con, company_id=c1) == _rows(store, raw.format('"companyId" = ?'), [c1])
    assert {users for *_, users in daily_usage(store.con, company_id=c1)} == {1, 2}  # both of c1's End Users
    u2 = store.con.execute("SELECT id FROM enduser WHERE email = 'u2@x.io'").fetchall()[0][0]
    assert daily_usage(store.con, record_id=u2) == _rows(store, raw.format('"recordId" = ?'), [u2])
    day = date(2026, 1, 2)
    one_day = daily_usage(store.con, since=day, until=day)
    assert one_day == _rows(store, raw.format('CAST("date" AS DATE) = ?'), [day]) and one_day
    assert daily_usage(store.con, since=date(2026, 1, 4)) == []
    with pytest.raises(PlanhatPipelinesError, match=r"since 2026-01-03 is after until 2026-01-02\. Fix"):
        daily_usage(store.con, since=date(2026, 1, 3), until=day)


def test_an_unknown_usage_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(
        PlanhatPipelinesError, match=r"unknown usage kind 'events'\. Fix: use one of activities, metrics"
    ):
        aggregate_sql("events", "__usage_new")
