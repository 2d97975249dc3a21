"""The store's named queries that code outside ``store/`` calls instead of writing SQL on the store's tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa

from planhat_pipelines.store import ModelStore

T0 = datetime(2026, 12, 1, 12, 0)


def _usage(store: ModelStore, section: str, *keys: int) -> None:
    for key in keys:
        store.con.execute(
            'INSERT INTO user_activities (section, "key", model) VALUES (?, ?, ?)', [section, key, "enduser"]
        )


def _reject(store: ModelStore, section: str, key: str, run_id: str, *, permanent: bool = False) -> None:
    rejects = pa.table({"key": [key], "reason": ["bad"], "permanent": [permanent]})
    store.record_rejects(section, run_id, rejects, resolve_others=False)


def test_recent_health_keeps_the_newest_per_connection_newest_first_with_times_in_utc(store: ModelStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    for minutes in range(5):
        store.record_health("wh", (T0 + timedelta(minutes=minutes)).replace(tzinfo=UTC), "ok")
    store.record_health("bq", T0.replace(tzinfo=plus_two), "failing", error="refused", fix="rotate the key")

    rows = store.recent_health(limit_per_connection=3)

    assert rows == [
        ("bq", T0 - timedelta(hours=2), "failing", "refused", "rotate the key"),
        ("wh", T0 + timedelta(minutes=4), "ok", None, None),
        ("wh", T0 + timedelta(minutes=3), "ok", None, None),
        ("wh", T0 + timedelta(minutes=2), "ok", None, None),
    ]


def test_open_rejects_of_other_runs_and_retryable_keys(store: ModelStore) -> None:
    _reject(store, "events", "7", "run-a")
    _reject(store, "events", "3", "run-a")
    _reject(store, "events", "x1", "run-a")
    _reject(store, "events", "5", "run-a", permanent=True)

    assert store.has_open_rejects("events", "run-b")
    assert not store.has_open_rejects("events", "run-a")
    assert not store.has_open_rejects("metrics", "run-b")
    assert store.retryable_reject_keys("events") == [3, 7]


def test_duplicate_planhat_keys_lists_repeated_non_null_values_most_repeated_first(store: ModelStore) -> None:
    rows = pa.table({"sourceId": ["s1", "s2", "s3"], "externalId": ["a", "b", "c"]})
    store.upsert_arrow("company", rows, "sourceId")
    store.con.execute("""UPDATE company SET "externalId" = 'dup' WHERE "sourceId" IN ('s1', 's2')""")

    assert store.duplicate_planhat_keys("company", "externalId") == [("dup", 2)]
    assert store.duplicate_planhat_keys("company", "sourceId") == []


def test_usage_key_queries(store: ModelStore) -> None:
    _usage(store, "events", 1, 2, 3, 10)
    _usage(store, "other", 4)
    _reject(store, "events", "4", "run-a")
    _reject(store, "events", "2", "run-a")

    assert store.duplicate_usage_keys("events", "user_activities") == 0
    assert store.usage_rows_above("events", "user_activities", 3) == (1, "10")
    assert store.usage_rows_above("events", "user_activities", None) == (4, "1")
    # Keys <= 5: stored 1, 2, 3; open rejects 4 (not stored) and 2 (stored); 4 distinct in all.
    assert store.usage_key_stats("events", "user_activities", 5) == (3, 1, 4)
    # 1 is stored, 4 is rejected, "x" is not a key: 5 and 6 are missing.
    assert store.missing_usage_keys("events", "user_activities", pa.array(["1", "4", "5", " 6", "x", "5"])) == (5, 2)
    assert store.missing_usage_keys("events", "user_activities", pa.array([1, 2], pa.int64())) == (None, 0)


def test_last_success_is_none_without_a_successful_run(store: ModelStore) -> None:
    assert store.last_success("events") == (None, None)
    failed = store.start_run("events", "usage")
    store.finish_run(failed, "failed")
    assert store.last_success("events") == (None, None)
    run = store.start_run("events", "usage")
    store.finish_run(run, "success")

    ended_at, age = store.last_success("events")

    assert ended_at is not None
    assert age is not None and 0 <= age < 3600
