"""Opening a BigQuery connection from the config: credentials, the emulator's endpoints, the bounded retries."""

from __future__ import annotations

from google.cloud import bigquery

from planhat_pipelines.config import BigQuerySettings
from planhat_pipelines.warehouses.bigquery.adapter import BigQueryWarehouse
from planhat_pipelines.warehouses.bigquery.auth import credentials_for
from planhat_pipelines.warehouses.retries import DEFAULT_BOUNDS, RetryBounds, bigquery_retries


def open_bigquery(
    name: str, settings: BigQuerySettings, *, retry_bounds: RetryBounds = DEFAULT_BOUNDS
) -> BigQueryWarehouse:
    """Build the BigQuery client from ``settings`` now (reading the env vars they name).

    Args:
        name: The connection's name, used in every message.
        settings: The connection's settings from the config.
        retry_bounds: How long transient errors are retried (see :mod:`planhat_pipelines.warehouses.retries`).

    Raises:
        CredentialsError: A key or token is missing or malformed, or no default credentials exist.
    """
    credentials = credentials_for(name, settings)
    client_options = {"api_endpoint": settings.endpoint} if settings.endpoint else None
    client = bigquery.Client(
        project=settings.project,
        credentials=credentials,
        location=settings.location,
        client_options=client_options,
    )
    # Pointing at an emulator without a Storage endpoint must not fall through to Google's Storage API.
    storage_api = settings.storage_api and (settings.endpoint is None or settings.storage_grpc_endpoint is not None)
    return BigQueryWarehouse(
        name,
        client,
        project=settings.project,
        dataset=settings.dataset,
        storage_api=storage_api,
        storage_grpc_endpoint=settings.storage_grpc_endpoint,
        retries=bigquery_retries(name, retry_bounds),
    )
