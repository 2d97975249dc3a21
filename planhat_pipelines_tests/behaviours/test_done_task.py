"""convert_done_tasks on the real store: only done tasks convert, never twice, the warehouse wins."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from planhat_pipelines.behaviours import BehaviourResult, convert_done_tasks
from planhat_pipelines.config import DoneTaskBehaviour
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.behaviours.seed import ids, seed, table_contents
from planhat_pipelines_tests.behaviours.warehouse import company, receive
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness

NOW = datetime(2026, 6, 1, 12, 0)
_CONVERSATION = (
    'SELECT "externalId", "taskId", type, subject, description, "date", "companyId", CAST("endUserIds" AS VARCHAR) '
    'FROM conversation ORDER BY "externalId"'
)


def _conversations(store: ModelStore) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store.con.execute(_CONVERSATION).fetchall()]


def _tasks(store: ModelStore, rows: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    cid = company(store)
    seed(store, "task", [{"companyId": cid, "title": "Kick-off", "endUserIds": ["u1", "u2"], **row} for row in rows])
    return cid, ids(store, "task")


def _seen(store: ModelStore, key: str) -> datetime:
    return store.con.execute('SELECT _updated_at FROM task WHERE "externalId" = ?', [key]).fetchall()[0][0]


@pytest.mark.parametrize(
    ("status", "converts"),
    [("done", True), (" Completed ", True), ("open", False), ("in progress", False), (None, False)],
    ids=["done", "completed-padded", "open", "in-progress", "no-status"],
)
def test_only_done_tasks_convert(store: ModelStore, status: str | None, converts: bool) -> None:
    cid, native = _tasks(store, [{"externalId": "t1", "status": status, "description": "Went well"}])
    result = convert_done_tasks(store, DoneTaskBehaviour(), NOW)
    expected = [("task:t1", native["t1"], "task", "Kick-off", "Went well", _seen(store, "t1"), cid, '["u1", "u2"]')]
    assert _conversations(store) == (expected if converts else [])
    assert result == BehaviourResult("done_task_conversation", int(converts), int(converts), 0, 0)


def test_keys_type_date_and_tasks_without_a_company(store: ModelStore) -> None:
    cid, native = _tasks(
        store,
        [
            {"sourceId": "x-1", "status": "done"},  # no externalId: keyed by its native id
            {"externalId": "t2", "status": "done", "companyId": None},  # no company: not examined
        ],
    )
    store.con.execute("UPDATE task SET _updated_at = NULL")  # when it changed is unknown: the run's now
    result = convert_done_tasks(store, DoneTaskBehaviour(conversation_type="Meeting", key_prefix="t-"), NOW)
    unkeyed = native[None]  # type: ignore[index]
    assert _conversations(store) == [(f"t-{unkeyed}", unkeyed, "Meeting", "Kick-off", None, NOW, cid, '["u1", "u2"]')]
    assert (result.examined, result.changed) == (1, 1)


@pytest.mark.all_catalogs
def test_second_run_creates_nothing(store: ModelStore) -> None:
    _tasks(store, [{"externalId": "t1", "status": "done"}, {"externalId": "t2", "status": "open"}])
    first = convert_done_tasks(store, DoneTaskBehaviour(), NOW)
    before = {t: table_contents(store, t) for t in ("conversation", "task", "company")}
    again = convert_done_tasks(store, DoneTaskBehaviour(), NOW)
    assert (first.changed, again.changed, again.skipped_existing) == (1, 0, 1)
    assert {t: table_contents(store, t) for t in before} == before


def test_disabled_writes_nothing(store: ModelStore) -> None:
    _tasks(store, [{"externalId": "t1", "status": "done"}])
    before = {t: table_contents(store, t) for t in ("conversation", "task", "company")}
    assert convert_done_tasks(store, DoneTaskBehaviour(enabled=False), NOW).metadata() == dict.fromkeys(
        ("examined", "changed", "skipped_existing", "companies_changed"), 0
    )
    assert {t: table_contents(store, t) for t in before} == before


# --- which wins: the warehouse's conversation for the same task ----------------------------------------------
def test_a_conversation_the_warehouse_sent_first_wins(
    store: ModelStore, duckdb_harness: DuckDBHarness, tmp_path: Path
) -> None:
    cid, native = _tasks(store, [{"externalId": "t1", "status": "done"}, {"externalId": "t2", "status": "done"}])
    receive(
        store,
        duckdb_harness,
        tmp_path,
        "conversation",
        {"key": ["task:t1"], "company_key": ["c"], "subject": ["From the warehouse"]},
        {"subject": "subject"},
    )
    seed(store, "conversation", [{"externalId": "zendesk-9", "companyId": cid, "taskId": native["t2"]}])
    before = table_contents(store, "conversation")
    result = convert_done_tasks(store, DoneTaskBehaviour(), NOW)
    assert (result.examined, result.changed, result.skipped_existing) == (2, 0, 2)
    assert table_contents(store, "conversation") == before


def test_the_warehouse_updates_the_conversation_the_behaviour_made(
    store: ModelStore, duckdb_harness: DuckDBHarness, tmp_path: Path
) -> None:
    cid, native = _tasks(store, [{"externalId": "t1", "status": "done"}])
    convert_done_tasks(store, DoneTaskBehaviour(), NOW)
    (made,) = store.con.execute("SELECT id FROM conversation").fetchall()[0]
    receive(
        store,
        duckdb_harness,
        tmp_path,
        "conversation",
        {"key": ["task:t1"], "company_key": ["c"], "subject": ["Kick-off call"], "type": ["call"]},
        {"subject": "subject", "type": "type"},
    )
    assert store.con.execute("SELECT id FROM conversation").fetchall() == [(made,)]
    assert _conversations(store) == [
        ("task:t1", native["t1"], "call", "Kick-off call", None, _seen(store, "t1"), cid, '["u1", "u2"]')
    ]
    assert convert_done_tasks(store, DoneTaskBehaviour(), NOW).changed == 0
