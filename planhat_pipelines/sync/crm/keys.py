"""How the CRM sync matches keys: the normalised key, why a key is unusable, and the key column's checks."""

from __future__ import annotations

from planhat_pipelines.config import CrmSection
from planhat_pipelines.errors import KeyValidationError, ReadOnlyTargetError
from planhat_pipelines.models import FieldType
from planhat_pipelines.models.catalog import EMAIL_PATTERN, email_sql, trim_sql
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.sql_quoting import quote_literal as lit
from planhat_pipelines.sync.crm.fields import email_reason
from planhat_pipelines.warehouses.base import ColumnKind, TableInfo, Warehouse

#: The normalised key of a staged source row, computed once while staging (see :func:`key_sql`).
KEY = "r.__nkey"


def raw_key_sql(section: CrmSection) -> str:
    """SQL for a staged source row's key as the warehouse spells it, as text."""
    return f"CAST(r.{q(section.warehouse_key)} AS VARCHAR)"


def is_email_key(section: CrmSection) -> bool:
    """Whether the section's Planhat key is an email (End User), which matches case-insensitively."""
    spec = section.model.field(section.planhat_key)
    return spec is not None and spec.type is FieldType.EMAIL


def key_sql(section: CrmSection, raw_key: str) -> str:
    """SQL for the key a warehouse key value matches by: trimmed, and for an email also lower-cased."""
    return email_sql(raw_key) if is_email_key(section) else trim_sql(raw_key)


def key_error(section: CrmSection, raw_key: str, key: str) -> str:
    """SQL for the reason a row's key is unusable (null/empty, not an email, duplicate), NULL when fine."""
    column = lit(repr(section.warehouse_key))
    rows_of_key = f"count(*) OVER (PARTITION BY {key})"
    email = is_email_key(section)
    # Say why two rows count as one key when the warehouse spells them differently (' C-1' and 'C-1').
    spelled = f"min({raw_key}) OVER (PARTITION BY {key}) <> max({raw_key}) OVER (PARTITION BY {key})"
    ignoring = lit(f" (ignoring {'case and ' if email else ''}surrounding spaces)")
    reason = email_reason("field email", trim_sql(raw_key))
    not_email = f"WHEN NOT regexp_full_match({key}, {lit(EMAIL_PATTERN)}) THEN {reason} " if email else ""
    return (
        f"CASE WHEN {key} IS NULL THEN 'key column ' || {column} || ' is null or empty' {not_email}"
        f"WHEN {rows_of_key} > 1 THEN 'duplicate key: column ' || {column} || ' holds ''' || {key} || '''' || "
        f"CASE WHEN {spelled} THEN {ignoring} ELSE '' END || ' in ' || {rows_of_key} || ' rows' END"
    )


def check_key_column(section: CrmSection, info: TableInfo) -> None:
    """Refuse a key column that is not text.

    Raises:
        KeyValidationError: The key column is not text, with the view to create as the fix.
    """
    col = info.column(section.warehouse_key)
    if col.kind is not ColumnKind.TEXT:
        key = section.warehouse_key
        raise KeyValidationError(
            f"section '{section.name}': key column '{key}' of {'view' if info.is_view else 'table'} "
            f"'{section.table}' is {col.type}, but keys must be text. Fix: cast it to STRING/VARCHAR in a view "
            f"(SELECT CAST({key} AS STRING) AS {key}, ...) and point the section's table at that view"
        )


def check_send_target(section: CrmSection, warehouse: Warehouse, info: TableInfo | None = None) -> TableInfo:
    """Describe the section's table (unless ``info`` already does) and refuse a view before anything is written.

    Raises:
        ReadOnlyTargetError: The target is a view, naming the section and the view.
        KeyValidationError: The key column is not text.
    """
    info = info or warehouse.describe(section.table)
    if info.is_view and not warehouse.capabilities.views_writable:
        raise ReadOnlyTargetError(
            warehouse.name,
            f"section '{section.name}': view '{section.table}'",
            "is read-only, so records cannot be sent to it (nothing was written)",
            f"point section '{section.name}' at a table, or set its direction to 'receive'",
        )
    check_key_column(section, info)
    return info
