"""Usage sync against every warehouse: incremental, exactly-once, rejections with reasons."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from planhat_pipelines.config import UsageSection
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.ranges import KeyRangeSpan, range_of, ranges_between
from planhat_pipelines.sync.usage import load_range, loaded_through, pending_ranges, run_usage
from planhat_pipelines.warehouses.base import KeyRange, Warehouse
from planhat_pipelines_tests.builders import config_doc, duckdb_connection, parse, usage_section
from planhat_pipelines_tests.harness import WarehouseHarness


def _section(tmp_path: Path, **overrides: Any) -> UsageSection:
    section = usage_section(
        **{
            "fields": {"record": "user_email", "action": "action", "date": "occurred_at", "info": "info"},
            "batch_size": 4,
            "partition_span": 100,
            **overrides,
        }
    )
    raw = config_doc(tmp_path, store="store.sqlite", connections={"wh": duckdb_connection("w.duckdb")}, usage=[section])
    return parse(raw, tmp_path).usage[0]


def _events(keys: Sequence[int | None], emails: Sequence[str | None] | None = None) -> pa.Table:
    n = len(keys)
    return pa.table(
        {
            "event_id": pa.array(keys, pa.int64()),
            "user_email": pa.array(emails if emails is not None else [f"u{i % 3}@x.io" for i in range(n)], pa.string()),
            "action": ["login"] * n,
            "occurred_at": pa.array([datetime(2026, 1, 1, 12, i % 60) for i in range(n)], pa.timestamp("us")),
            "info": [json.dumps({"i": i}) for i in range(n)],
        }
    )


@pytest.fixture
def store(store: ModelStore) -> ModelStore:
    """The conftest store (each catalog) holding three End Users."""
    store.upsert_arrow(
        "enduser",
        pa.table({"externalId": ["e0", "e1", "e2"], "email": ["u0@x.io", "u1@x.io", "u2@x.io"]}),
        "externalId",
    )
    return store


def _all_ranges(section: UsageSection, store: ModelStore, wh: Warehouse) -> list[KeyRangeSpan]:
    spans, _ = pending_ranges(section, store, wh)
    return spans


def _loaded_keys(store: ModelStore, section: str = "events") -> list[int]:
    rows = store.con.execute('SELECT "key" FROM user_activities WHERE section = ? ORDER BY 1', [section]).fetchall()
    return [int(r[0]) for r in rows]


def test_incremental_pickup_of_only_new_rows(harness: WarehouseHarness, store: ModelStore, tmp_path: Path) -> None:
    section = _section(tmp_path)
    harness.create_table("events", _events(list(range(1, 11))), json_columns=["info"])
    wh = harness.warehouse()
    first = run_usage(section, store, wh, _all_ranges(section, store, wh))
    assert (first.rows_read, first.inserted, first.rejected) == (10, 10, 0)
    assert first.batches == 3  # batch size 4
    harness.create_table("events", _events(list(range(1, 16))), json_columns=["info"])
    wh = harness.warehouse()
    second = run_usage(section, store, wh, _all_ranges(section, store, wh))
    assert (second.rows_read, second.inserted, second.unchanged) == (5, 5, 0)
    assert _loaded_keys(store) == list(range(1, 16))
    assert (second.cursor_before, second.cursor_after) == (10, 15)
    info = store.con.execute('SELECT info FROM user_activities WHERE "key" = 3').fetchall()[0][0]
    assert json.loads(info) == {"i": 2}
    # Nothing new: nothing pending, nothing runs.
    assert _all_ranges(section, store, harness.warehouse()) == []


def test_every_rejection_reason_is_recorded(harness: WarehouseHarness, store: ModelStore, tmp_path: Path) -> None:
    section = _section(tmp_path)
    keys: list[int | None] = [1, 2, 3, 3, None, -5, 7]
    emails: list[str | None] = ["u0@x.io", None, "u1@x.io", "u1@x.io", "u0@x.io", "u0@x.io", "ghost@x.io"]
    harness.create_table("events", _events(keys, emails), json_columns=["info"])
    wh = harness.warehouse()
    # Invalid keys (null, negative) belong to no range: the run's invalid-key scan rejects them.
    result = run_usage(section, store, wh, [KeyRangeSpan(0, 99)])
    assert (result.rows_read, result.inserted, result.rejected) == (7, 1, 6)
    rejects = store.open_rejects("events")
    assert len(rejects) == 6  # one record per rejected row: both copies of key 3
    reasons = {key: reason for _, key, reason, _ in rejects}
    assert reasons["2"] == "missing End User reference (user_email)"
    assert reasons["3"] == "key 3 occurs more than once in the source"
    assert reasons["-5"] == "key -5 is negative"
    assert reasons["7"] == "unknown enduser ghost@x.io (matched by email)"
    assert reasons["(null)"] == "null key"
    assert _loaded_keys(store) == [1]


def test_unknown_reference_can_be_kept_unlinked(harness: WarehouseHarness, store: ModelStore, tmp_path: Path) -> None:
    section = _section(tmp_path, unknown_reference="keep")
    harness.create_table("events", _events([1, 2], ["u0@x.io", "ghost@x.io"]), json_columns=["info"])
    result = load_range(section, store, harness.warehouse(), KeyRangeSpan(0, 99), run_id="r1")
    assert (result.inserted, result.rejected) == (2, 0)
    rows = store.con.execute('SELECT "recordRef", "recordId" IS NULL FROM user_activities ORDER BY "key"').fetchall()
    assert rows == [("u0@x.io", False), ("ghost@x.io", True)]


def test_a_text_key_column_of_digits_syncs_and_other_text_is_rejected(
    harness: WarehouseHarness, store: ModelStore, tmp_path: Path
) -> None:
    section = _section(tmp_path)
    data = _events([1, 2, 3, 4]).set_column(0, "event_id", pa.array(["0001", " 2 ", "x9", "4.5"]))
    harness.create_table("events", data, json_columns=["info"])
    wh = harness.warehouse()
    ranges, high = pending_ranges(section, store, wh)
    assert (ranges, high) == ([KeyRangeSpan(0, 99)], 2)
    result = run_usage(section, store, wh, ranges)
    assert (result.rows_read, result.inserted, result.rejected) == (4, 2, 2)
    assert _loaded_keys(store) == [1, 2]
    reasons = sorted((k, r, v) for _, k, _, r, v, permanent in _reject_records(store) if permanent)
    assert reasons == [
        ("4.5", "key '4.5' is not a whole number of 1 to 32 digits", "4.5"),
        ("x9", "key 'x9' is not a whole number of 1 to 32 digits", "x9"),
    ]


def _reject_records(store: ModelStore) -> list[tuple[Any, ...]]:
    return store.con.execute(
        'SELECT section, "key", fingerprint, reason, "value", permanent FROM rejected_rows '
        "WHERE resolved_at IS NULL ORDER BY 2, 3"
    ).fetchall()


def test_the_32_character_limit(duckdb_harness: WarehouseHarness, store: ModelStore, tmp_path: Path) -> None:
    section = _section(tmp_path, partition_span=10**32)
    longest = 10**32 - 1  # 32 digits
    duckdb_harness.execute(
        "CREATE TABLE events AS SELECT * FROM (VALUES "
        f"(CAST({longest} AS DECIMAL(38,0)), 'u0@x.io', 'login', TIMESTAMP '2026-01-01', '{{}}'), "
        f"(CAST({longest + 1} AS DECIMAL(38,0)), 'u0@x.io', 'login', TIMESTAMP '2026-01-01', '{{}}')) "
        "t(event_id, user_email, action, occurred_at, info)"
    )
    result = run_usage(section, store, duckdb_harness.warehouse(), [KeyRangeSpan(0, 10**32 - 1)])
    assert (result.inserted, result.rejected) == (1, 1)
    assert _loaded_keys(store) == [longest]
    (reason,) = [r for _, _, r, _ in store.open_rejects("events")]
    assert reason == f"key {longest + 1} is longer than 32 digits"


class _FailsAfter(Warehouse):
    """Fault injection around a real adapter: the real batches, then a broken connection."""

    def __init__(self, inner: Warehouse, batches: int) -> None:
        super().__init__(inner.name)
        self.inner, self.batches = inner, batches

    def _arrow_stream(
        self, sql: str, params: list[tuple[str, int]], batch_size: int, *, ordered: bool, obj: str
    ) -> Iterator[pa.RecordBatch]:
        return self.inner._arrow_stream(sql, params, batch_size, ordered=ordered, obj=obj)

    def read_batches(
        self, table: str, columns: Sequence[str], *, batch_size: int, key_range: KeyRange | None = None
    ) -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(self.inner.read_batches(table, columns, batch_size=batch_size, key_range=key_range)):
            if i == self.batches:
                raise ConnectionError("connection reset by peer")
            yield batch

    def describe(self, table: str) -> Any:
        return self.inner.describe(table)

    def duplicate_keys(self, table: str, key_range: KeyRange) -> list[int]:
        return self.inner.duplicate_keys(table, key_range)

    def key_bounds(self, table: str, key: str) -> tuple[int, int] | None:
        return self.inner.key_bounds(table, key)

    def occupied_ranges(self, table: str, key: str, span: int, *, after: int | None = None) -> list[int]:
        return self.inner.occupied_ranges(table, key, span, after=after)

    def key_filter(self, info: Any, key_range: KeyRange) -> Any:
        return self.inner.key_filter(info, key_range)

    def text_is_key(self, text_sql: str) -> str:  # type: ignore[override]
        return self.inner.text_is_key(text_sql)

    def text_to_number(self, text_sql: str) -> str:  # type: ignore[override]
        return self.inner.text_to_number(text_sql)

    def to_integer(self, number_sql: str) -> str:  # type: ignore[override]
        return self.inner.to_integer(number_sql)

    def table_sql(self, table: str) -> str:
        return self.inner.table_sql(table)

    def _key_rows(self, sql: str, params: list[tuple[str, int]], obj: str) -> list[tuple[Any, ...]]:
        return self.inner._key_rows(sql, params, obj)

    def quote(self, name: str) -> str:  # type: ignore[override]
        return self.inner.quote(name)

    def json_text(self, column_sql: str) -> str:  # type: ignore[override]
        return self.inner.json_text(column_sql)

    def query(self, sql: str, **kw: Any) -> pa.Table:
        return self.inner.query(sql, **kw)

    def _merge(self, *args: Any) -> Any:
        raise AssertionError("usage sync never writes the warehouse")

    def _delete_keys(self, *args: Any) -> Any:
        raise AssertionError("usage sync never writes the warehouse")

    def probe(self) -> None:
        self.inner.probe()


def test_failure_mid_range_then_retry_has_no_dupes_and_no_gaps(
    harness: WarehouseHarness, store: ModelStore, tmp_path: Path
) -> None:
    section = _section(tmp_path)
    harness.create_table("events", _events(list(range(1, 23))), json_columns=["info"])
    span = KeyRangeSpan(0, 99)
    with pytest.raises(ConnectionError):
        run_usage(section, store, _FailsAfter(harness.warehouse(), batches=2), [span])
    assert _loaded_keys(store) == list(range(1, 9))  # two whole batches, cursor with them
    assert loaded_through(store, section) == 8
    assert store.runs(section="events")[0].status == "failed"
    retry = run_usage(section, store, harness.warehouse(), [span])
    assert (retry.rows_read, retry.inserted) == (14, 14)
    assert _loaded_keys(store) == list(range(1, 23))


def test_rerunning_a_loaded_range_changes_nothing(harness: WarehouseHarness, store: ModelStore, tmp_path: Path) -> None:
    section = _section(tmp_path)
    harness.create_table("events", _events(list(range(1, 11))), json_columns=["info"])
    run_usage(section, store, harness.warehouse(), [KeyRangeSpan(0, 99)])
    again = run_usage(section, store, harness.warehouse(), [KeyRangeSpan(0, 99)])
    assert (again.rows_read, again.inserted) == (0, 0)
    reread = run_usage(section, store, harness.warehouse(), [KeyRangeSpan(0, 99)], reread=True)
    assert (reread.rows_read, reread.inserted, reread.unchanged) == (10, 0, 10)
    assert _loaded_keys(store) == list(range(1, 11))


def test_lookback_catches_a_late_lower_key(harness: WarehouseHarness, store: ModelStore, tmp_path: Path) -> None:
    section = _section(tmp_path, lookback=5)
    harness.create_table("events", _events([1, 2, 3, 5, 6]), json_columns=["info"])
    run_usage(section, store, harness.warehouse(), [KeyRangeSpan(0, 99)])
    # Key 4 was allocated before 5 and 6 but committed after the sync read them.
    harness.create_table("events", _events([1, 2, 3, 4, 5, 6, 7]), json_columns=["info"])
    later = run_usage(section, store, harness.warehouse(), [KeyRangeSpan(0, 99)])
    assert (later.inserted, later.unchanged) == (2, 4)  # 4 and 7 new; keys 2-6 re-read, none duplicated
    assert _loaded_keys(store) == [1, 2, 3, 4, 5, 6, 7]


def test_a_range_whose_upper_keys_another_pass_loaded_inserts_each_key_once(
    duckdb_harness: WarehouseHarness, store: ModelStore, tmp_path: Path
) -> None:
    """A range pass skips the anti-join only above the keys the range already held: here the lookback of a later
    range's run loaded keys 150-199 of range 100-199 while its cursor stayed unset."""
    section = _section(tmp_path, lookback=150)
    duckdb_harness.create_table("events", _events(list(range(100, 300))), json_columns=["info"])
    run_usage(section, store, duckdb_harness.warehouse(), [KeyRangeSpan(200, 299)])
    lookback = run_usage(section, store, duckdb_harness.warehouse(), [])  # re-reads (149, 299]
    assert lookback.inserted == 50
    assert store.get_cursor("events", KeyRangeSpan(100, 199).partition_key) is None
    lower = run_usage(section, store, duckdb_harness.warehouse(), [KeyRangeSpan(100, 199)])
    assert lower.inserted == 50  # 100-149; 150-199 read again and skipped
    assert _loaded_keys(store) == list(range(100, 300))  # each key once


