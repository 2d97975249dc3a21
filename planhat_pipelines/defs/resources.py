"""Dagster resources: the model store and the warehouse connections, as typed resources that show what they hold.

One resource class per warehouse type, its settings as fields and its secrets as ``dg.EnvVar`` (the UI shows
the variable, never its value), all under one ``warehouses`` resource that assets, checks and sensors take as
a typed parameter and ask for a connection by name. Built from the config by :func:`build_resources`; a test
swaps a warehouse with ``dg.materialize(..., resources={"warehouses": WarehousesResource(duckdb=[...])})``.

Why not ``dagster_gcp.BigQueryResource`` / ``dagster_snowflake.SnowflakeResource``: the adapters need what those
resources do not hold (a default dataset, OAuth refresh-token auth, emulator REST and Storage API endpoints, a
key file or key text with passphrase, fakesnow's host and protocol), and they open their own clients so that
every failure is mapped to the project's typed errors. So those two packages are no longer dependencies.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import dagster as dg

from planhat_pipelines.config import (
    BigQuerySettings,
    Config,
    ConnectionConfig,
    DuckDBSettings,
    EnvRef,
    SnowflakeSettings,
)
from planhat_pipelines.errors import SyncError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.location import (
    DEFAULT_CHANGE_LOG_DAYS,
    DEFAULT_RETENTION_DAYS,
    CatalogKind,
    PostgresCatalog,
    StoreLocation,
)
from planhat_pipelines.warehouses.base import Warehouse
from planhat_pipelines.warehouses.factory import open_warehouse


class StoreResource(dg.ConfigurableResource):
    """The model store: a DuckLake catalog and its data path (see ``store/location.py``).

    Attributes:
        catalog_type: ``sqlite`` (embedded, the default), ``duckdb`` (single process) or ``postgres``.
        catalog: The catalog file (``sqlite`` / ``duckdb``).
        data_path: The folder or object-storage prefix of the tables' files.
        postgres_host, postgres_port, postgres_database, postgres_user: The PostgreSQL catalog.
        postgres_password_env: The environment variable holding its password (read when the store is opened,
            never shown).
        retention_days: How long snapshots are kept (time travel reaches this far).
        lock_timeout_seconds: How long an open waits for a DuckDB-file catalog another process holds; sensors
            open with about a second.
    """

    catalog_type: str = "sqlite"
    catalog: str = ""
    data_path: str
    postgres_host: str = ""
    postgres_port: int = 5432
    postgres_database: str = ""
    postgres_user: str = ""
    postgres_password_env: str = ""
    retention_days: int = DEFAULT_RETENTION_DAYS
    change_log_days: int = DEFAULT_CHANGE_LOG_DAYS
    lock_timeout_seconds: float = 30.0

    @classmethod
    def of(cls, location: StoreLocation) -> StoreResource:
        """The resource holding ``location``'s settings."""
        pg = location.postgres
        return cls(
            catalog_type=location.kind,
            catalog=str(location.catalog or ""),
            data_path=location.data_path,
            postgres_host=pg.host if pg else "",
            postgres_port=pg.port if pg else 5432,
            postgres_database=pg.database if pg else "",
            postgres_user=pg.user if pg else "",
            postgres_password_env=(pg.password_env or "") if pg else "",
            retention_days=location.retention_days,
            change_log_days=location.change_log_days,
        )

    def location(self) -> StoreLocation:
        """The catalog and data path these settings name."""
        postgres = None
        if self.catalog_type == "postgres":
            postgres = PostgresCatalog(
                self.postgres_host,
                self.postgres_port,
                self.postgres_database,
                self.postgres_user,
                self.postgres_password_env or None,
            )
        kind = cast(CatalogKind, self.catalog_type)
        catalog = Path(self.catalog) if self.catalog else None
        return StoreLocation(kind, catalog, self.data_path, postgres, self.retention_days, self.change_log_days)

    def open(self, *, lock_timeout: float | None = None, read_only: bool = False) -> ModelStore:
        """Attach (and, unless ``read_only``, migrate) the store; close it when done."""
        timeout = self.lock_timeout_seconds if lock_timeout is None else lock_timeout
        return ModelStore(self.location(), lock_timeout=timeout, read_only=read_only)


@dataclass(frozen=True)
class _ResolvedSecret(EnvRef):
    """A secret Dagster already read from its variable (a ``dg.EnvVar`` field): the name stays for messages."""

    resolved: str = ""

    def value(self) -> str:
        return self.resolved


class ConnectionResource(dg.ConfigurableResource):
    """One named warehouse connection. Secret fields hold values Dagster read from ``dg.EnvVar``s.

    Attributes:
        name: The connection's name in the config.
        secret_variables: Which environment variable each secret field came from (names only), so the
            adapters' messages can say which variable to fix.
    """

    warehouse_type: ClassVar[str]
    name: str
    secret_variables: dict[str, str] = {}

    @abstractmethod
    def settings(self) -> DuckDBSettings | BigQuerySettings | SnowflakeSettings:
        """The adapter settings these fields stand for."""

    def _secret(self, field: str) -> EnvRef | None:
        value = getattr(self, field)
        if value is None:
            return None
        return _ResolvedSecret(self.secret_variables.get(field, field.upper()), value)

    def open(self) -> Warehouse:
        """Open the adapter (clients are created now, never at import); close it when done."""
        return open_warehouse(ConnectionConfig(self.name, self.warehouse_type, self.settings()))


