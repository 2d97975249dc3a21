"""The Snowflake harness: a fakesnow server on 127.0.0.1 and a fresh schema per test.

The server is started and stopped by :func:`tools.emulators.snowflake_launcher.fakesnow_server`
(a child process, everything in memory).

fakesnow 0.12 (server mode) keeps one in-memory DuckDB per server process and shares it between
all sessions unless a client sends the session parameter ``FAKESNOW_DB_PATH`` (``":isolated:"``
gives that session its own database). So the harness's seeding connection and the adapter's
connection see the same data as long as neither sends it; no extra parameter is needed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pytest
import snowflake.connector
from snowflake.connector import SnowflakeConnection

from planhat_pipelines.config import EnvRef, SnowflakeSettings
from planhat_pipelines.warehouses.snowflake import SnowflakeWarehouse, open_snowflake
from tools.emulators.processes import free_port
from tools.emulators.seeding import snowflake_type
from tools.emulators.snowflake_launcher import fakesnow_server

#: The database every test schema lives in.
TEST_DATABASE = "PLANHAT_TEST"
#: The env var the harness sets (through monkeypatch) to the emulator's password.
PASSWORD_ENV = "PLANHAT_TEST_SNOWFLAKE_PASSWORD"
#: Extra connect arguments for the emulator: no telemetry, and fail fast instead of retrying.
EMULATOR_CONNECT_ARGS: dict[str, Any] = {
    "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
    "login_timeout": 10,
    "network_timeout": 30,
}


class SnowflakeHarness:
    """A fresh schema in the fakesnow server, seeded through snowflake-connector-python."""

    kind = "snowflake"

    def __init__(self, server: dict[str, Any], schema: str) -> None:
        self.server = server
        self.schema = schema
        self._con: SnowflakeConnection | None = None
        self._open: list[SnowflakeWarehouse] = []

    def settings(self, **overrides: Any) -> SnowflakeSettings:
        """The SnowflakeSettings that :meth:`connection_config` describes (the password via PASSWORD_ENV)."""
        values: dict[str, Any] = {
            "account": self.server["account"],
            "user": self.server["user"],
            "database": TEST_DATABASE,
            "schema": self.schema,
            "password": EnvRef(PASSWORD_ENV),
            "host": self.server["host"],
            "port": self.server["port"],
            "protocol": self.server["protocol"],
        }
        values.update(overrides)
        return SnowflakeSettings(**values)

    def connect(self) -> SnowflakeConnection:
        """A new connector session on this harness's schema."""
        return snowflake.connector.connect(
            account=self.server["account"],
            user=self.server["user"],
            password=self.server["password"],
            host=self.server["host"],
            port=self.server["port"],
            protocol=self.server["protocol"],
            database=TEST_DATABASE,
            schema=self.schema,
            paramstyle="qmark",
            **EMULATOR_CONNECT_ARGS,
        )

    @property
    def con(self) -> SnowflakeConnection:
        if self._con is None:
            self._con = self.connect()
        return self._con

    def warehouse(self, name: str = "wh") -> SnowflakeWarehouse:
        wh = open_snowflake(name, self.settings(), connect_args=EMULATOR_CONNECT_ARGS)
        self._open.append(wh)
        return wh

    def create_table(self, table: str, data: pa.Table, *, json_columns: Sequence[str] = ()) -> None:
        # Unquoted names, as people create them: Snowflake stores them upper-case.
        cols = ", ".join(
            f"{name} {'VARIANT' if name in json_columns else snowflake_type(field.type)}"
            for name, field in zip(data.column_names, data.schema, strict=True)
        )
        self.execute(f"CREATE OR REPLACE TABLE {table} ({cols})")
        if data.num_rows == 0:
            return
        exprs = ", ".join(
            f"PARSE_JSON(f.value[{i}]::VARCHAR)"
            if name in json_columns
            else f"f.value[{i}]::{snowflake_type(field.type)}"
            for i, (name, field) in enumerate(zip(data.column_names, data.schema, strict=True))
        )
        rows = json.dumps([list(r.values()) for r in data.to_pylist()], default=str)
        with self.con.cursor() as cur:
            cur.execute(f"INSERT INTO {table} SELECT {exprs} FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?))) f", [rows])

    def create_view(self, view: str, select_sql: str) -> None:
        self.execute(f"CREATE OR REPLACE VIEW {view} AS {select_sql}")

    def execute(self, sql: str) -> None:
        with self.con.cursor() as cur:
            cur.execute(sql)

    def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cur:
            cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()]

    def connection_config(self) -> dict[str, Any]:
        """The connection as YAML would declare it; the fixture sets PASSWORD_ENV for ``{env: ...}``."""
        return {
            "type": "snowflake",
            "account": self.server["account"],
            "user": self.server["user"],
            "password": {"env": PASSWORD_ENV},
            "database": TEST_DATABASE,
            "schema": self.schema,
            "host": self.server["host"],
            "port": self.server["port"],
            "protocol": self.server["protocol"],
        }

    def close(self) -> None:
        for wh in self._open:
            wh.close()
        if self._con is not None:
            try:
                with self._con.cursor() as cur:
                    cur.execute(f"DROP SCHEMA IF EXISTS {TEST_DATABASE}.{self.schema} CASCADE")
            finally:
                self._con.close()
                self._con = None


@pytest.fixture(scope="session")
def snowflake_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A fakesnow server process on 127.0.0.1 (a free port) for the session; yields its connect kwargs."""
    log = tmp_path_factory.mktemp("fakesnow") / "server.log"
    with fakesnow_server(host="127.0.0.1", port=free_port(), log=log) as server:
        yield server.connect_kwargs()


@pytest.fixture
def snowflake_harness(
    snowflake_emulator: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SnowflakeHarness]:
    """A fresh schema per test; sets PLANHAT_TEST_SNOWFLAKE_PASSWORD for configs that reference it."""
    monkeypatch.setenv(PASSWORD_ENV, str(snowflake_emulator["password"]))
    harness = SnowflakeHarness(snowflake_emulator, f"T_{uuid.uuid4().hex[:12].upper()}")
    yield harness
    harness.close()
