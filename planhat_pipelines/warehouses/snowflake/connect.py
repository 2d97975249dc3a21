"""Opening a Snowflake connection from the config: auth arguments, the bounded retries, the emulator's extras."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import snowflake.connector
from snowflake.connector import SnowflakeConnection

from planhat_pipelines.config import SnowflakeSettings
from planhat_pipelines.warehouses.retries import DEFAULT_BOUNDS, RetryBounds, snowflake_retry_args
from planhat_pipelines.warehouses.snowflake.adapter import SnowflakeWarehouse
from planhat_pipelines.warehouses.snowflake.auth import snowflake_connect_args


def open_snowflake(
    name: str,
    settings: SnowflakeSettings,
    *,
    connect_args: Mapping[str, Any] | None = None,
    retry_bounds: RetryBounds = DEFAULT_BOUNDS,
) -> SnowflakeWarehouse:
    """A SnowflakeWarehouse for a config connection; nothing connects until the first use.

    Args:
        name: The connection's name in the config.
        settings: Its parsed settings (secrets are read now, from the environment).
        connect_args: Extra ``snowflake.connector.connect`` arguments, e.g. ``session_parameters``
            or ``login_timeout`` (tests pass the emulator's).
        retry_bounds: How long the connector retries a request (429, 5xx, dropped connections) and its backoff.

    Raises:
        CredentialsError: The password variable is empty, or the private key is missing, unreadable or
            cannot be decrypted with the passphrase.
    """
    auth_args, fix = snowflake_connect_args(name, settings)
    args = {**snowflake_retry_args(retry_bounds), **auth_args, **(connect_args or {})}
    target = f"account '{settings.account}' as user '{settings.user}'"

    def connect() -> SnowflakeConnection:
        if settings.auth == "oauth":
            # An OAuth access token lives about ten minutes: take a fresh one for every connection, so one
            # opened long after the adapter (a reconnect, a slow run) does not log in with a lapsed token.
            fresh, _ = snowflake_connect_args(name, settings)
            return snowflake.connector.connect(**{**args, "token": fresh["token"]})
        return snowflake.connector.connect(**args)

    return SnowflakeWarehouse(name, connect, target=target, credentials_fix=fix, retry_bounds=retry_bounds)