def test_without_lookback_a_late_lower_key_needs_a_reread(
    duckdb_harness: WarehouseHarness, store: ModelStore, tmp_path: Path
) -> None:
    section = _section(tmp_path)
    duckdb_harness.create_table("events", _events([1, 2, 3, 5, 6]), json_columns=["info"])
    run_usage(section, store, duckdb_harness.warehouse(), [KeyRangeSpan(0, 99)])
    duckdb_harness.create_table("events", _events([1, 2, 3, 4, 5, 6]), json_columns=["info"])
    assert run_usage(section, store, duckdb_harness.warehouse(), [KeyRangeSpan(0, 99)]).inserted == 0
    assert run_usage(section, store, duckdb_harness.warehouse(), [KeyRangeSpan(0, 99)], reread=True).inserted == 1


def test_metrics_section_with_value_errors(duckdb_harness: WarehouseHarness, tmp_path: Path) -> None:
    section = _section(
        tmp_path,
        name="metrics",
        kind="metrics",
        model="company",
        record_match="externalId",
        table="metrics",
        key="metric_id",
        fields={"record": "company_key", "dimension": "dimension", "value": "value", "date": "measured_at"},
    )
    with ModelStore(tmp_path / "s.duckdb") as store:
        store.upsert_arrow("company", pa.table({"externalId": ["c1"]}), "externalId")
        duckdb_harness.create_table(
            "metrics",
            pa.table(
                {
                    "metric_id": pa.array([1, 2, 3], pa.int64()),
                    "company_key": ["c1", "c1", "c1"],
                    "dimension": ["api_calls", None, "api_calls"],
                    "value": ["12.5", "1", "lots"],
                    "measured_at": ["2026-01-01 00:00:00", "2026-01-02 00:00:00", "2026-01-03 00:00:00"],
                }
            ),
        )
        result = run_usage(section, store, duckdb_harness.warehouse(), [KeyRangeSpan(0, 99)])
        assert (result.inserted, result.rejected) == (1, 2)
        reasons = sorted(r for _, _, r, _ in store.open_rejects("metrics"))
        assert reasons == ["missing dimension (dimension)", "value lots is not a finite number (value)"]
        row = store.con.execute('SELECT "companyId" = "recordId", "value" FROM custom_metrics').fetchall()
        assert row == [(True, 12.5)]


