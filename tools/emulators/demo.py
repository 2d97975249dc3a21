"""`make demo WAREHOUSE=bigquery|snowflake`: the demo against a local warehouse emulator.

BigQuery runs as local-bigquery from its own venv in ``.emulators/bigquery`` (installed by
``make emulators``); Snowflake runs as a fakesnow server in a child process. Both keep their data in
files under the store's folder (``.data/bigquery``, ``.data/snowflake``), so a second ``make demo``
finds what the first one loaded and only the new usage rows are copied in (:mod:`tools.emulators.seeding`).

Ports, project, dataset, database and schema all come from the demo config's connection
(``examples/demo_bigquery.yaml``, ``examples/demo_snowflake.yaml``), so there is one place to change them.
``planhat-pipelines demo --emulator KIND`` imports this module from the checkout
(:func:`planhat_pipelines.demo.checkout.emulator_demo`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from planhat_pipelines.config import BigQuerySettings, Config, ConnectionConfig, SnowflakeSettings
from planhat_pipelines.demo.generate import DemoSize, SeedResult, seed_demo
from tools.emulators.bigquery_launcher import bigquery_emulator
from tools.emulators.processes import EmulatorError
from tools.emulators.seeding import BigQueryTarget, CopyResult, SeedTarget, SnowflakeTarget, copy_new_rows
from tools.emulators.snowflake_launcher import fakesnow_server

#: The kinds ``planhat-pipelines demo --emulator`` accepts.
EMULATOR_KINDS = ("bigquery", "snowflake")


def emulator_connection(config: Config, kind: str) -> ConnectionConfig:
    """The config's one connection of ``kind`` that points at a local emulator (endpoint or host set).

    Raises:
        EmulatorError: None or several such connections.
    """
    found = [
        c
        for c in config.connections.values()
        if c.type == kind
        and (
            (isinstance(c.settings, BigQuerySettings) and c.settings.endpoint)
            or (isinstance(c.settings, SnowflakeSettings) and c.settings.host)
        )
    ]
    if len(found) != 1:
        example = f"examples/demo_{kind}.yaml"
        raise EmulatorError(
            f"{config.path} has {len(found)} {kind} connections pointing at a local emulator; the demo needs "
            f"exactly one. Fix: use {example} (make demo WAREHOUSE={kind} does), or declare one like it."
        )
    return found[0]


def _data_dir(config: Config) -> Path:
    return config.store.catalog.parent if config.store.catalog else config.path.parent / ".data"


def source_path(config: Config, kind: str) -> Path:
    """The local DuckDB file the demo data is generated in before it is copied into the emulator."""
    return _data_dir(config) / f"demo_source_{kind}.duckdb"


@contextlib.contextmanager
def demo_emulator(config: Config, kind: str) -> Iterator[ConnectionConfig]:
    """Start the emulator the config's ``kind`` connection points at, on the ports it names; stop it afterwards.

    Data lives beside the store: ``<store folder>/bigquery`` or ``<store folder>/snowflake``.
    """
    connection = emulator_connection(config, kind)
    settings = connection.settings
    if isinstance(settings, BigQuerySettings):
        assert settings.endpoint is not None
        rest = urlsplit(settings.endpoint)
        if rest.port is None or not settings.storage_grpc_endpoint:
            raise EmulatorError(
                f"connection '{connection.name}' in {config.path} needs 'endpoint: http://127.0.0.1:PORT' and "
                "'storage_grpc_endpoint: 127.0.0.1:PORT' for the demo to start the emulator on those ports"
            )
        grpc_host, _, grpc_port = settings.storage_grpc_endpoint.rpartition(":")
        with bigquery_emulator(
            data_dir=_data_dir(config) / "bigquery",
            project=settings.project,
            port=rest.port,
            grpc_port=int(grpc_port),
            host=rest.hostname or grpc_host or "127.0.0.1",
        ):
            yield connection
    elif isinstance(settings, SnowflakeSettings):
        if settings.port is None or settings.host is None:
            raise EmulatorError(
                f"connection '{connection.name}' in {config.path} needs 'host' and 'port' for the demo to start "
                "fakesnow there"
            )
        with fakesnow_server(host=settings.host, port=settings.port, db_path=_data_dir(config) / "snowflake"):
            yield connection
    else:  # pragma: no cover - emulator_connection only returns the two kinds above
        raise EmulatorError(f"no emulator for connection type {connection.type}")


@contextlib.contextmanager
def _target(connection: ConnectionConfig) -> Iterator[SeedTarget]:
    settings = connection.settings
    if isinstance(settings, BigQuerySettings):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        client = bigquery.Client(
            project=settings.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": settings.endpoint},
        )
        try:
            yield BigQueryTarget(client, settings.project, settings.dataset)
        finally:
            client.close()
    elif isinstance(settings, SnowflakeSettings):
        import snowflake.connector

        # Any password works against fakesnow; the config's own is used so a typo shows up here.
        password = settings.password.value() if settings.password is not None else "snow"
        con = snowflake.connector.connect(
            account=settings.account,
            user=settings.user,
            password=password or "snow",
            host=settings.host,
            port=settings.port,
            protocol=settings.protocol or "http",
            database=settings.database,
            schema=settings.schema,
            paramstyle="qmark",
            session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            login_timeout=10,
            network_timeout=60,
        )
        try:
            # Connecting creates the database and schema in fakesnow; say so explicitly for a real account.
            with con.cursor() as cur:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {settings.database}.{settings.schema}")
                cur.execute(f"USE SCHEMA {settings.database}.{settings.schema}")
            yield SnowflakeTarget(con)
        finally:
            con.close()
    else:
        raise EmulatorError(f"connection '{connection.name}' is not a BigQuery or Snowflake connection")


def seed_emulator(
    config: Config,
    kind: str,
    *,
    size: DemoSize | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[SeedResult, CopyResult]:
    """Grow the local demo data (:func:`seed_demo`) and copy what the emulator lacks into it.

    Args:
        config: A demo config with one ``kind`` connection pointing at a running emulator.
        kind: ``bigquery`` or ``snowflake``.
        size: How much data the first seed makes (default: the DuckDB demo's).
        echo: Where progress lines go.
    """
    connection = emulator_connection(config, kind)
    source = source_path(config, kind)
    seeded = seed_demo(source, size)
    with _target(connection) as target:
        copied = copy_new_rows(source, target)
    echo(
        f"seeded {connection.name} ({kind} emulator) from {source.resolve()}: +{seeded.events_added:,} events "
        f"(total {seeded.events_total:,}), +{seeded.metrics_added:,} metrics (total {seeded.metrics_total:,}); "
        f"copied {copied.describe()}"
    )
    return seeded, copied
