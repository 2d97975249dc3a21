"""CRM rejects: one record per rejected source row (issue 11 item 6, CRM side).

Rows that share a key and a reason (several null keys, both copies of a duplicate key, identical rows)
used to collapse into one reject record. Each now carries a fingerprint of its source values plus its
occurrence number among identical rows, and ``rejected`` counts the records the run wrote.
Real DuckDB warehouse file and store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from planhat_pipelines.config import CrmSection
from planhat_pipelines.errors import KeyValidationError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import NULL_KEY, sync_section
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness
from planhat_pipelines_tests.sync.test_crm import section


def companies(duckdb_harness: DuckDBHarness, tmp_path: Path) -> CrmSection:
    return section(
        duckdb_harness,
        tmp_path,
        model="company",
        table="crm_companies",
        direction="receive",
        keys={"planhat": "externalId", "warehouse": "id"},
        fields=[{"planhat": "name", "warehouse": "name"}, {"planhat": "domains", "warehouse": "domains"}],
    )


def seed(duckdb_harness: DuckDBHarness, ids: list[str | None], names: list[str], domains: list[str]) -> None:
    duckdb_harness.create_table(
        "crm_companies", pa.table({"id": pa.array(ids, pa.string()), "name": names, "domains": domains})
    )


def records(store: ModelStore, section_name: str = "s") -> list[tuple[Any, ...]]:
    """Open reject records as (key, fingerprint, reason, value), sorted."""
    return sorted(
        tuple(r)
        for r in store.con.execute(
            'SELECT "key", fingerprint, reason, "value" FROM rejected_rows WHERE section = ? AND resolved_at IS NULL',
            [section_name],
        ).fetchall()
    )


def test_every_bad_row_is_its_own_reject_record(
    duckdb_harness: DuckDBHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed(
        duckdb_harness,
        [None, None, "", "d1", "d1", "x1", "x1", "ok", "bad"],
        ["a", "b", "c", "d", "e", "same", "same", "fine", "broken"],
        ["[]", "[]", "[]", "[]", "[]", "[]", "[]", "[]", "{not json"],
    )
    result = sync_section(companies(duckdb_harness, tmp_path), store, duckdb_harness.warehouse())
    got = records(store)
    assert (result.inserted, result.rejected, len(got)) == (1, 8, 8)
    by_key: dict[str, list[tuple[Any, ...]]] = {}
    for rec in got:
        by_key.setdefault(rec[0], []).append(rec)
    assert sorted((k, len(v)) for k, v in by_key.items()) == [(NULL_KEY, 3), ("bad", 1), ("d1", 2), ("x1", 2)]
    assert len({rec[1] for rec in got}) == 8  # every record has its own fingerprint
    # Two identical source rows are told apart by their occurrence number.
    x1 = sorted(rec[1] for rec in by_key["x1"])
    assert x1[0].split("#")[0] == x1[1].split("#")[0] and {x1[0][-2:], x1[1][-2:]} == {"#1", "#2"}
    assert by_key["bad"][0][2:] == ("field domains: '{not json' is not valid JSON", "{not json")
    assert {rec[3] for rec in by_key["d1"]} == {"d1"}  # the offending value of a key error is the key
    assert {rec[3] for rec in by_key[NULL_KEY]} == {None, ""}
    run = store.runs(section="s")[0]
    assert run.rejected == 8


def test_rejects_of_an_unchanged_source_are_the_same_records_next_run(
    duckdb_harness: DuckDBHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed(duckdb_harness, [None, None, "ok"], ["a", "a", "fine"], ["[]", "[]", "[]"])
    sec = companies(duckdb_harness, tmp_path)
    first = sync_section(sec, store, duckdb_harness.warehouse())
    before = records(store)
    second = sync_section(sec, store, duckdb_harness.warehouse())
    assert (first.rejected, second.rejected, second.resolved_rejects) == (2, 2, 0)
    assert records(store) == before and len(before) == 2
    assert store.con.execute("SELECT count(*) FROM rejected_rows").fetchall() == [(2,)]
    # One of the two null-key rows is fixed: only its record resolves.
    seed(duckdb_harness, [None, "n2", "ok"], ["a", "a", "fine"], ["[]", "[]", "[]"])
    third = sync_section(sec, store, duckdb_harness.warehouse())
    assert (third.inserted, third.rejected, third.resolved_rejects) == (1, 1, 1)
    assert len(records(store)) == 1


def test_a_section_whose_keys_are_all_bad_records_every_row(
    duckdb_harness: DuckDBHarness, tmp_path: Path, store: ModelStore
) -> None:
    seed(duckdb_harness, [None, None, "k", "k"], ["a", "b", "c", "d"], ["[]"] * 4)
    with pytest.raises(KeyValidationError):
        sync_section(companies(duckdb_harness, tmp_path), store, duckdb_harness.warehouse())
    assert len(records(store)) == 4