KILL_SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from planhat_pipelines.config import parse_config
    from planhat_pipelines.store import ModelStore
    from planhat_pipelines.sync.ranges import KeyRangeSpan
    from planhat_pipelines.sync.usage import run_usage
    from planhat_pipelines.warehouses.duckdb import DuckDBWarehouse

    tmp = Path(sys.argv[1])
    section = parse_config({"store": {"catalog": "store.sqlite"},
        "connections": {"wh": {"type": "duckdb", "path": "w.duckdb"}},
        "usage": [{"name": "events", "kind": "activities", "model": "enduser", "connection": "wh",
                   "table": "events", "key": "event_id", "record_match": "email", "unknown_reference": "keep",
                   "fields": {"record": "user_email", "action": "action", "date": "occurred_at"},
                   "batch_size": 4, "partition_span": 100, "cadence": {"every_minutes": 5}}]},
        tmp / "c.yaml").usage[0]
    calls = 0
    real_set_cursor = ModelStore.set_cursor
    def dying_set_cursor(self, *args):
        global calls
        calls += 1
        if calls == 2:
            os._exit(17)  # the process dies after batch 2's rows are inserted, before its COMMIT
        real_set_cursor(self, *args)
    ModelStore.set_cursor = dying_set_cursor
    store = ModelStore(tmp / "store.sqlite")
    run_usage(section, store, DuckDBWarehouse("wh", tmp / "warehouse.duckdb"), [KeyRangeSpan(0, 99)])