class DuckDBConnectionResource(ConnectionResource):
    """A DuckDB warehouse file."""

    warehouse_type: ClassVar[str] = "duckdb"
    path: str

    def settings(self) -> DuckDBSettings:
        return DuckDBSettings(Path(self.path))


class BigQueryConnectionResource(ConnectionResource):
    """A BigQuery dataset; ``auth`` is service_account, oauth or adc (see docs/config.md)."""

    warehouse_type: ClassVar[str] = "bigquery"
    project: str
    dataset: str
    location: str | None = None
    auth: str = "adc"
    service_account_key: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = None
    oauth_refresh_token: str | None = None
    oauth_token_uri: str | None = None
    endpoint: str | None = None
    storage_api: bool = True
    storage_grpc_endpoint: str | None = None

    def settings(self) -> BigQuerySettings:
        return BigQuerySettings(
            project=self.project,
            dataset=self.dataset,
            location=self.location,
            auth=self.auth,
            service_account_key=self._secret("service_account_key"),
            oauth_client_id=self._secret("oauth_client_id"),
            oauth_client_secret=self._secret("oauth_client_secret"),
            oauth_refresh_token=self._secret("oauth_refresh_token"),
            oauth_token_uri=self.oauth_token_uri,
            endpoint=self.endpoint,
            storage_api=self.storage_api,
            storage_grpc_endpoint=self.storage_grpc_endpoint,
        )


class SnowflakeConnectionResource(ConnectionResource):
    """A Snowflake database and schema; ``auth`` is password or key_pair (see docs/config.md)."""

    warehouse_type: ClassVar[str] = "snowflake"
    account: str
    user: str
    database: str
    schema_: str
    warehouse: str | None = None
    role: str | None = None
    auth: str = "password"
    password: str | None = None
    private_key_path: str | None = None
    private_key: str | None = None
    private_key_passphrase: str | None = None
    host: str | None = None
    port: int | None = None
    protocol: str | None = None

    def settings(self) -> SnowflakeSettings:
        return SnowflakeSettings(
            account=self.account,
            user=self.user,
            database=self.database,
            schema=self.schema_,
            warehouse=self.warehouse,
            role=self.role,
            auth=self.auth,
            password=self._secret("password"),
            private_key_path=self._secret("private_key_path"),
            private_key=self._secret("private_key"),
            private_key_passphrase=self._secret("private_key_passphrase"),
            host=self.host,
            port=self.port,
            protocol=self.protocol,
        )


class WarehousesResource(dg.ConfigurableResource):
    """Every warehouse connection of the config, by type; assets ask for theirs by name."""

    duckdb: list[DuckDBConnectionResource] = []
    bigquery: list[BigQueryConnectionResource] = []
    snowflake: list[SnowflakeConnectionResource] = []

    def connection(self, name: str) -> ConnectionResource:
        """The connection called ``name``; SyncError naming the choices if there is none."""
        found: list[ConnectionResource] = [*self.duckdb, *self.bigquery, *self.snowflake]
        for connection in found:
            if connection.name == name:
                return connection
        names = ", ".join(c.name for c in found) or "(none)"
        raise SyncError(
            f"no warehouse connection '{name}' in the warehouses resource. Fix: use one of: {names}, "
            "or add the connection to the config"
        )

    def open(self, name: str) -> Warehouse:
        """Open connection ``name``'s adapter; close it when done."""
        return self.connection(name).open()


def _secret_fields(settings: object) -> dict[str, EnvRef]:
    return {name: value for name, value in vars(settings).items() if isinstance(value, EnvRef)}


def connection_resource(connection: ConnectionConfig) -> ConnectionResource:
    """The typed resource of one configured connection: settings as fields, secrets as ``dg.EnvVar``."""
    settings = connection.settings
    if isinstance(settings, DuckDBSettings):
        return DuckDBConnectionResource(name=connection.name, path=str(settings.path))
    secrets = _secret_fields(settings)
    fields: dict[str, Any] = {name: value for name, value in vars(settings).items() if name not in secrets}
    fields |= {name: dg.EnvVar(ref.name) for name, ref in secrets.items()}
    fields["secret_variables"] = {name: ref.name for name, ref in secrets.items()}
    if isinstance(settings, BigQuerySettings):
        return BigQueryConnectionResource(name=connection.name, **fields)
    if isinstance(settings, SnowflakeSettings):
        fields["schema_"] = fields.pop("schema")
        return SnowflakeConnectionResource(name=connection.name, **fields)
    raise TypeError(f"unknown connection settings {type(settings).__name__}")


def build_resources(config: Config) -> dict[str, dg.ConfigurableResource]:
    """``store`` and ``warehouses`` for the config's store file and connections."""
    connections = [connection_resource(c) for c in config.connections.values()]
    warehouses = WarehousesResource(
        duckdb=[c for c in connections if isinstance(c, DuckDBConnectionResource)],
        bigquery=[c for c in connections if isinstance(c, BigQueryConnectionResource)],
        snowflake=[c for c in connections if isinstance(c, SnowflakeConnectionResource)],
    )
    return {"store": StoreResource.of(config.store), "warehouses": warehouses}
