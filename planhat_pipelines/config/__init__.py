"""The sync config: one YAML file parsed into typed, validated objects.

Every mistake raises :class:`~planhat_pipelines.errors.ConfigError` naming the file, the section,
the field and what to write instead. Nothing is read at import time: call :func:`load_config`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from difflib import get_close_matches
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from planhat_pipelines.errors import ConfigError
from planhat_pipelines.models import MODELS, ModelSpec

#: Environment variable naming the config file.
CONFIG_ENV_VAR = "PLANHAT_PIPELINES_CONFIG"
#: The config file used when the environment variable is not set (relative to the working directory).
DEFAULT_CONFIG_PATH = "planhat_pipelines.yaml"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
T = TypeVar("T")


class Direction(Enum):
    """Which way a CRM section or field syncs."""

    BOTH = "both"
    SEND = "send"  # Planhat (the store) -> warehouse
    RECEIVE = "receive"  # warehouse -> Planhat (the store)

    @property
    def receives(self) -> bool:
        return self in (Direction.BOTH, Direction.RECEIVE)

    @property
    def sends(self) -> bool:
        return self in (Direction.BOTH, Direction.SEND)

    def allows(self, other: Direction) -> bool:
        """Whether ``other`` narrows (or equals) this direction."""
        return self is Direction.BOTH or other is self


@dataclass(frozen=True)
class EnvRef:
    """A secret given by environment-variable name (``{env: NAME}`` in the file)."""

    name: str

    def value(self) -> str:
        """The variable's current value ('' when unset; load_config already checked it is set)."""
        return os.environ.get(self.name, "")


# --- connections ---------------------------------------------------------------------------------
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
    auth: str = "password"  # password | key_pair
    password: EnvRef | None = None
    private_key_path: EnvRef | None = None
    private_key: EnvRef | None = None
    private_key_passphrase: EnvRef | None = None
    host: str | None = None  # for a local emulator (fakesnow server)
    port: int | None = None
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


# --- CRM sections ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldMapping:
    """One mapped field of a CRM section.

    Attributes:
        planhat: A standard field, ``custom`` (the whole JSON column into custom fields) or
            ``custom.<name>`` (one custom field).
        warehouse: The warehouse column.
        direction: Narrows the section's direction.
        path: A dot path into a JSON/VARIANT column picking one nested attribute.
    """

    planhat: str
    warehouse: str
    direction: Direction
    path: str | None = None

    @property
    def is_custom(self) -> bool:
        return self.planhat == "custom" or self.planhat.startswith("custom.")

    @property
    def custom_name(self) -> str | None:
        return self.planhat.split(".", 1)[1] if self.planhat.startswith("custom.") else None


@dataclass(frozen=True)
class CrmSection:
    """One model mapped to one warehouse table or view."""

    name: str
    model: ModelSpec
    connection: str
    table: str
    direction: Direction
    planhat_key: str
    warehouse_key: str
    fields: tuple[FieldMapping, ...]
    company_match: str = "externalId"
    null_overwrites: bool = False

    def receive_fields(self) -> tuple[FieldMapping, ...]:
        return tuple(f for f in self.fields if f.direction.receives)

    def send_fields(self) -> tuple[FieldMapping, ...]:
        return tuple(f for f in self.fields if f.direction.sends)


# --- usage sections ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cadence:
    """Every 5, 10, 30 or 60 minutes, or daily at a time in a time zone."""

    every_minutes: int | None = None
    daily_at: time | None = None
    timezone: str = "UTC"

    @property
    def cron(self) -> str:
        if self.every_minutes == 60:
            return "0 * * * *"
        if self.every_minutes is not None:
            return f"*/{self.every_minutes} * * * *"
        assert self.daily_at is not None
        return f"{self.daily_at.minute} {self.daily_at.hour} * * *"

    @property
    def interval_seconds(self) -> int:
        return (self.every_minutes or 24 * 60) * 60

    def last_due(self, now: datetime) -> datetime:
        """The latest scheduled tick at or before ``now`` (aware datetime), in the cadence's time zone."""
        local = now.astimezone(ZoneInfo(self.timezone))
        if self.every_minutes is not None:
            minutes = (local.hour * 60 + local.minute) // self.every_minutes * self.every_minutes
            return local.replace(hour=minutes // 60, minute=minutes % 60, second=0, microsecond=0)
        assert self.daily_at is not None
        due = local.replace(hour=self.daily_at.hour, minute=self.daily_at.minute, second=0, microsecond=0)
        return due if due <= local else due - timedelta(days=1)

    def describe(self) -> str:
        if self.every_minutes is not None:
            return f"every {self.every_minutes} minutes"
        assert self.daily_at is not None
        return f"daily at {self.daily_at:%H:%M} {self.timezone}"


#: Rows per read batch and per store transaction when a usage section does not say. Measured in
#: BENCHMARKS.md: 200,000 is ~1.5x faster than 50,000 and peaks lower (fewer commits and checkpoints).
DEFAULT_USAGE_BATCH_SIZE = 200_000

USAGE_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "activities": {"required": ("record", "action", "date"), "optional": ("count", "weight", "info")},
    "metrics": {"required": ("record", "dimension", "value", "date"), "optional": ()},
}
USAGE_MODELS = {"activities": ("enduser", "company"), "metrics": ("company", "enduser", "asset", "project")}


