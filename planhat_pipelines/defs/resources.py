"""Dagster resources: the model store and one warehouse per named connection."""

from __future__ import annotations

import dagster as dg

from planhat_pipelines.config import Config, load_config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.warehouses.base import Warehouse
from planhat_pipelines.warehouses.factory import open_warehouse

#: Every asset that writes the store runs in this pool; planhat_pipelines.instance_setup (run by make demo / make dev)
#: limits it to one at a time,
#: because DuckDB allows a single writer process.
STORE_POOL = "planhat_store"


def warehouse_resource_key(connection: str) -> str:
    return f"warehouse_{connection}"


class StoreResource(dg.ConfigurableResource):
    """The DuckDB model store file.

    Attributes:
        path: The store file.
        lock_timeout_seconds: How long an open waits while another process holds the file (runs queue in the
            store pool, so this only covers a sensor's brief hold).
    """

    path: str
    lock_timeout_seconds: float = 30.0

    def open(self, *, lock_timeout: float | None = None) -> ModelStore:
        """Open (and migrate) the store; close it when done. ``lock_timeout`` overrides the resource's."""
        return ModelStore(self.path, lock_timeout=self.lock_timeout_seconds if lock_timeout is None else lock_timeout)


class WarehouseResource(dg.ConfigurableResource):
    """One named warehouse connection from the config file.

    Secrets stay in the environment: the config names environment variables and the adapter
    reads them when it opens, at run time.
    """

    config_path: str
    connection: str

    def open(self) -> Warehouse:
        """Open the adapter; close it when done."""
        return open_warehouse(load_config(self.config_path).connection(self.connection))


def build_resources(config: Config) -> dict[str, dg.ConfigurableResource]:
    resources: dict[str, dg.ConfigurableResource] = {"store": StoreResource(path=str(config.store_path))}
    for name in config.connections:
        resources[warehouse_resource_key(name)] = WarehouseResource(config_path=str(config.path), connection=name)
    return resources
