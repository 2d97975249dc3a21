"""``connections:``: named warehouses, one pydantic model per ``type`` (a discriminated union)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from planhat_pipelines.config.base import NAME, EnvRef, FileModel, Positive, Secret, calendar_date, example, fail
from planhat_pipelines.errors import ConfigError


@dataclass(frozen=True)
class HealthConfig:
    """How often the credentials sensor probes a connection and what expiry to warn about."""

    every_minutes: int = 15
    key_rotation_date: date | None = None
    warn_days: int = 14


@dataclass(frozen=True)
class DuckDBSettings:
    """A DuckDB warehouse file.

    Attributes:
        path: The file, absolute (a relative path in the config is relative to the config file's folder).
        create: Whether the file may be missing when the config loads (the first write creates it).
            Without it a missing file is a config error, so a mistyped path cannot create an empty warehouse.
    """

    path: Path
    create: bool = False


@dataclass(frozen=True)
class BigQuerySettings:
    project: str
    dataset: str
    location: str | None = None
    auth: str = "adc"  # service_account | oauth | adc
    service_account_key: EnvRef | None = None  # a key file path or base64 JSON, as BigQueryResource takes
    oauth_client_id: EnvRef | None = None
    oauth_client_secret: EnvRef | None = None
    oauth_refresh_token: EnvRef | None = None
    oauth_token_uri: str | None = None
    endpoint: str | None = None  # e.g. the local emulator's http://127.0.0.1:PORT
    storage_api: bool = True
    storage_grpc_endpoint: str | None = None  # host:port of an insecure Storage Read API (emulator)


@dataclass(frozen=True)
class SnowflakeSettings:
    account: str
    user: str
    database: str
    schema: str
    warehouse: str | None = None
    role: str | None = None
    auth: str = "password"  # password | key_pair | oauth
    password: EnvRef | None = None
    private_key_path: EnvRef | None = None
    private_key: EnvRef | None = None
    private_key_passphrase: EnvRef | None = None
    # auth: oauth (a custom-client security integration; `planhat-pipelines auth snowflake` gets the token)
    oauth_client_id: EnvRef | None = None
    oauth_client_secret: EnvRef | None = None
    oauth_refresh_token: EnvRef | None = None
    oauth_token_uri: str | None = None  # default https://<account>.snowflakecomputing.com/oauth/token-request
    oauth_refresh_token_expires: date | None = None  # the credentials sensor warns health.warn_days before
    host: str | None = None  # for a local emulator (fakesnow server)
    port: int | None = example("443", None)
    protocol: str | None = None


ConnectionSettings = DuckDBSettings | BigQuerySettings | SnowflakeSettings


@dataclass(frozen=True)
class ConnectionConfig:
    """A named warehouse connection.

    Attributes:
        name: Its name (used in sections, resource keys and asset kinds).
        type: duckdb, bigquery or snowflake.
        settings: The type's own settings.
        crm_automation: Whether the hourly CRM schedule of this connection starts switched on.
        health: Credentials sensor settings.
    """

    name: str
    type: str
    settings: ConnectionSettings
    crm_automation: bool = False
    health: HealthConfig = field(default_factory=HealthConfig)


# --- the file ----------------------------------------------------------------------------------------


class HealthFile(FileModel):
    every_minutes: Positive = example("1000", 15)
    key_rotation_date: Annotated[date | None, BeforeValidator(calendar_date)] = example("2026-01-31", None)
    warn_days: Positive = example("1000", 14)

    def build(self) -> HealthConfig:
        return HealthConfig(self.every_minutes, self.key_rotation_date, self.warn_days)


class _ConnectionFile(FileModel):
    read_if_present: ClassVar[frozenset[str]] = frozenset({"health"})
    crm_automation: bool = False
    health: HealthFile = HealthFile()

    @abstractmethod
    def settings(self, base_dir: Path) -> ConnectionSettings:
        """The type's settings dataclass; relative paths resolve against ``base_dir`` (the config's folder)."""

    def own_values(self) -> dict[str, Any]:
        """The type's own keys and values, as its settings dataclass takes them (EnvRefs kept as they are)."""
        shared = _ConnectionFile.model_fields
        return {
            (f.alias or n): getattr(self, n)
            for n, f in type(self).model_fields.items()
            if n not in shared and n != "type"
        }

    def build(self, name: str, base_dir: Path) -> ConnectionConfig:
        type_ = str(self.model_dump(include={"type"})["type"])  # each subclass declares its own Literal
        return ConnectionConfig(name, type_, self.settings(base_dir), self.crm_automation, self.health.build())


class DuckDBFile(_ConnectionFile):
    type: Literal["duckdb"]
    path: str = example("data/warehouse.duckdb")
    create: bool = False

    def settings(self, base_dir: Path) -> DuckDBSettings:
        written = Path(self.path)
        return DuckDBSettings((written if written.is_absolute() else base_dir / written).resolve(), self.create)


