"""Done Task -> one Conversation: Planhat's "when a Task is completed it is converted into a Conversation".

Every Task whose ``status`` (trimmed, lower-cased) is one of ``done_statuses`` and that has a company gets one
Conversation, inserted in one set-based statement: a new native id, ``externalId`` = ``key_prefix`` + the task's
``externalId`` (else its ``id``), ``type`` = ``conversation_type``, ``subject`` = the task's ``title``,
``description`` = its ``description``, ``date`` = when the store saw the task change (its ``_updated_at``; the
run's ``now`` when unknown), ``companyId``, ``endUserIds`` = the task's, ``taskId`` = the task's id.

**Never twice, and the warehouse wins.** The conversation is the same record when it is linked to the task
(``conversation.taskId = task.id``) or has the key ``key_prefix`` + the task's key. The behaviour never updates an
existing conversation and never creates a second one. So a warehouse section that sends that conversation
(``externalId`` ``task:<task key>``, or linked by ``taskId``) wins: if it arrived first, the behaviour creates
nothing (``skipped_existing``); if the behaviour created it first, the section's next receive matches it on
``externalId`` and updates it, its values winning field by field. Conversations derive no Company field, so
``companies_changed`` is always 0 and the Company fields are not refreshed.
"""

from __future__ import annotations

from datetime import datetime

from planhat_pipelines.behaviours.result import BehaviourResult
from planhat_pipelines.config.behaviours import DoneTaskBehaviour
from planhat_pipelines.models.catalog import trim_sql
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.upsert import NEW_ID_SQL

NAME = "done_task_conversation"

_DONE_SQL = f"""
CREATE OR REPLACE TEMP TABLE __done AS
SELECT t.id, t."companyId", t.title, t.description, t."endUserIds", t._updated_at, k.__key,
       (ct.id IS NOT NULL OR ck.k IS NOT NULL) AS __exists
FROM task t
CROSS JOIN LATERAL (SELECT $prefix || COALESCE(t."externalId", t.id) AS __key) k
LEFT JOIN (SELECT DISTINCT "taskId" AS id FROM conversation WHERE "taskId" IS NOT NULL) ct ON ct.id = t.id
LEFT JOIN (SELECT DISTINCT "externalId" AS k FROM conversation WHERE "externalId" IS NOT NULL) ck ON ck.k = k.__key
WHERE list_contains(CAST($statuses AS VARCHAR[]), lower({trim_sql("t.status")})) AND t."companyId" IS NOT NULL
"""

_INSERT_SQL = f"""
INSERT INTO conversation (id, "externalId", type, subject, description, "date", "companyId", "endUserIds", "taskId",
                          _updated_at)
SELECT {NEW_ID_SQL}, __key, CAST($type AS VARCHAR), title, description,
       COALESCE(_updated_at, CAST($now AS TIMESTAMP)), "companyId", "endUserIds", id, now()
FROM __done WHERE NOT __exists
QUALIFY row_number() OVER (PARTITION BY __key ORDER BY id) = 1
"""


def convert_done_tasks(store: ModelStore, behaviour: DoneTaskBehaviour, now: datetime) -> BehaviourResult:
    """Create one Conversation per done Task that has none, in one transaction (see the module docstring).

    Args:
        store: The model store.
        behaviour: The behaviour's settings (disabled: nothing is read or written, every count is 0).
        now: The conversation's date when the store does not know when the task changed.

    Returns:
        examined: done tasks with a company; changed: conversations created; skipped_existing: done tasks
        whose conversation exists; companies_changed: 0.
    """
    if not behaviour.enabled:
        return BehaviourResult(NAME)
    con = store.con
    statuses = [s.strip().lower() for s in behaviour.done_statuses]

    def work() -> BehaviourResult:
        con.execute(_DONE_SQL, {"prefix": behaviour.key_prefix, "statuses": statuses})
        examined, existing = con.execute("SELECT count(*), count(*) FILTER (WHERE __exists) FROM __done").fetchall()[0]
        created = 0
        if examined > existing:
            params = {"type": behaviour.conversation_type, "now": now}
            created = int(con.execute(_INSERT_SQL, params).fetchall()[0][0])
        con.execute("DROP TABLE __done")
        return BehaviourResult(NAME, int(examined), created, int(existing), 0)

    return store.atomic(work)