@dataclass(frozen=True)
class UsageSection:
    """One warehouse table or view mapped to User Activities or Custom Metrics."""

    name: str
    kind: str  # activities | metrics
    model: ModelSpec
    connection: str
    table: str
    key: str
    fields: Mapping[str, str]  # role -> warehouse column
    record_match: str
    batch_size: int
    partition_span: int
    cadence: Cadence
    lookback: int = 0
    unknown_reference: str = "reject"  # reject | keep


# --- OKRs ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyResult:
    """A key result whose value comes from a one-number SQL query."""

    name: str
    objective: str
    title: str
    connection: str
    query: str
    start_value: float
    target: float | None
    start_date: date
    end_date: date
    direction: str  # increase | decrease | kpi
    timeout_seconds: float = 60.0
    max_bytes_billed: int | None = None


@dataclass(frozen=True)
class Objective:
    name: str
    title: str
    key_results: tuple[KeyResult, ...]


@dataclass(frozen=True)
class AlertsConfig:
    """Where alerts go (log by default, or a webhook) and when a section's rejects alert.

    Attributes:
        webhook_url: The incoming-webhook URL, a secret (its path carries the token): only ever
            ``{env: NAME}``, read when an alert is sent.
        rejected_share_threshold: A sync that rejects more than this share of the rows it read alerts.
    """

    webhook_url: EnvRef | None = None
    rejected_share_threshold: float = 0.05


@dataclass(frozen=True)
class Config:
    """The whole parsed config."""

    path: Path
    store_path: Path
    connections: Mapping[str, ConnectionConfig]
    crm: tuple[CrmSection, ...] = ()
    usage: tuple[UsageSection, ...] = ()
    objectives: tuple[Objective, ...] = ()
    alerts: AlertsConfig = field(default_factory=AlertsConfig)

    @property
    def key_results(self) -> tuple[KeyResult, ...]:
        return tuple(kr for obj in self.objectives for kr in obj.key_results)

    def connection(self, name: str) -> ConnectionConfig:
        return self.connections[name]


# --- parsing -----------------------------------------------------------------------------------------
#: Every key the parser reads, anywhere in the file. A missing required key is reported as a typo of a
#: present key only when that key is none of these: ``oauth_client_secret`` is never "a misspelled
#: ``oauth_client_id``", even while it has not been read yet. ``_Node`` refuses to read a key not listed
#: here, so the set cannot fall behind the parser (every parse path runs in the tests).
_KNOWN_KEYS = frozenset(
    {
        # top level, store, alerts
        *("store", "connections", "crm", "usage", "okrs", "alerts", "path", "webhook_url"),
        "rejected_share_threshold",
        # connections
        *("type", "crm_automation", "health", "create", "auth", "project", "dataset", "location"),
        *("service_account_key", "oauth_client_id", "oauth_client_secret", "oauth_refresh_token"),
        *("oauth_token_uri", "endpoint", "storage_api", "storage_grpc_endpoint", "account", "user"),
        *("database", "schema", "warehouse", "role", "password", "private_key_path", "private_key"),
        *("private_key_passphrase", "host", "port", "protocol", "every_minutes", "key_rotation_date"),
        "warn_days",
        # crm sections, their keys and fields
        *("name", "model", "connection", "table", "direction", "keys", "fields", "company_match"),
        *("null_overwrites", "planhat"),
        # usage sections, their field roles and cadence
        *("kind", "key", "record_match", "batch_size", "partition_span", "cadence", "lookback"),
        *("unknown_reference", "record", "action", "date", "count", "weight", "info", "dimension", "value"),
        *("daily_at", "timezone"),
        # okrs
        *("title", "key_results", "query", "start_value", "target", "start_date", "end_date"),
        *("timeout_seconds", "max_bytes_billed"),
    }
)
_DATE_SHAPE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}")