class BigQueryFile(_ConnectionFile):
    type: Literal["bigquery"]
    auth: Literal["service_account", "oauth", "adc"] = "adc"
    project: str = example("my-gcp-project")
    dataset: str = example("planhat")
    location: str | None = None
    service_account_key: Secret = None
    oauth_client_id: Secret = None
    oauth_client_secret: Secret = None
    oauth_refresh_token: Secret = None
    oauth_token_uri: str | None = None
    endpoint: str | None = None
    storage_api: bool = True
    storage_grpc_endpoint: str | None = None

    @classmethod
    def conditionally_required(cls, raw: Mapping[str, Any]) -> tuple[str, ...]:
        auth = raw.get("auth") or "adc"
        if auth == "oauth":
            return ("oauth_client_id", "oauth_client_secret", "oauth_refresh_token")
        return ("service_account_key",) if auth == "service_account" else ()

    @model_validator(mode="after")
    def _secrets_of_the_auth(self) -> BigQueryFile:
        for key in self.conditionally_required({"auth": self.auth}):
            if getattr(self, key) is None:
                fail("is missing", f"add '{key}: {{env: MY_ENV_VAR}}'", key)
        return self

    def settings(self, base_dir: Path) -> BigQuerySettings:
        return BigQuerySettings(**self.own_values())


#: The secrets ``auth: oauth`` needs on a Snowflake connection.
_SNOWFLAKE_OAUTH_SECRETS = ("oauth_client_id", "oauth_client_secret", "oauth_refresh_token")


class SnowflakeFile(_ConnectionFile):
    type: Literal["snowflake"]
    auth: Literal["password", "key_pair", "oauth"] = "password"
    account: str = example("myorg-myaccount")
    user: str = example("PLANHAT_SYNC")
    database: str = example("ANALYTICS")
    schema_: str = Field(alias="schema", json_schema_extra={"example": "PLANHAT"})
    warehouse: str | None = None
    role: str | None = None
    password: Secret = None
    private_key_path: Secret = None
    private_key: Secret = None
    private_key_passphrase: Secret = None
    oauth_client_id: Secret = None
    oauth_client_secret: Secret = None
    oauth_refresh_token: Secret = None
    oauth_token_uri: str | None = example("https://myorg-myaccount.snowflakecomputing.com/oauth/token-request", None)
    oauth_refresh_token_expires: Annotated[date | None, BeforeValidator(calendar_date)] = example("2027-03-01", None)
    host: str | None = None
    port: int | None = example("443", None)
    protocol: str | None = None

    @classmethod
    def conditionally_required(cls, raw: Mapping[str, Any]) -> tuple[str, ...]:
        auth = raw.get("auth") or "password"
        if auth == "oauth":
            return _SNOWFLAKE_OAUTH_SECRETS
        return ("password",) if auth == "password" else ()

    @field_validator("port")
    @classmethod
    def _a_port(cls, port: int | None) -> int | None:
        if port is not None and not 1 <= port <= 65535:
            fail(f"{port} is not a port number", "write a port between 1 and 65535, e.g. 'port: 443'")
        return port

    @model_validator(mode="after")
    def _credentials_of_the_auth(self) -> SnowflakeFile:
        if self.auth == "password" and self.password is None:
            fail("is missing", "add 'password: {env: MY_ENV_VAR}'", "password")
        if self.auth == "key_pair" and not (self.private_key_path or self.private_key):
            fail(
                "key_pair auth needs a private key",
                "add 'private_key_path: {env: SNOWFLAKE_PRIVATE_KEY_PATH}' or "
                "'private_key: {env: SNOWFLAKE_PRIVATE_KEY}'",
                "private_key_path",
            )
        if self.auth == "oauth":
            for key in _SNOWFLAKE_OAUTH_SECRETS:
                if getattr(self, key) is None:
                    fail("is missing", f"add '{key}: {{env: SNOWFLAKE_{key.upper()}}}'", key)
        elif self.oauth_refresh_token_expires is not None:
            fail(
                "is only read with 'auth: oauth'",
                "remove it, or use health.key_rotation_date for the expiry of a password or key",
                "oauth_refresh_token_expires",
            )
        return self

    def settings(self, base_dir: Path) -> SnowflakeSettings:
        return SnowflakeSettings(**self.own_values())


def _connection_name(name: str) -> str:
    if not NAME.match(name):
        fail(
            f"'{name}' is not a valid connection name", "use lower-case letters, digits and '_', starting with a letter"
        )
    return name


ConnectionName = Annotated[str, AfterValidator(_connection_name)]
ConnectionFile = Annotated[DuckDBFile | BigQueryFile | SnowflakeFile, Field(discriminator="type")]


def check_warehouse_files(path: Path, raw: Mapping[str, Any], connections: Mapping[str, ConnectionConfig]) -> None:
    """Refuse a DuckDB warehouse file that does not exist, unless its connection says ``create: true``.

    DuckDB creates a missing file on connect, so a mistyped path would become an empty warehouse
    and fail much later with "table ... does not exist". Checked after everything else parsed, so a
    mistake in the file is reported before what is (not) on disk.

    Args:
        path: The config file.
        raw: The file's ``connections:`` mapping as written.
        connections: The parsed connections.
    """
    base_dir = path.parent
    for name, connection in connections.items():
        settings = connection.settings
        if not isinstance(settings, DuckDBSettings) or settings.create or settings.path.is_file():
            continue
        written = str(raw[name]["path"])
        resolves = f"'{written}'" if written == str(settings.path) else f"'{written}' resolves to {settings.path}"
        relative = (
            ""
            if Path(written).is_absolute()
            else f" (a relative path is relative to the config file's folder, {base_dir})"
        )
        what = "is a folder, not a DuckDB file" if settings.path.is_dir() else "does not exist"
        raise ConfigError(
            str(path),
            f"connections.{name}.path",
            f"the DuckDB warehouse file {resolves}, which {what}{relative}",
            "correct the path; or, for a warehouse that starts empty and is filled by something else "
            "(such as `planhat-pipelines seed-demo`), add 'create: true' to this connection",
        )
