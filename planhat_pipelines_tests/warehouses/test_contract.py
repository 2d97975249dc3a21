"""The contract every warehouse adapter passes: DuckDB for real, BigQuery and Snowflake on emulators."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from planhat_pipelines.errors import ReadOnlyTargetError, WarehouseError
from planhat_pipelines.warehouses.base import ColumnKind, KeyRange
from planhat_pipelines_tests.harness import WarehouseHarness


def _events(n: int) -> pa.Table:
    return pa.table(
        {
            "event_id": pa.array(range(1, n + 1), pa.int64()),
            "user_email": [f"user{i % 7}@example.com" for i in range(1, n + 1)],
            "payload": [json.dumps({"plan": "pro", "seats": i}) for i in range(1, n + 1)],
        }
    )


def test_describe_table_and_view(harness: WarehouseHarness) -> None:
    harness.create_table("events", _events(3), json_columns=["payload"])
    harness.create_view("events_view", "SELECT event_id, user_email FROM events")
    wh = harness.warehouse()
    info = wh.describe("events")
    assert not info.is_view
    assert info.column("event_id").is_integer_valued
    assert info.column("user_email").kind is ColumnKind.TEXT
    assert info.column("payload").kind is ColumnKind.JSON
    view = wh.describe("events_view")
    assert view.is_view
    assert [c.name.lower() for c in view.columns] == ["event_id", "user_email"]


def test_describe_missing_table_names_connection_and_table(harness: WarehouseHarness) -> None:
    wh = harness.warehouse("analytics")
    with pytest.raises(WarehouseError, match=r"connection 'analytics'.*no_such_table"):
        wh.describe("no_such_table")


def test_missing_column_is_named(harness: WarehouseHarness) -> None:
    harness.create_table("events", _events(3), json_columns=["payload"])
    wh = harness.warehouse()
    with pytest.raises(WarehouseError, match="has no column 'nope'"):
        wh.describe("events").column("nope")


def test_identifiers_are_validated_not_pasted(harness: WarehouseHarness) -> None:
    wh = harness.warehouse()
    with pytest.raises(WarehouseError, match="not a plain identifier"):
        wh.describe("events; DROP TABLE x")


def test_read_full_table_in_batches(harness: WarehouseHarness) -> None:
    harness.create_table("events", _events(25), json_columns=["payload"])
    wh = harness.warehouse()
    batches = list(wh.read_batches("events", ["event_id", "payload"], batch_size=10))
    assert all(b.num_rows <= 10 for b in batches)
    table = pa.Table.from_batches(batches)
    assert sorted(table.column("event_id").to_pylist()) == list(range(1, 26))
    # JSON comes back as JSON text, never as a Python repr.
    payloads = [json.loads(p) for p in table.column("payload").to_pylist()]
    assert {p["seats"] for p in payloads} == set(range(1, 26))


def test_read_key_range_in_key_order(harness: WarehouseHarness) -> None:
    harness.create_table("events", _events(30), json_columns=["payload"])
    wh = harness.warehouse()
    rng = KeyRange("event_id", after=10, through=20)
    keys = [
        k for b in wh.read_batches("events", ["event_id"], batch_size=4, key_range=rng) for k in b.column(0).to_pylist()
    ]
    assert keys == list(range(11, 21))


def test_max_key_and_duplicates(harness: WarehouseHarness) -> None:
    data = pa.table({"event_id": pa.array([1, 2, 2, 3, 5, 5, 5], pa.int64()), "x": list("abcdefg")})
    harness.create_table("dups", data)
    wh = harness.warehouse()
    assert wh.max_key("dups", "event_id") == 5
    assert wh.key_bounds("dups", "event_id") == (1, 5)
    assert sorted(wh.duplicate_keys("dups", KeyRange("event_id", after=0, through=4))) == [2]
    assert sorted(wh.duplicate_keys("dups", KeyRange("event_id"))) == [2, 5]


def test_key_counts_are_one_aggregate_over_valid_keys(harness: WarehouseHarness) -> None:
    data = pa.table({"event_id": pa.array([1, 2, 2, 3, 5, 5, 5, None, -4], pa.int64()), "x": list("abcdefghi")})
    harness.create_table("dups", data)
    wh = harness.warehouse()
    assert wh.key_counts("dups", KeyRange("event_id", after=None, through=4)) == (4, 3)  # 1, 2, 2, 3
    assert wh.key_counts("dups", KeyRange("event_id")) == (7, 4)  # NULL and -4 are not valid keys
    assert wh.key_counts("dups", KeyRange("event_id", after=5)) == (0, 0)


def test_max_key_of_empty_table_is_none(harness: WarehouseHarness) -> None:
    harness.create_table("empty", pa.table({"event_id": pa.array([], pa.int64())}))
    assert harness.warehouse().max_key("empty", "event_id") is None
    assert harness.warehouse().key_bounds("empty", "event_id") is None


def test_query_returns_arrow(harness: WarehouseHarness) -> None:
    harness.create_table("events", _events(12), json_columns=["payload"])
    result = harness.warehouse().query("SELECT count(*) AS n FROM events")
    assert result.num_rows == 1 and result.num_columns == 1
    assert result.column(0)[0].as_py() == 12


def test_merge_inserts_and_updates_by_key(harness: WarehouseHarness) -> None:
    seed = pa.table({"ext_id": ["a", "b"], "name": ["Acme", "Beta"], "arr": [10.0, 20.0]})
    harness.create_table("accounts", seed)
    wh = harness.warehouse()
    result = wh.merge(
        "accounts",
        pa.table({"ext_id": ["b", "c"], "name": ["Beta 2", "Gamma"], "arr": [21.0, 5.0]}),
        "ext_id",
        batch_size=1,
    )
    assert (result.inserted, result.updated) == (1, 1)
    rows = sorted(harness.fetch("SELECT ext_id, name, arr FROM accounts"))
    assert rows == [("a", "Acme", 10.0), ("b", "Beta 2", 21.0), ("c", "Gamma", 5.0)]


def test_merge_into_view_is_refused_before_any_write(harness: WarehouseHarness) -> None:
    harness.create_table("accounts", pa.table({"ext_id": ["a"], "name": ["Acme"]}))
    harness.create_view("accounts_view", "SELECT ext_id, name FROM accounts")
    wh = harness.warehouse("crm_wh")
    with pytest.raises(ReadOnlyTargetError, match=r"crm_wh.*accounts_view.*read-only"):
        wh.merge("accounts_view", pa.table({"ext_id": ["z"], "name": ["Zed"]}), "ext_id")
    assert harness.fetch("SELECT count(*) FROM accounts") == [(1,)]


def test_merge_with_unknown_column_writes_nothing(harness: WarehouseHarness) -> None:
    harness.create_table("accounts", pa.table({"ext_id": ["a"], "name": ["Acme"]}))
    wh = harness.warehouse()
    with pytest.raises(WarehouseError, match="has no column 'nope'"):
        wh.merge("accounts", pa.table({"ext_id": ["z"], "nope": ["x"]}), "ext_id")
    assert harness.fetch("SELECT count(*) FROM accounts") == [(1,)]


def test_probe_passes_on_a_working_connection(harness: WarehouseHarness) -> None:
    harness.create_table("accounts", pa.table({"ext_id": ["a"]}))
    harness.warehouse().probe()


def test_delete_keys_deletes_only_the_named_rows_and_refuses_a_view(harness: WarehouseHarness) -> None:
    harness.create_table("accounts", pa.table({"id": ["a", "b", "c", "d"], "n": [1, 2, 3, 4]}))
    harness.create_view("accounts_view", "SELECT id, n FROM accounts")
    wh = harness.warehouse()
    assert wh.delete_keys("accounts", "id", ["b", "d", "zz"], batch_size=2) == 2
    assert sorted(r[0] for r in harness.fetch("SELECT id FROM accounts")) == ["a", "c"]
    assert wh.delete_keys("accounts", "id", []) == 0
    with pytest.raises(ReadOnlyTargetError, match="accounts_view"):
        wh.delete_keys("accounts_view", "id", ["a"])
    assert len(harness.fetch("SELECT id FROM accounts")) == 2