class _Node:
    """A mapping from the YAML file with a location, so every error can say where it is."""

    def __init__(self, path: str, where: str, data: Any) -> None:
        self.path = path
        self.where = where
        if not isinstance(data, Mapping):
            self.fail(f"must be a mapping, got {type(data).__name__}", "write 'key: value' lines")
        self.data: Mapping[str, Any] = data
        self.used: set[str] = set()

    def fail(self, problem: str, fix: str, key: str | None = None) -> NoReturn:
        where = (f"{self.where}.{key}" if self.where else key) if key else self.where
        raise ConfigError(self.path, where, problem, fix)

    def child(self, key: str, data: Any) -> _Node:
        return _Node(self.path, f"{self.where}.{key}" if self.where else key, data)

    def has(self, key: str) -> bool:
        return key in self.data

    def use(self, key: str) -> None:
        """Mark ``key`` as read (so :meth:`done` does not call it unknown)."""
        if key not in _KNOWN_KEYS:
            raise AssertionError(f"config key '{key}' is read but not listed in _KNOWN_KEYS")
        self.used.add(key)

    def missing(self, key: str, fix: str) -> NoReturn:
        """Fail for a required ``key`` that is absent: as a typo of a present unknown key, else as missing."""
        strangers = [str(k) for k in self.data if k not in self.used and str(k) not in _KNOWN_KEYS]
        typo = get_close_matches(key, strangers, n=1)
        if typo:
            self.fail("unknown key", f"did you mean '{key}'? rename it: '{key}' is required here", typo[0])
        self.fail("is missing", fix, key)

    def get(
        self,
        key: str,
        type_: type[T] | tuple[type, ...],
        default: Any = None,
        *,
        required: bool = False,
        example: str = "",
    ) -> Any:
        self.use(key)
        if key not in self.data or self.data[key] is None:
            if required:
                self.missing(key, f"add '{key}: {example or '...'}'")
            return default
        value = self.data[key]
        types = type_ if isinstance(type_, tuple) else (type_,)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = "/".join(t.__name__ for t in types)
            self.fail(f"must be {names}, got {value!r}", f"write '{key}: {example or '...'}'", key)
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.get(key, str, default, required=default is None, example=choices[0])
        if value not in choices:
            self.fail(f"'{value}' is not allowed", f"use one of: {', '.join(choices)}", key)
        return str(value)

    def positive_int(self, key: str, default: int | None = None, *, example: str = "1000") -> int:
        value = self.optional_positive_int(key, default, required=default is None, example=example)
        assert value is not None  # required or defaulted
        return value

    def optional_positive_int(
        self, key: str, default: int | None = None, *, required: bool = False, example: str = "1000"
    ) -> int | None:
        value = self.get(key, int, default, required=required, example=example)
        if value is not None and value <= 0:
            self.fail(f"must be a positive integer, got {value}", f"write '{key}: {example}'", key)
        return None if value is None else int(value)

    def number(self, key: str, default: float | None = None, *, required: bool = False, example: str) -> float | None:
        """A finite number (YAML's .nan and .inf mean nothing as a target or a limit)."""
        value = self.get(key, float, default, required=required, example=example)
        if value is not None and not math.isfinite(value):
            self.fail(f"must be a finite number, got {value}", f"write '{key}: {example}'", key)
        return value

    def positive_number(self, key: str, default: float, *, example: str) -> float:
        value = self.get(key, float, default, example=example)
        if not (math.isfinite(value) and value > 0):
            shown = int(value) if math.isfinite(value) and value.is_integer() else value
            self.fail(f"must be a positive number, got {shown}", f"write '{key}: {example}'", key)
        return float(value)

    def name(self, key: str = "name") -> str:
        value = self.get(key, str, required=True, example="my_section")
        if not _NAME.match(value):
            self.fail(
                f"'{value}' is not a valid name",
                "use lower-case letters, digits and '_', starting with a letter",
                key,
            )
        return str(value)

    def env(self, key: str, *, required: bool = False) -> EnvRef | None:
        self.use(key)
        value = self.data.get(key)
        if value is None:
            if required:
                self.missing(key, f"add '{key}: {{env: MY_ENV_VAR}}'")
            return None
        if not (isinstance(value, Mapping) and set(value) == {"env"} and isinstance(value["env"], str)):
            self.fail(
                "secrets are given only by environment variable",
                f"write '{key}: {{env: MY_ENV_VAR}}' and export MY_ENV_VAR",
                key,
            )
        ref = EnvRef(value["env"])
        if ref.name not in os.environ:
            self.fail(
                f"environment variable {ref.name} is not set",
                f"export {ref.name}=... before starting Dagster, or fix the variable name",
                key,
            )
        return ref

    def date(self, key: str, *, required: bool = True) -> date | None:
        value = self.get(key, (date, str), required=required, example="2026-01-31")
        if isinstance(value, datetime):
            # YAML reads '2026-01-31 10:00' as a date-time; a date field keeps its day (and a
            # date-time compared with a date would raise TypeError).
            return value.date()
        if value is None or isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            # A date-shaped value that is no day of the calendar (2026-02-30): say why.
            reason = f" ({exc})" if _DATE_SHAPE.match(value) else ""
            self.fail(f"'{value}' is not a date{reason}", f"write '{key}: 2026-01-31'", key)
        raise AssertionError  # unreachable

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            key = unknown[0]
            close = get_close_matches(str(key), sorted(self.used), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(sorted(self.used))}"
            self.fail("unknown key", f"remove it; {hint}", str(key))


