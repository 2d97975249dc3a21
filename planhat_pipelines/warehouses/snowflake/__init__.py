"""Snowflake through snowflake-connector-python: Arrow reads, JSON-staged MERGE, change tracking.

Identifier case: Snowflake stores unquoted identifiers upper-case, and configs name them the way
people type them (``crm_companies`` for a table created as ``CREATE TABLE crm_companies``, stored as
``CRM_COMPANIES``). So a table (and schema) name from the config is first looked up upper-cased;
only if no such object exists is its exact spelling tried, which finds objects created with a
quoted lower- or mixed-case name. Database names in three-part names are upper-cased. Column
names match case-insensitively, and the columns of returned Arrow batches carry the names the
caller asked for, not Snowflake's upper-case spelling.

Values are always bound (``paramstyle="qmark"``: the server binds them); identifiers are checked
with :func:`validate_identifier` and double-quoted.

Modules: :mod:`.auth` (connect arguments and keys from the config), :mod:`.dialect` (quoting, types,
change-tracking SQL, merge staging), :mod:`.adapter` (the Warehouse) and :mod:`.connect` (opening one from the config).
"""

from planhat_pipelines.warehouses.snowflake.adapter import (
    STAGE_CHUNK_BYTES,
    ConnectionFactory,
    SnowflakeWarehouse,
)
from planhat_pipelines.warehouses.snowflake.auth import DEFAULT_LOGIN_TIMEOUT, snowflake_connect_args
from planhat_pipelines.warehouses.snowflake.connect import open_snowflake
from planhat_pipelines.warehouses.snowflake.dialect import (
    changes_sql,
    enable_change_tracking_sql,
    json_values,
    jsonable,
    quote,
    show_tables_sql,
    snowflake_kind,
    split_changes,
)

__all__ = [
    "DEFAULT_LOGIN_TIMEOUT",
    "STAGE_CHUNK_BYTES",
    "ConnectionFactory",
    "SnowflakeWarehouse",
    "changes_sql",
    "enable_change_tracking_sql",
    "json_values",
    "jsonable",
    "open_snowflake",
    "quote",
    "show_tables_sql",
    "snowflake_connect_args",
    "snowflake_kind",
    "split_changes",
]
