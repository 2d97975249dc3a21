"""The two upsert forms (Arrow, staged relation) write the same records; cursors give the loaded-through key."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore, UpsertCounts


def _rows(store: ModelStore) -> list[tuple[object, ...]]:
    return store.con.execute(
        'SELECT "externalId", name, phase, CAST(custom AS VARCHAR) FROM company ORDER BY 1'
    ).fetchall()


def _batches() -> list[pa.Table]:
    first = pa.table({"externalId": ["a", "b"], "name": ["A", "B"], "custom": [json.dumps({"tier": "gold"}), None]})
    second = pa.table({"externalId": ["a", "b", "c"], "name": ["A", None, "C"], "phase": [None, "won", "new"]})
    return [first, second]


def test_staged_and_arrow_upserts_write_the_same_records(tmp_path: Path) -> None:
    arrow, staged = ModelStore(tmp_path / "arrow.duckdb"), ModelStore(tmp_path / "staged.duckdb")
    arrow_counts, staged_counts = [], []
    for batch in _batches():
        arrow_counts.append(arrow.upsert_arrow("company", batch, "externalId"))
        staged.con.register("__staged_in", batch)
        staged.con.execute("CREATE OR REPLACE TEMP TABLE __staged AS SELECT * FROM __staged_in")
        staged.con.unregister("__staged_in")
        staged_counts.append(staged.upsert_staged("company", "__staged", "externalId"))
    assert arrow_counts == staged_counts == [UpsertCounts(2, 0, 0), UpsertCounts(1, 1, 1)]
    assert (
        _rows(arrow)
        == _rows(staged)
        == [
            ("a", "A", None, '{"tier":"gold"}'),
            ("b", "B", "won", "{}"),
            ("c", "C", "new", None),  # inserted by a batch without custom
        ]
    )


def test_a_record_batch_reader_upserts_like_its_table(store: ModelStore) -> None:
    table = pa.table({"externalId": ["a", "b"], "name": ["A", "B"]})
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    assert store.upsert_arrow("company", reader, "externalId") == UpsertCounts(2, 0, 0)
    assert store.upsert_arrow("company", table, "externalId") == UpsertCounts(0, 0, 2)


def test_upserting_on_the_native_id_keeps_the_given_ids(store: ModelStore) -> None:
    ids = ["0123456789abcdef01234567", "fedcba9876543210fedcba98"]
    assert store.upsert_arrow("company", pa.table({"id": ids, "name": ["A", "B"]}), "id") == UpsertCounts(2, 0, 0)
    assert store.con.execute("SELECT id FROM company ORDER BY id").fetchall() == [(i,) for i in ids]


def test_a_relation_name_is_refused_by_the_arrow_form(store: ModelStore) -> None:
    with pytest.raises(TypeError, match="upsert_staged"):
        store.upsert_arrow("company", "__crm_ok", "externalId")


def test_an_unknown_field_is_named_and_nothing_is_written(store: ModelStore) -> None:
    store.con.execute("CREATE TEMP TABLE __staged AS SELECT 'a' AS \"externalId\", 'x' AS nmae")
    with pytest.raises(PlanhatPipelinesError, match="Company has no standard field 'nmae'"):
        store.upsert_staged("company", "__staged", "externalId")
    assert store.count("company") == 0


def test_loaded_through_is_the_highest_cursor_of_the_section(store: ModelStore) -> None:
    assert store.loaded_through("events") is None
    with store.transaction():
        store.set_cursor("events", "0000000001-0000001000", "1000")
        store.set_cursor("events", "0000001001-0000002000", "1500")
        store.set_cursor("other", "0000002001-0000003000", "2500")
    assert store.loaded_through("events") == 1500


def test_custom_fields_written_elsewhere_in_another_key_order_do_not_make_a_record_changed(store: ModelStore) -> None:
    # A calculated metric merges custom.<metric> into the record (json_merge_patch puts the patched keys last);
    # the CRM receive merges the source's custom fields the same way, so the stored keys' order flips between
    # the two writers. The same source values must still count as unchanged.
    source = pa.table({"externalId": ["a"], "custom": [json.dumps({"tier": "gold", "seats": 5})]})
    assert store.upsert_arrow("company", source, "externalId") == UpsertCounts(1, 0, 0)
    store.con.execute("""UPDATE company SET custom = json_merge_patch(custom, '{"active_users_7d": 3}')""")
    assert store.upsert_arrow("company", source, "externalId") == UpsertCounts(0, 0, 1)
    stored = store.con.execute("SELECT CAST(custom AS VARCHAR) FROM company").fetchall()[0][0]
    assert json.loads(stored) == {"tier": "gold", "seats": 5, "active_users_7d": 3}
    changed = pa.table({"externalId": ["a"], "custom": [json.dumps({"tier": "silver"})]})
    assert store.upsert_arrow("company", changed, "externalId") == UpsertCounts(0, 1, 0)
