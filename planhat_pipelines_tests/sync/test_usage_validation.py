"""The usage sync's validation SQL, run by DuckDB over one batch in an in-memory store (no warehouse).

Each test registers a small Arrow batch as ``__usage_batch`` the way a batch load does, builds the
validating view for the key column's kind and asserts on the rows it gives: the key as a number, the
reject reason, the offending value and whether the reject is permanent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from planhat_pipelines.config import UsageSection
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.usage.validation import prepare_refs, validating_view, with_references
from planhat_pipelines.warehouses.base import ColumnKind
from planhat_pipelines_tests.builders import config_doc, duckdb_connection, parse, usage_section

#: One checked row: (key as text, key as a number, reason, offending value, permanent).
Checked = tuple[str | None, int | None, str | None, str | None, bool]


def _section(tmp_path: Path, **overrides: Any) -> UsageSection:
    """An activities section on End Users matched by email, parsed by the real config parser."""
    section = usage_section(**overrides)
    raw = config_doc(tmp_path, store="store.sqlite", connections={"wh": duckdb_connection("w.duckdb")}, usage=[section])
    return parse(raw, tmp_path).usage[0]


@pytest.fixture
def store(store: ModelStore) -> ModelStore:
    """The conftest store (each catalog) holding two End Users."""
    store.upsert_arrow("enduser", pa.table({"externalId": ["e0", "e1"], "email": ["u0@x.io", "u1@x.io"]}), "externalId")
    return store


def _batch(keys: pa.Array, emails: Sequence[str | None] | None = None) -> pa.RecordBatch:
    n = len(keys)
    return pa.record_batch(
        {
            "event_id": keys,
            "user_email": pa.array(list(emails) if emails is not None else ["u0@x.io"] * n, pa.string()),
            "action": ["login"] * n,
            "occurred_at": pa.array([datetime(2026, 1, 1, 12, 0)] * n, pa.timestamp("us")),
        }
    )


def _check(
    store: ModelStore,
    section: UsageSection,
    kind: ColumnKind,
    batch: pa.RecordBatch,
    duplicate_keys: Sequence[int] = (),
) -> list[Checked]:
    """Run the validating view over ``batch``; its rows sorted by key text (nulls first)."""
    con = store.con
    prepare_refs(section, store)
    con.register("__usage_batch", with_references(section, con, batch))
    con.register("__usage_dups_in", pa.table({"dup_key": pa.array([str(k) for k in duplicate_keys], pa.string())}))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __usage_dups AS SELECT CAST(dup_key AS HUGEINT) AS dup_key FROM __usage_dups_in"
    )
    con.execute(validating_view(section, kind, batch.schema.names, duplicates=bool(duplicate_keys)))
    rows = con.execute(
        "SELECT CAST(__key AS VARCHAR), __num, __reason, __value, __permanent FROM __usage_rows "
        "ORDER BY CAST(__key AS VARCHAR) NULLS FIRST, __reason NULLS FIRST"
    ).fetchall()
    return [(k, None if n is None else int(n), r, v, bool(p)) for k, n, r, v, p in rows]


def test_text_key_is_trimmed_digits_of_at_most_32(store: ModelStore, tmp_path: Path) -> None:
    digits_32 = "9" * 32
    digits_33 = "1" * 33
    keys = pa.array(["7", " 42 ", "abc", "-3", "1.5", "", None, digits_32, digits_33], pa.string())
    rows = _check(store, _section(tmp_path), ColumnKind.TEXT, _batch(keys))

    def bad(text: str) -> Checked:
        return (text, None, f"key '{text}' is not a whole number of 1 to 32 digits", text, True)

    assert rows == [
        (None, None, "null key", None, True),
        bad(""),
        (" 42 ", 42, None, None, False),
        bad("-3"),
        bad("1.5"),
        bad(digits_33),
        ("7", 7, None, None, False),
        (digits_32, 10**32 - 1, None, None, False),
        bad("abc"),
    ]


def test_float_key_rejects_nan_infinity_fractions_and_floats_above_2_53(store: ModelStore, tmp_path: Path) -> None:
    keys = pa.array([3.0, 2.5, math.nan, math.inf, -1.0, 1e40, 2.0**53, 2.0**53 - 1], pa.float64())
    rows = {(k, r): (n, v, p) for k, n, r, v, p in _check(store, _section(tmp_path), ColumnKind.FLOAT, _batch(keys))}
    above = "is a float above 2**53, which cannot hold every whole number (cast the key column to an integer type)"
    # Reasons and values quote the key as DuckDB casts the double to text.
    assert rows == {
        ("3.0", None): (3, None, False),
        ("2.5", "key 2.5 is not a whole number"): (None, "2.5", True),
        ("nan", "key nan is not a finite number"): (None, "nan", True),
        ("inf", "key inf is not a finite number"): (None, "inf", True),
        ("-1.0", "key -1.0 is negative"): (None, "-1.0", True),
        ("1e+40", f"key 1e+40 {above}"): (None, "1e+40", True),
        ("9007199254740992.0", f"key 9007199254740992.0 {above}"): (None, "9007199254740992.0", True),
        ("9007199254740991.0", None): (2**53 - 1, None, False),
    }


def test_decimal_key_of_33_digits_is_too_long(store: ModelStore, tmp_path: Path) -> None:
    longest = 10**32 - 1
    keys = pa.array([Decimal(longest), Decimal(10**32), Decimal(5)], pa.decimal128(38, 0))
    rows = _check(store, _section(tmp_path), ColumnKind.DECIMAL, _batch(keys))
    assert rows == [
        (str(10**32), None, f"key {10**32} is longer than 32 digits", str(10**32), True),
        ("5", 5, None, None, False),
        (str(longest), longest, None, None, False),
    ]


def test_duplicate_key_rejects_every_copy_and_is_retryable(store: ModelStore, tmp_path: Path) -> None:
    keys = pa.array([5, 5, 6], pa.int64())
    rows = _check(store, _section(tmp_path), ColumnKind.INTEGER, _batch(keys), duplicate_keys=[5])
    duplicate = ("5", 5, "key 5 occurs more than once in the source", None, False)
    assert rows == [duplicate, duplicate, ("6", 6, None, None, False)]


def test_email_reference_matches_in_other_case_and_unknown_one_is_retryable(store: ModelStore, tmp_path: Path) -> None:
    section = _section(tmp_path)
    keys = pa.array([1, 2, 3, 4], pa.int64())
    batch = _batch(keys, [" U0@X.io ", "U1@x.IO", "ghost@x.io", None])
    rows = _check(store, section, ColumnKind.INTEGER, batch)
    assert rows == [
        ("1", 1, None, None, False),
        ("2", 2, None, None, False),
        ("3", 3, "unknown enduser ghost@x.io (matched by email)", "ghost@x.io", False),
        ("4", 4, "missing End User reference (user_email)", None, False),
    ]
    ids = dict(store.con.execute("SELECT email, id FROM enduser").fetchall())
    matched = dict(store.con.execute("SELECT __key, __record_id FROM __usage_rows WHERE __key < 3").fetchall())
    assert matched == {1: ids["u0@x.io"], 2: ids["u1@x.io"]}
