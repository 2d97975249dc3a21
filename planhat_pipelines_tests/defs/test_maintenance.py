"""Store maintenance: small files merged, snapshots past the retention expired, unneeded files deleted,
rows unchanged; run as the `store/maintenance` asset on a daily schedule."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg

from planhat_pipelines.defs.maintenance import MAINTENANCE_CRON, build_maintenance_defs
from planhat_pipelines.defs.naming import maintenance_asset_key
from planhat_pipelines.defs.resources import StoreResource
from planhat_pipelines.store import ModelStore, StoreLocation
from planhat_pipelines.store.maintenance import maintain

TICKS = 40
ROWS_PER_TICK = 500


def _ticked_store(path: Path) -> StoreLocation:
    """A store after ``TICKS`` small usage commits, as a 5-minute cadence leaves it."""
    location = StoreLocation.of_file(path)
    with ModelStore(location) as store:
        for tick in range(TICKS):
            store.con.execute(
                'INSERT INTO user_activities (section, "key", model) '
                f"SELECT 'events', {tick * ROWS_PER_TICK} + range, 'enduser' FROM range({ROWS_PER_TICK})"
            )
    return location


def _rows(location: StoreLocation) -> tuple[int, int]:
    with ModelStore(location, read_only=True) as store:
        n, distinct = store.con.execute('SELECT count(*), count(DISTINCT "key") FROM user_activities').fetchall()[0]
    return int(n), int(distinct)


def test_the_maintenance_asset_merges_small_files_and_reports_it(tmp_path: Path) -> None:
    location = _ticked_store(tmp_path / "store.sqlite")
    defs = build_maintenance_defs()
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    assert asset.key == maintenance_asset_key()
    result = dg.materialize([asset], resources={"store": StoreResource.of(location)})
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = {k: int(str(v.value)) for k, v in event.materialization.metadata.items()}
    assert meta["data_files_after"] < meta["data_files_before"], meta
    assert meta["data_files_after"] <= 2 and meta["snapshots_expired"] == 0, meta
    assert _rows(location) == (TICKS * ROWS_PER_TICK, TICKS * ROWS_PER_TICK)
    (schedule,) = [s for s in defs.schedules or [] if isinstance(s, dg.ScheduleDefinition)]
    assert schedule.name == "store_maintenance_daily"
    assert schedule.cron_schedule == MAINTENANCE_CRON
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_snapshots_past_the_retention_expire_and_their_files_go_rows_stay(tmp_path: Path) -> None:
    location = _ticked_store(tmp_path / "store.sqlite")
    with ModelStore(location) as store:
        first = maintain(store)
        later = maintain(store, datetime.now() + timedelta(days=location.retention_days + 1, hours=2))
    assert first.snapshots_expired == 0 and first.files_deleted == 0
    assert later.snapshots_expired >= TICKS and later.snapshots_after == 1
    assert later.files_deleted >= first.data_files_before - first.data_files_after  # the merged-away files
    assert _rows(location) == (TICKS * ROWS_PER_TICK, TICKS * ROWS_PER_TICK)
    files = [p for p in Path(location.data_path).rglob("*.parquet")]
    assert len(files) == later.data_files_after  # nothing left on disk that no snapshot needs
