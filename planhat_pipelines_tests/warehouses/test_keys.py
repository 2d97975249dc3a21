"""Usage keys on every warehouse: only valid keys are ever in a range, planning skips empty ranges.

A valid key is a whole number ``0 <= key < 10**32``. Outliers (a 33-digit key, 1e40, NaN, infinity,
negatives, fractions) and text that is not a number never enter a range or the bounds; they are read
only by the ``invalid_keys`` scan, which rejects them with their reason.
"""

from __future__ import annotations

import math

import pyarrow as pa

from planhat_pipelines.warehouses.base import KeyRange
from planhat_pipelines_tests.harness import WarehouseHarness

SPAN = 1_000_000


def _keys(harness: WarehouseHarness, table: str, key_range: KeyRange) -> list[object]:
    with harness.warehouse() as wh:
        out: list[object] = []
        for batch in wh.read_batches(table, ["id"], batch_size=2, key_range=key_range):
            out += batch.column(0).to_pylist()
        return out


def test_float_keys_outliers_never_enter_bounds_or_ranges(harness: WarehouseHarness) -> None:
    keys = [1.0, 2.0, 3_000_000.0, 1e40, -5.0, 2.5, math.nan, math.inf, -math.inf, None]
    harness.create_table("float_keys", pa.table({"id": pa.array(keys, pa.float64())}))
    with harness.warehouse() as wh:
        assert wh.key_bounds("float_keys", "id") == (1, 3_000_000)
        # The empty ranges between 2 and 3,000,000 are skipped; 1e40 is no range at all.
        assert wh.occupied_ranges("float_keys", "id", SPAN) == [0, 3_000_000]
        assert wh.occupied_ranges("float_keys", "id", SPAN, after=2) == [3_000_000]
        assert wh.duplicate_keys("float_keys", KeyRange("id")) == []
    assert _keys(harness, "float_keys", KeyRange("id", after=0, through=SPAN - 1)) == [1.0, 2.0]
    invalid = _keys(harness, "float_keys", KeyRange("id", invalid_keys=True))
    assert len(invalid) == 7
    assert sorted(str(v) for v in invalid) == sorted(
        str(v) for v in [1e40, -5.0, 2.5, math.nan, math.inf, -math.inf, None]
    )


def test_text_keys_are_read_through_a_safe_cast(harness: WarehouseHarness) -> None:
    long_key = "1" + "0" * 32  # 33 digits
    keys = ["001", "2", " 7 ", "abc", "1.5", long_key, "-3", "2", None]
    harness.create_table("text_keys", pa.table({"id": pa.array(keys, pa.string())}))
    with harness.warehouse() as wh:
        assert wh.key_bounds("text_keys", "id") == (1, 7)
        assert wh.occupied_ranges("text_keys", "id", 5) == [0, 5]
        assert wh.duplicate_keys("text_keys", KeyRange("id", after=0, through=10)) == [2]
    # In numeric order, not text order; the original text comes back unchanged.
    assert _keys(harness, "text_keys", KeyRange("id", after=0, through=10)) == ["001", "2", "2", " 7 "]
    assert sorted(str(v) for v in _keys(harness, "text_keys", KeyRange("id", invalid_keys=True))) == sorted(
        ["abc", "1.5", long_key, "-3", "None"]
    )


def test_exact_keys_and_32_digit_keys(harness: WarehouseHarness) -> None:
    # 32 digits: beyond INT64, still a valid key. The emulators cannot hold it where the warehouses can: the
    # BigQuery emulator stores BIGNUMERIC as DECIMAL(38,18) (20 integer digits), fakesnow's TRY_CAST to
    # NUMBER(38,0) gives NULL past 64 bits. There a 19-digit key stands in; DuckDB runs the 32-digit case.
    big = 10**31 + 7 if harness.kind == "duckdb" else 10**18 + 7
    harness.create_table("big_keys", pa.table({"id": pa.array([str(k) for k in (5, 9, 11, big)], pa.string())}))
    with harness.warehouse() as wh:
        assert wh.key_bounds("big_keys", "id") == (5, big)
        assert wh.occupied_ranges("big_keys", "id", 10, after=5) == [0, 10, big - 7]
    assert _keys(harness, "big_keys", KeyRange("id", keys=(9, big))) == ["9", str(big)]
    assert _keys(harness, "big_keys", KeyRange("id", after=big - 1)) == [str(big)]
