"""Records that left one side, handled on purpose: archived or deleted in the store, or deleted in the warehouse.

Receive (``on_missing: archive | delete``; ``ignore``, the default, keeps them as Planhat does)
    A section's records are the keys it has accepted (``crm_source_hashes``). On a full read, those whose key
    is no longer in the table left the source; on a partial read, those change tracking reports deleted. They
    are staged in ``__crm_missing`` and, in the run's store transaction, archived (``_archived_at`` set, kept,
    hidden from the web app; a record that comes back is restored) or deleted, each with its change-log row.

Send (``mirror: true``)
    Warehouse rows of the target whose key matches no store record are deleted from the warehouse, after the
    merge, with ``Warehouse.delete_keys``.

The safety limit (``delete_limit``, default 10 % of the records the side holds, or a count)
    Checked before anything is written: a run that would remove more fails with the numbers and the command
    that lets it through once (``planhat-pipelines allow-deletes --section S --count N``). That approval is a
    cursor of the section (scope ``allow-deletes``) and is used up by the run it lets through.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from planhat_pipelines.config import CrmSection, OnMissing
from planhat_pipelines.errors import DeleteLimitError
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.sql_quoting import quote_literal as lit
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.change_log import field_changes_sql
from planhat_pipelines.sync.crm.keys import key_sql
from planhat_pipelines.sync.crm.result import CrmResult
from planhat_pipelines.warehouses.base import ChangeSet, Warehouse

#: The cursor scope holding a one-time approval to remove more than the limit.
APPROVAL_SCOPE = "allow-deletes"


def approve_deletes(store: ModelStore, section: str, count: int) -> None:
    """Let the next run of ``section`` remove up to ``count`` records although that is over its limit."""
    store.set_cursor(section, APPROVAL_SCOPE, str(count))


def check_limit(store: ModelStore, section: CrmSection, removing: int, holding: int, side: str) -> bool:
    """Refuse a removal over the section's limit unless approved; returns whether an approval was needed.

    Raises:
        DeleteLimitError: Over the limit and not approved for at least ``removing`` records.
    """
    if not removing or section.delete_limit.allows(removing, holding):
        return False
    approved = store.get_cursor(section.name, APPROVAL_SCOPE)
    if approved is not None and removing <= int(approved):
        return True
    share = f"{removing * 100 / holding:.1f} %" if holding else "all"
    raise DeleteLimitError(
        message=f"section '{section.name}' would remove {removing} of the {holding} records {side} ({share}), "
        f"more than its delete_limit of {section.delete_limit.describe()}; nothing was written",
        fix=f"see which with `planhat-pipelines preview --section {section.name}`; if they really left, let this "
        f"through once with `planhat-pipelines allow-deletes --section {section.name} --count {removing}` and run "
        "again, or raise 'delete_limit' in the section",
    )


def use_approval(store: ModelStore, section: str) -> None:
    """Spend the one-time approval (call in the transaction of the removal it let through)."""
    store.con.execute("DELETE FROM sync_cursors WHERE section = ? AND scope = ?", [section, APPROVAL_SCOPE])


# --- receive ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Removal:
    """The records a receive run removes (staged in ``__crm_missing``), checked against the limit.

    Attributes:
        count: How many.
        approved: Over the limit, let through by a one-time approval (which the run then spends).
        refused: In a preview, why a real run would be refused (the limit's message); else None.
    """

    count: int
    approved: bool
    refused: str | None = None


def plan_removal(
    store: ModelStore, section: CrmSection, change_set: ChangeSet | None, *, enforce: bool = True
) -> Removal | None:
    """Stage the section's records that left the source and refuse a removal over the limit, before any write.

    Args:
        enforce: Raise when over the limit; a preview passes False and gets the reason in ``refused``.

    Returns:
        None when nothing left.

    Raises:
        DeleteLimitError: More would go than the limit allows, and no approval covers them.
    """
    deleted = None if change_set is None else change_set.deleted_keys
    count, holding = stage_missing(store, section, deleted)
    if not count:
        return None
    try:
        return Removal(count, check_limit(store, section, count, holding, "it holds in the store"))
    except DeleteLimitError as exc:
        if enforce:
            raise
        return Removal(count, False, str(exc))


def apply_removal(store: ModelStore, section: CrmSection, run_id: str, removal: Removal | None) -> int:
    """Archive or delete the planned records (inside the run's store transaction); returns how many."""
    if removal is None:
        return 0
    removed = remove_missing(store, section, run_id)
    if removal.approved:
        use_approval(store, section.name)
    return removed


def describe_removal(section: CrmSection, result: CrmResult) -> list[str]:
    """The log lines of what left and what came back."""
    lines = []
    if result.removed:
        how = "archived" if section.on_missing is OnMissing.ARCHIVE else "deleted"
        lines.append(f"{result.removed} records left the source and were {how} in the store")
    if result.restored:
        lines.append(f"{result.restored} archived records came back in the source and were restored")
    return lines


def stage_missing(store: ModelStore, section: CrmSection, deleted_keys: pa.Array | None) -> tuple[int, int]:
    """Stage ``__crm_missing`` (``__key``): the section's records that left the source, read from ``__crm_src``.

    Args:
        deleted_keys: None after a full read (every key not read is gone); else the keys change tracking
            reported deleted (as the warehouse spells them).

    Returns:
        (records leaving, records the section held before the run).
    """
    con = store.con
    holding = int(
        con.execute("SELECT count(*) FROM crm_source_hashes WHERE section = ?", [section.name]).fetchall()[0][0]
    )
    gone = 'SELECT h."key" FROM crm_source_hashes h WHERE h.section = ?'
    if deleted_keys is not None:
        con.register("__crm_deleted", pa.table({"k": deleted_keys.cast(pa.string())}))
        gone += f' AND h."key" IN (SELECT {key_sql(section, "d.k")} FROM __crm_deleted d)'
    try:
        # An anti-join by LEFT JOIN (DuckLake 1.5.5 fails NOT EXISTS against its tables): keys read now stay.
        con.execute(
            f'CREATE OR REPLACE TEMP TABLE __crm_missing AS SELECT g."key" AS __key FROM ({gone}) g '
            'LEFT JOIN (SELECT DISTINCT __nkey FROM __crm_src) r ON r.__nkey = g."key" WHERE r.__nkey IS NULL',
            [section.name],
        )
    finally:
        if deleted_keys is not None:
            con.unregister("__crm_deleted")
    return int(con.execute("SELECT count(*) FROM __crm_missing").fetchall()[0][0]), holding


def remove_missing(store: ModelStore, section: CrmSection, run_id: str) -> int:
    """Archive or delete the records staged in ``__crm_missing``, with their change-log rows (in the caller's
    transaction); forget their row hashes, so a row that comes back is read again. Returns how many."""
    con, table, key = store.con, q(section.model.slug), q(section.planhat_key)
    archive = section.on_missing is OnMissing.ARCHIVE
    # A delete keeps the mapped fields' last values in its log row (old → null): what was lost can be seen.
    names = [f.planhat for f in section.receive_fields() if not f.is_custom and section.model.field(f.planhat)]
    pairs = [] if archive else [(n, f"t.{q(n)}", "NULL") for n in dict.fromkeys(names) if n != section.planhat_key]
    fields = field_changes_sql([("_archived_at", "NULL", "now()")] if archive else pairs)
    con.execute(
        f"INSERT INTO change_log SELECT now(), {lit(section.name)}, {lit(run_id)}, {lit(section.model.slug)}, "
        f"t.{key}, t.id, {lit('archive' if archive else 'delete')}, {fields} FROM {table} t "
        f"JOIN __crm_missing m ON m.__key = t.{key} WHERE t._archived_at IS NULL"
    )
    if archive:
        removed = con.execute(
            f"UPDATE {table} SET _archived_at = now() WHERE _archived_at IS NULL AND {key} IN "
            "(SELECT __key FROM __crm_missing)"
        ).fetchall()[0][0]
    else:
        removed = con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT __key FROM __crm_missing)").fetchall()[0][0]
    con.execute(
        'DELETE FROM crm_source_hashes WHERE section = ? AND "key" IN (SELECT __key FROM __crm_missing)',
        [section.name],
    )
    return int(removed)


def restore_returned(store: ModelStore, section: CrmSection, run_id: str, accepted: str) -> int:
    """Un-archive the records whose rows are back (keys in ``accepted``'s Planhat key column), logging each."""
    con, table, key = store.con, q(section.model.slug), q(section.planhat_key)
    back = f"_archived_at IS NOT NULL AND {key} IN (SELECT {key} FROM {accepted})"
    fields = field_changes_sql([("_archived_at", "t._archived_at", "NULL")])
    con.execute(
        f"INSERT INTO change_log SELECT now(), {lit(section.name)}, {lit(run_id)}, {lit(section.model.slug)}, "
        f"t.{key}, t.id, 'restore', {fields} FROM {table} t WHERE t.{back}"
    )
    return int(con.execute(f"UPDATE {table} SET _archived_at = NULL WHERE {back}").fetchall()[0][0])


# --- send ---------------------------------------------------------------------------------------------------
def plan_mirror(store: ModelStore, section: CrmSection, *, enforce: bool = True) -> Removal | None:
    """Stage ``__crm_gone``: target rows (``__crm_wh``) whose key matches no store record (``__crm_send``).

    Raises:
        DeleteLimitError: More would go than the limit allows (checked before the merge writes anything).
    """
    con, wkey = store.con, q(section.warehouse_key)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __crm_gone AS SELECT DISTINCT CAST(w.{wkey} AS VARCHAR) AS __wkey "
        f"FROM __crm_wh w LEFT JOIN __crm_send s ON {key_sql(section, f's.{wkey}')} = "
        f"{key_sql(section, f'CAST(w.{wkey} AS VARCHAR)')} WHERE s.{wkey} IS NULL AND w.{wkey} IS NOT NULL"
    )
    count = int(con.execute("SELECT count(*) FROM __crm_gone").fetchall()[0][0])
    if not count:
        return None
    holding = int(con.execute("SELECT count(*) FROM __crm_wh").fetchall()[0][0])
    side = f"'{section.table}' holds in the warehouse"
    try:
        return Removal(count, check_limit(store, section, count, holding, side))
    except DeleteLimitError as exc:
        if enforce:
            raise
        return Removal(count, False, str(exc))


