"""Open the warehouse adapter a named connection declares."""

from __future__ import annotations

from planhat_pipelines.config import BigQuerySettings, ConnectionConfig, DuckDBSettings, SnowflakeSettings
from planhat_pipelines.warehouses.base import Warehouse


def open_warehouse(connection: ConnectionConfig) -> Warehouse:
    """Build the adapter for ``connection``; clients are created here, at call time, never at import."""
    settings = connection.settings
    if isinstance(settings, DuckDBSettings):
        from planhat_pipelines.warehouses.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(connection.name, settings.path)
    if isinstance(settings, BigQuerySettings):
        from planhat_pipelines.warehouses.bigquery import open_bigquery

        return open_bigquery(connection.name, settings)
    if isinstance(settings, SnowflakeSettings):
        from planhat_pipelines.warehouses.snowflake import open_snowflake

        return open_snowflake(connection.name, settings)
    raise TypeError(f"unknown connection settings {type(settings).__name__}")