def _list(node: _Node, key: str) -> list[tuple[str, Any]]:
    node.use(key)
    items = node.data.get(key) or []
    if not isinstance(items, list):
        node.fail("must be a list", f"write '{key}:' followed by '- name: ...' items", key)
    return [(f"{key}[{i}]", item) for i, item in enumerate(items)]


def _duckdb_settings(node: _Node, base_dir: Path) -> DuckDBSettings:
    written = Path(node.get("path", str, required=True, example="data/warehouse.duckdb"))
    create = node.get("create", bool, False)
    return DuckDBSettings((written if written.is_absolute() else base_dir / written).resolve(), create)


def _check_warehouse_files(conns_node: _Node, connections: Mapping[str, ConnectionConfig], base_dir: Path) -> None:
    """Refuse a DuckDB warehouse file that does not exist, unless its connection says ``create: true``.

    DuckDB creates a missing file on connect, so a mistyped path would become an empty warehouse
    and fail much later with "table ... does not exist". Checked after everything else parsed, so a
    mistake in the file is reported before what is (not) on disk.
    """
    for name, connection in connections.items():
        settings = connection.settings
        if not isinstance(settings, DuckDBSettings) or settings.create or settings.path.is_file():
            continue
        node = conns_node.child(name, conns_node.data[name])
        raw = str(node.data["path"])
        resolves = f"'{raw}'" if raw == str(settings.path) else f"'{raw}' resolves to {settings.path}"
        relative = (
            "" if Path(raw).is_absolute() else f" (a relative path is relative to the config file's folder, {base_dir})"
        )
        what = "is a folder, not a DuckDB file" if settings.path.is_dir() else "does not exist"
        node.fail(
            f"the DuckDB warehouse file {resolves}, which {what}{relative}",
            "correct the path; or, for a warehouse that starts empty and is filled by something else "
            "(such as `planhat-pipelines seed-demo`), add 'create: true' to this connection",
            "path",
        )


def _parse_connection(parent: _Node, name: str, data: Any, base_dir: Path) -> ConnectionConfig:
    node = parent.child(name, data)
    if not _NAME.match(name):
        node.fail(
            f"'{name}' is not a valid connection name",
            "use lower-case letters, digits and '_', starting with a letter",
        )
    kind = node.choice("type", ("duckdb", "bigquery", "snowflake"))
    automation = node.get("crm_automation", bool, False)
    health = HealthConfig()
    if node.has("health"):
        h = node.child("health", node.get("health", dict))
        health = HealthConfig(
            every_minutes=h.positive_int("every_minutes", 15),
            key_rotation_date=h.date("key_rotation_date", required=False),
            warn_days=h.positive_int("warn_days", 14),
        )
        h.done()
    settings: ConnectionSettings
    if kind == "duckdb":
        settings = _duckdb_settings(node, base_dir)
    elif kind == "bigquery":
        auth = node.choice("auth", ("service_account", "oauth", "adc"), "adc")
        settings = BigQuerySettings(
            project=node.get("project", str, required=True, example="my-gcp-project"),
            dataset=node.get("dataset", str, required=True, example="planhat"),
            location=node.get("location", str),
            auth=auth,
            service_account_key=node.env("service_account_key", required=auth == "service_account"),
            oauth_client_id=node.env("oauth_client_id", required=auth == "oauth"),
            oauth_client_secret=node.env("oauth_client_secret", required=auth == "oauth"),
            oauth_refresh_token=node.env("oauth_refresh_token", required=auth == "oauth"),
            oauth_token_uri=node.get("oauth_token_uri", str),
            endpoint=node.get("endpoint", str),
            storage_api=node.get("storage_api", bool, True),
            storage_grpc_endpoint=node.get("storage_grpc_endpoint", str),
        )
    else:
        auth = node.choice("auth", ("password", "key_pair"), "password")
        settings = SnowflakeSettings(
            account=node.get("account", str, required=True, example="myorg-myaccount"),
            user=node.get("user", str, required=True, example="PLANHAT_SYNC"),
            database=node.get("database", str, required=True, example="ANALYTICS"),
            schema=node.get("schema", str, required=True, example="PLANHAT"),
            warehouse=node.get("warehouse", str),
            role=node.get("role", str),
            auth=auth,
            password=node.env("password", required=auth == "password"),
            private_key_path=node.env("private_key_path"),
            private_key=node.env("private_key"),
            private_key_passphrase=node.env("private_key_passphrase"),
            host=node.get("host", str),
            port=_port(node),
            protocol=node.get("protocol", str),
        )
        if auth == "key_pair" and not (settings.private_key_path or settings.private_key):
            node.fail(
                "key_pair auth needs a private key",
                "add 'private_key_path: {env: SNOWFLAKE_PRIVATE_KEY_PATH}' or "
                "'private_key: {env: SNOWFLAKE_PRIVATE_KEY}'",
                "private_key_path",
            )
    node.done()
    return ConnectionConfig(name, kind, settings, automation, health)