def apply_mirror(
    store: ModelStore, section: CrmSection, warehouse: Warehouse, run_id: str, gone: Removal, *, dry_run: bool
) -> int:
    """Delete the rows staged in ``__crm_gone`` from the warehouse (not in a dry run) and log each; returns how
    many went (would go)."""
    keys = [r[0] for r in store.con.execute("SELECT __wkey FROM __crm_gone ORDER BY 1").fetchall()]
    deleted = len(keys) if dry_run else warehouse.delete_keys(section.table, section.warehouse_key, keys)

    def log() -> None:
        store.con.execute(
            f"INSERT INTO change_log SELECT now(), {lit(section.name)}, {lit(run_id)}, {lit(section.model.slug)}, "
            "__wkey, NULL, 'send_delete', CAST('{}' AS JSON) FROM __crm_gone"
        )
        if gone.approved:
            use_approval(store, section.name)

    store.atomic(log)
    return deleted


def log_sends(store: ModelStore, section: CrmSection, run_id: str, kinds: dict[str, str]) -> None:
    """One change-log row per record in ``__crm_out`` (sent, or about to be in a preview): each sent column, the
    warehouse's value → the store's."""
    pairs = [(c, f"o.__old{i}", f"json(o.{q(c)})" if kinds[c] == "JSON" else f"o.{q(c)}") for i, c in enumerate(kinds)]
    store.write(
        f"INSERT INTO change_log SELECT now(), {lit(section.name)}, {lit(run_id)}, {lit(section.model.slug)}, "
        f"o.{q(section.warehouse_key)}, o.__id, 'send', {field_changes_sql(pairs)} FROM __crm_out o"
    )
