"""BigQuery as the warehouse, through google-cloud-bigquery (REST) and the Storage Read API (gRPC).

Tables are named relative to the connection's dataset (``events``), or qualified once or twice
(``other_dataset.events``, ``project.dataset.events``). Identifiers are validated and backtick-quoted;
values are always query parameters. Nothing here reads the environment or opens a client at import
time: :func:`open_bigquery` does that when it is called.

Modules: :mod:`.auth` (credentials from the config), :mod:`.dialect` (quoting, types, key parameters),
:mod:`.client_errors` (what the client's exceptions mean), :mod:`.adapter` (the Warehouse) and :mod:`.connect`
(opening one from the config).
"""

from planhat_pipelines.warehouses.bigquery.adapter import (
    PROBE_TIMEOUT_SECONDS,
    STAGING_TTL,
    BigQueryWarehouse,
)
from planhat_pipelines.warehouses.bigquery.auth import DEFAULT_OAUTH_TOKEN_URI
from planhat_pipelines.warehouses.bigquery.connect import open_bigquery
from planhat_pipelines.warehouses.bigquery.dialect import bigquery_column, quote

__all__ = [
    "DEFAULT_OAUTH_TOKEN_URI",
    "PROBE_TIMEOUT_SECONDS",
    "STAGING_TTL",
    "BigQueryWarehouse",
    "bigquery_column",
    "open_bigquery",
    "quote",
]