def _port(node: _Node) -> int | None:
    port = node.get("port", int, example="443")
    if port is not None and not 1 <= port <= 65535:
        node.fail(f"{port} is not a port number", "write a port between 1 and 65535, e.g. 'port: 443'", "port")
    return None if port is None else int(port)


def _require_connection(node: _Node, connections: Mapping[str, ConnectionConfig]) -> str:
    value = node.get("connection", str, required=True, example=next(iter(connections), "embedded"))
    if value not in connections:
        node.fail(
            f"unknown connection '{value}'",
            f"use one of the connections declared under 'connections:': {', '.join(connections)}",
            "connection",
        )
    return str(value)


def _require_model(node: _Node, allowed: tuple[str, ...] | None = None) -> ModelSpec:
    choices = allowed or tuple(MODELS)
    value = node.get("model", str, required=True, example=choices[0])
    if value not in choices:
        close = get_close_matches(value, choices, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        node.fail(f"unknown model '{value}'", f"{hint}use one of: {', '.join(choices)}", "model")
    return MODELS[value]


def _parse_field(parent: _Node, where: str, data: Any, model: ModelSpec, section_dir: Direction) -> FieldMapping:
    node = parent.child(where, data)
    planhat = node.get("planhat", str, required=True, example="name")
    warehouse = node.get("warehouse", str, required=True, example="column_name")
    direction = Direction(node.choice("direction", tuple(d.value for d in Direction), section_dir.value))
    path = node.get("path", str)
    if not section_dir.allows(direction):
        node.fail(
            f"direction '{direction.value}' is wider than the section's '{section_dir.value}'",
            f"a field can only narrow its section's direction: use '{section_dir.value}' or omit it",
            "direction",
        )
    if not (planhat == "custom" or planhat.startswith("custom.")):
        spec = model.field(planhat)
        if spec is None:
            names = [f.name for f in model.all_fields]
            close = get_close_matches(planhat, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            node.fail(
                f"unknown {model.name} field '{planhat}'",
                f"{hint}use a standard field ({', '.join(names)}), 'custom' or 'custom.<name>'",
                "planhat",
            )
        if spec.derived and direction.receives:
            node.fail(
                f"{model.name}.{planhat} is derived from licenses and cannot be received",
                "set 'direction: send' for this field, or sync the License model instead",
                "planhat",
            )
        if spec.name == "id" and direction.receives:
            node.fail(
                "the native id is assigned by Planhat and cannot be received",
                "set 'direction: send' for this field",
                "planhat",
            )
    node.done()
    return FieldMapping(planhat, warehouse, direction, path)


def _parse_crm(parent: _Node, where: str, data: Any, connections: Mapping[str, ConnectionConfig]) -> CrmSection:
    node = parent.child(where, data)
    name = node.name()
    model = _require_model(node)
    connection = _require_connection(node, connections)
    table = node.get("table", str, required=True, example="crm_companies")
    direction = Direction(node.choice("direction", tuple(d.value for d in Direction)))
    keys = node.child("keys", node.get("keys", dict, required=True, example="{planhat: externalId, warehouse: id}"))
    planhat_key = keys.get("planhat", str, required=True, example=model.keys[0])
    if planhat_key not in model.keys:
        keys.fail(
            f"'{planhat_key}' cannot match {model.name} records",
            f"use one of: {', '.join(model.keys)}",
            "planhat",
        )
    if planhat_key == "id" and direction.receives:
        keys.fail(
            "the native id is assigned by Planhat, so a receiving section cannot match on it",
            "use sourceId or externalId, or set the section's direction to 'send'",
            "planhat",
        )
    warehouse_key = keys.get("warehouse", str, required=True, example="id")
    keys.done()
    fields = tuple(_parse_field(node, w, d, model, direction) for w, d in _list(node, "fields"))
    if not fields:
        node.fail("maps no fields", "add 'fields:' with at least one '- {planhat: ..., warehouse: ...}'", "fields")
    company_match = node.choice("company_match", ("externalId", "sourceId", "id"), "externalId")
    null_overwrites = node.get("null_overwrites", bool, False)
    node.done()
    return CrmSection(
        name,
        model,
        connection,
        table,
        direction,
        planhat_key,
        warehouse_key,
        fields,
        company_match,
        null_overwrites,
    )


def _parse_cadence(parent: _Node, data: Any) -> Cadence:
    node = parent.child("cadence", data)
    every = node.get("every_minutes", int)
    daily = node.get("daily_at", (str, int))
    tz = node.get("timezone", str, "UTC")
    node.done()
    if (every is None) == (daily is None):
        node.fail(
            "needs exactly one of every_minutes or daily_at",
            "write 'cadence: {every_minutes: 5}' or 'cadence: {daily_at: \"06:30\", timezone: UTC}'",
        )
    if every is not None and every not in (5, 10, 30, 60):
        node.fail(f"every_minutes {every} is not offered", "use 5, 10, 30 or 60, or daily_at", "every_minutes")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        node.fail(f"unknown time zone '{tz}'", "use an IANA name such as UTC or Europe/Stockholm", "timezone")
    at: time | None = None
    if daily is not None:
        text = str(daily) if isinstance(daily, str) else f"{daily // 60:02d}:{daily % 60:02d}"
        try:
            at = time.fromisoformat(text)
        except ValueError:
            node.fail(f"'{daily}' is not a time of day", 'write daily_at: "06:30" (quoted, 24-hour)', "daily_at")
    return Cadence(every, at, tz)


def _parse_usage(parent: _Node, where: str, data: Any, connections: Mapping[str, ConnectionConfig]) -> UsageSection:
    node = parent.child(where, data)
    name = node.name()
    kind = node.choice("kind", ("activities", "metrics"))
    model = _require_model(node, USAGE_MODELS[kind])
    connection = _require_connection(node, connections)
    table = node.get("table", str, required=True, example="usage_events")
    key = node.get("key", str, required=True, example="event_id")
    roles = USAGE_FIELDS[kind]
    fnode = node.child("fields", node.get("fields", dict, required=True, example="{record: user_email, ...}"))
    fields: dict[str, str] = {}
    for role in roles["required"]:
        fields[role] = fnode.get(role, str, required=True, example=f"{role}_column")
    for role in roles["optional"]:
        value = fnode.get(role, str)
        if value is not None:
            fields[role] = value
    fnode.done()
    matches = ("externalId", "sourceId", "email", "id") if model.slug == "enduser" else ("externalId", "sourceId", "id")
    record_match = node.choice("record_match", matches, "externalId")
    batch_size = node.positive_int("batch_size", DEFAULT_USAGE_BATCH_SIZE)
    span = node.positive_int("partition_span", max(1_000_000, batch_size))
    if span < batch_size:
        node.fail(
            f"partition_span {span} is smaller than batch_size {batch_size}",
            f"set partition_span to at least {batch_size}",
            "partition_span",
        )
    cadence = _parse_cadence(node, node.get("cadence", dict, required=True, example="{every_minutes: 5}"))
    lookback = node.get("lookback", int, 0)
    if lookback < 0:
        node.fail("must be zero or positive", "write 'lookback: 1000' (keys re-read below the cursor)", "lookback")
    unknown = node.choice("unknown_reference", ("reject", "keep"), "reject")
    node.done()
    return UsageSection(
        name,
        kind,
        model,
        connection,
        table,
        key,
        fields,
        record_match,
        batch_size,
        span,
        cadence,
        lookback,
        unknown,
    )


def _parse_objective(parent: _Node, where: str, data: Any, connections: Mapping[str, ConnectionConfig]) -> Objective:
    node = parent.child(where, data)
    name = node.name()
    title = node.get("title", str, name)
    krs = []
    for kr_where, kr_data in _list(node, "key_results"):
        kr = node.child(kr_where, kr_data)
        direction = kr.choice("direction", ("increase", "decrease", "kpi"), "increase")
        start = kr.date("start_date")
        end = kr.date("end_date")
        assert start is not None and end is not None
        if end <= start:
            kr.fail(
                f"end_date {end} is not after start_date {start}",
                "set an end_date after the start_date",
                "end_date",
            )
        target = kr.number("target", required=direction != "kpi", example="500")
        start_value = kr.number("start_value", 0.0, example="0")
        assert start_value is not None  # defaulted
        if target is not None and direction != "kpi" and target == start_value:
            kr.fail("target equals start_value, so progress is undefined", "set a different target", "target")
        krs.append(
            KeyResult(
                name=kr.name(),
                objective=name,
                title=kr.get("title", str, ""),
                connection=_require_connection(kr, connections),
                query=kr.get("query", str, required=True, example="SELECT count(*) FROM leads"),
                start_value=start_value,
                target=target,
                start_date=start,
                end_date=end,
                direction=direction,
                timeout_seconds=kr.positive_number("timeout_seconds", 60.0, example="60"),
                max_bytes_billed=kr.optional_positive_int("max_bytes_billed", example="10000000000"),
            )
        )
        kr.done()
    if not krs:
        node.fail("has no key results", "add 'key_results:' with at least one item", "key_results")
    node.done()
    return Objective(name, title, tuple(krs))


def _kind_of(data: Any) -> str:
    if isinstance(data, list):
        return "a list"
    if isinstance(data, str):
        return f"the text {data[:40]!r}"
    return f"a {type(data).__name__}"


def _check_names(root: _Node, crm: tuple[CrmSection, ...], usage: tuple[UsageSection, ...], okrs: list[str]) -> None:
    """Refuse a name used twice: within a kind, and across CRM and usage sections."""
    for kind, names in (("crm", [s.name for s in crm]), ("usage", [s.name for s in usage]), ("okrs", okrs)):
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            root.fail(f"name '{sorted(dupes)[0]}' is used twice", "give every section a unique name", kind)
    crm_index = {s.name: i for i, s in enumerate(crm)}
    for i, section in enumerate(usage):
        if section.name in crm_index:
            # The sync log, the rejected rows and the alerts are keyed by section name alone.
            root.fail(
                f"'{section.name}' is also the name of crm[{crm_index[section.name]}]; CRM and usage sections "
                "share the sync log and the rejected rows, which are kept by section name",
                f"give every section a unique name, e.g. '{section.name}_usage'",
                f"usage[{i}].name",
            )


def parse_config(data: Any, path: Path, *, require_existing_warehouses: bool = False) -> Config:
    """Parse an already-loaded YAML document.

    Args:
        data: The document.
        path: The config file, named in messages; relative paths resolve against its folder.
        require_existing_warehouses: Refuse a DuckDB warehouse file that does not exist (unless its
            connection says ``create: true``). :func:`load_config` asks for it; documents built in
            memory (tests, benchmarks) need not have their files yet.

    Raises:
        ConfigError: The first mistake, naming the file, the section, the field and the fix.
    """
    if data is None:
        raise ConfigError(
            str(path),
            "file",
            "is empty (it holds no YAML document)",
            "declare at least 'store:' and 'connections:'; start from examples/complete.yaml",
        )
    if not isinstance(data, Mapping):
        raise ConfigError(
            str(path),
            "top level",
            f"must be a mapping of 'key: value' lines, got {_kind_of(data)}",
            "write the sections as top-level keys: store:, connections:, and crm:, usage:, okrs:, alerts: as needed "
            "(see examples/complete.yaml)",
        )
    root = _Node(str(path), "", data)
    base_dir = path.parent
    store = root.child("store", root.get("store", dict, required=True, example="{path: data/planhat.duckdb}"))
    store_raw = Path(store.get("path", str, required=True, example="data/planhat.duckdb"))
    store.done()
    conns_node = root.child(
        "connections",
        root.get("connections", dict, required=True, example="{embedded: {type: duckdb, path: ...}}"),
    )
    connections = {str(n): _parse_connection(conns_node, str(n), d, base_dir) for n, d in conns_node.data.items()}
    conns_node.used.update(str(n) for n in conns_node.data)
    if not connections:
        root.fail("no connections are declared", "add at least one under 'connections:'", "connections")
    crm = tuple(_parse_crm(root, w, d, connections) for w, d in _list(root, "crm"))
    usage = tuple(_parse_usage(root, w, d, connections) for w, d in _list(root, "usage"))
    objectives = tuple(_parse_objective(root, w, d, connections) for w, d in _list(root, "okrs"))
    alerts = AlertsConfig()
    if root.has("alerts"):
        a = root.child("alerts", root.get("alerts", dict))
        threshold = a.get("rejected_share_threshold", float, 0.05)
        if not 0 <= threshold <= 1:
            a.fail(
                f"{threshold} is not a share",
                "write a number between 0 and 1, e.g. 0.05",
                "rejected_share_threshold",
            )
        if isinstance(a.data.get("webhook_url"), str):
            # Not env()'s generic message: name the variable to use, and never echo the URL (it is the secret).
            a.fail(
                "is written in plain text, but the URL is a secret (its path carries the webhook's token)",
                "write webhook_url: {env: PLANHAT_ALERTS_WEBHOOK} and export the URL",
                "webhook_url",
            )
        alerts = AlertsConfig(webhook_url=a.env("webhook_url"), rejected_share_threshold=threshold)
        a.done()
    root.done()
    _check_names(root, crm, usage, [kr.name for o in objectives for kr in o.key_results])
    if require_existing_warehouses:
        _check_warehouse_files(conns_node, connections, base_dir)
    return Config(
        path,
        store_raw if store_raw.is_absolute() else base_dir / store_raw,
        connections,
        crm,
        usage,
        objectives,
        alerts,
    )


def config_path(explicit: str | Path | None = None) -> Path:
    """The config file to use: ``explicit``, else $PLANHAT_PIPELINES_CONFIG, else ./planhat_pipelines.yaml."""
    return Path(explicit or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH).resolve()


class _DuplicateKeyError(Exception):
    """A mapping in the YAML file declares the same key twice."""

    def __init__(self, where: str, key: str, first_line: int, second_line: int) -> None:
        super().__init__(where)
        self.where = where
        self.key = key
        self.lines = (first_line, second_line)


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter where plain YAML would silently lose meaning.

    - A key declared twice in one mapping raises :class:`_DuplicateKeyError` with its dotted
      location (YAML itself keeps the last value, so the first declaration would be ignored).
      ``<<`` merge keys are not duplicates: keys written beside a merge override it, as YAML means.
    - A date-shaped scalar that is no calendar day (``2026-02-30``) stays text, so the config field
      that reads it reports it with its location (PyYAML would raise a bare ``ValueError``).
    """

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _refuse_duplicate_keys(node, "", set())
        return node

    def construct_lenient_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _StrictLoader.construct_lenient_timestamp)


def _refuse_duplicate_keys(node: yaml.Node, where: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias of a node already checked (and anchors may be recursive)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            at = f"{where}.{key}" if where else key
            line = key_node.start_mark.line + 1
            ident = (key_node.tag, key)
            if isinstance(key_node, yaml.ScalarNode) and ident in lines:
                raise _DuplicateKeyError(at, key, lines[ident], line)
            lines[ident] = line
            _refuse_duplicate_keys(value_node, at, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{where}[{i}]", seen)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path`` (None when it holds none), read with :class:`_StrictLoader`.

    Raises:
        ConfigError: The file cannot be read, is not valid YAML, or declares a key twice.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "file", f"cannot be read ({exc})", "point at a readable UTF-8 YAML file") from exc
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: constructs plain data only
    except _DuplicateKeyError as exc:
        first, second = exc.lines
        raise ConfigError(
            str(path),
            exc.where,
            f"appears twice (lines {first} and {second}); YAML would silently keep only the last one",
            f"keep one '{exc.key}:' and delete or rename the other",
        ) from None
    except yaml.YAMLError as exc:
        problem = f"is not valid YAML ({_yaml_problem(exc)})"
        raise ConfigError(str(path), "file", problem, "fix the YAML syntax at that line") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line error as one line: what, and where (line and column)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        context = f"{exc.context}: " if exc.context else ""
        return f"{context}{exc.problem}{where}"
    return " ".join(str(exc).split())


def load_config(path: str | Path | None = None, *, require_existing_warehouses: bool = True) -> Config:
    """Read and validate the config file (see :func:`config_path` for which one).

    Args:
        path: The file; default :func:`config_path`.
        require_existing_warehouses: Refuse a DuckDB warehouse file that does not exist unless its
            connection says ``create: true`` (see :func:`parse_config`).

    Raises:
        ConfigError: The first mistake, naming the file, the section, the field and the fix.
    """
    resolved = config_path(path)
    if not resolved.exists():
        raise ConfigError(
            str(resolved),
            "file",
            "does not exist",
            f"create it (see examples/complete.yaml) or set {CONFIG_ENV_VAR} to its path",
        )
    return parse_config(read_yaml(resolved), resolved, require_existing_warehouses=require_existing_warehouses)