""")


def test_a_process_killed_between_data_and_cursor_moves_nothing(duckdb_harness: Any, tmp_path: Path) -> None:
    duckdb_harness.create_table("events", _events(list(range(1, 11))), json_columns=["info"])
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 17, done.stderr
    section = _section(tmp_path, unknown_reference="keep")
    with ModelStore(tmp_path / "store.sqlite") as store:
        assert _loaded_keys(store) == [1, 2, 3, 4]  # batch 1 only: batch 2's rows died with its cursor
        assert loaded_through(store, section) == 4
        result = run_usage(section, store, duckdb_harness.warehouse(), [KeyRangeSpan(0, 99)])
        assert (result.rows_read, result.inserted) == (6, 6)
        assert _loaded_keys(store) == list(range(1, 11))


def test_partition_keys_sort_numerically() -> None:
    spans = ranges_between(5, 2_500_000, 1_000_000)
    keys = [s.partition_key for s in spans]
    assert keys == sorted(keys)
    assert [KeyRangeSpan.parse(k) for k in keys] == spans
    assert [(s.start, s.end) for s in spans] == [(0, 999_999), (1_000_000, 1_999_999), (2_000_000, 2_999_999)]
    nine, ten = range_of(9 * 10**6, 10**6), range_of(10 * 10**6, 10**6)
    assert nine.partition_key < ten.partition_key  # 9... sorts before 10... thanks to zero padding
    with pytest.raises(ValueError, match="not a usage range partition key"):
        KeyRangeSpan.parse("1-2")


def test_rejected_rows_are_retried_until_they_pass(
    harness: WarehouseHarness, store: ModelStore, tmp_path: Path
) -> None:
    section = _section(tmp_path)
    harness.create_table("events", _events([1, 2, 3], ["u0@x.io", "late@x.io", "u1@x.io"]), json_columns=["info"])
    first = run_usage(section, store, harness.warehouse(), [KeyRangeSpan(0, 99)])
    assert (first.inserted, first.rejected, first.resolved_rejects) == (2, 1, 0)
    # Still unknown on the next run: retried, still rejected, nothing resolved.
    second = run_usage(section, store, harness.warehouse(), [])
    assert (second.inserted, second.resolved_rejects) == (0, 0)
    assert [k for _, k, _, _ in store.open_rejects("events")] == ["2"]
    # The end user arrives through the CRM sync: the next run loads the row and resolves the reject.
    store.upsert_arrow("enduser", pa.table({"externalId": ["e9"], "email": ["late@x.io"]}), "externalId")
    third = run_usage(section, store, harness.warehouse(), [])
    assert (third.inserted, third.resolved_rejects) == (1, 1)
    assert store.open_rejects("events") == []
    assert _loaded_keys(store) == [1, 2, 3]
    assert store.runs(section="events")[0].resolved_rejects == 1


def test_info_that_is_not_json_rejects_its_row(
    duckdb_harness: WarehouseHarness, store: ModelStore, tmp_path: Path
) -> None:
    section = _section(tmp_path)
    data = _events([1, 2]).set_column(4, "info", pa.array(['{"ok": true}', "{not json"]))
    duckdb_harness.create_table("events", data)  # info as plain text, so a broken value can exist
    result = run_usage(section, store, duckdb_harness.warehouse(), [KeyRangeSpan(0, 99)])
    assert (result.inserted, result.rejected) == (1, 1)
    assert [(k, r) for _, k, r, _ in store.open_rejects("events")] == [("2", "info is not JSON (info)")]


def test_a_retry_reads_exactly_the_rejected_keys_and_counts_them_once(
    harness: WarehouseHarness, store: ModelStore, tmp_path: Path
) -> None:
    """Two rejects at the ends of a 300-key range: the retry reads 2 rows, not the range between them."""
    section = _section(tmp_path, batch_size=1000, partition_span=1000)
    keys = list(range(1, 301))
    emails = ["ghost@x.io" if k in (1, 300) else "u0@x.io" for k in keys]
    harness.create_table("events", _events(keys, emails), json_columns=["info"])
    first = run_usage(section, store, harness.warehouse(), [KeyRangeSpan(0, 999)])
    assert (first.rows_read, first.inserted, first.rejected) == (300, 298, 2)
    # Nothing new: the retry alone reads the two rejected keys; they are still rejected, not rejected anew.
    again = run_usage(section, store, harness.warehouse(), [KeyRangeSpan(0, 999)])
    assert (again.rows_read, again.inserted, again.rejected, again.still_rejected) == (2, 0, 0, 2)
    assert again.rows_read == again.inserted + again.unchanged + again.rejected + again.still_rejected
    store.upsert_arrow("enduser", pa.table({"externalId": ["g"], "email": ["ghost@x.io"]}), "externalId")
    fixed = run_usage(section, store, harness.warehouse(), [])
    assert (fixed.rows_read, fixed.inserted, fixed.resolved_rejects) == (2, 2, 2)
    assert store.open_rejects("events") == []
    assert _loaded_keys(store) == keys


def test_emails_match_whatever_their_case_and_padding(
    harness: WarehouseHarness, store: ModelStore, tmp_path: Path
) -> None:
    section = _section(tmp_path)
    harness.create_table("events", _events([1, 2, 3], ["U0@X.io", " u1@x.IO ", "nobody@x.io"]), json_columns=["info"])
    result = run_usage(section, store, harness.warehouse(), [KeyRangeSpan(0, 99)])
    assert (result.inserted, result.rejected) == (2, 1)
    linked = store.con.execute(
        'SELECT a."key", e.email FROM user_activities a JOIN enduser e ON e.id = a."recordId" ORDER BY 1'
    ).fetchall()
    assert linked == [(1, "u0@x.io"), (2, "u1@x.io")]


def test_a_permanent_reject_is_not_retried_and_is_reported_once(
    harness: WarehouseHarness, store: ModelStore, tmp_path: Path
) -> None:
    section = _section(tmp_path)
    harness.create_table("events", _events([1, None, -4]), json_columns=["info"])
    first = run_usage(section, store, harness.warehouse(), [KeyRangeSpan(0, 99)])
    assert (first.inserted, first.rejected, first.still_rejected) == (1, 2, 0)
    records = _reject_records(store)
    assert [(k, permanent) for _, k, _, _, _, permanent in records] == [("(null)", True), ("-4", True)]
    again = run_usage(section, store, harness.warehouse(), [])
    # Only the invalid-key scan sees them (no retry reads them by key); unchanged, they are not new rejects.
    assert (again.rows_read, again.rejected, again.still_rejected) == (2, 0, 2)
    # The row changes (a key is given): the old record is resolved, the row loads.
    harness.create_table("events", _events([1, 2, -4]), json_columns=["info"])
    fixed = run_usage(section, store, harness.warehouse(), [KeyRangeSpan(0, 99)])
    assert (fixed.inserted, fixed.resolved_rejects) == (1, 1)
    assert [k for _, k, _, _ in store.open_rejects("events")] == ["-4"]


def test_progress_after_every_batch_ends_at_the_sources_last_key(
    duckdb_harness: WarehouseHarness, store: ModelStore, tmp_path: Path
) -> None:
    """A mostly empty last range (keys 1..10 of 0..99): the read's end is key 10, not 99, so the share is right."""
    section = _section(tmp_path)
    duckdb_harness.create_table("events", _events(list(range(1, 11))), json_columns=["info"])
    seen: list[Any] = []
    run_usage(section, store, duckdb_harness.warehouse(), [KeyRangeSpan(0, 99)], progress=seen.append)
    ranged = [p for p in seen if p.phase == "range"]
    assert [p.rows_read for p in ranged] == [4, 8, 10]  # one line per committed batch of 4
    assert [p.key for p in ranged] == [4, 8, 10] and {p.through for p in ranged} == {10}
    assert ranged[-1].describe().startswith("events (range): 10 read, 10 inserted, 0 rejected; key 10 of 10 (100%)")
