"""The whole config: the file's top level, the checks across sections, and loading it from disk."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, ValidationError, field_validator

from planhat_pipelines.config.alerts import AlertsConfig, AlertsFile
from planhat_pipelines.config.base import FileModel, as_items, example, fail
from planhat_pipelines.config.behaviours import BehavioursConfig, BehavioursFile
from planhat_pipelines.config.connections import (
    ConnectionConfig,
    ConnectionFile,
    ConnectionName,
    check_warehouse_files,
)
from planhat_pipelines.config.crm import CrmSection, CrmSectionFile
from planhat_pipelines.config.errors import config_error
from planhat_pipelines.config.health_score import HealthScoreConfig, HealthScoreFile, check_health_inputs
from planhat_pipelines.config.metrics import CalculatedMetric, CalculatedMetricFile
from planhat_pipelines.config.okrs import KeyResult, Objective, ObjectiveFile
from planhat_pipelines.config.store import StoreFile
from planhat_pipelines.config.strict_yaml import read_yaml
from planhat_pipelines.config.usage import UsageFile, UsageSection
from planhat_pipelines.errors import ConfigError
from planhat_pipelines.store.location import StoreLocation

#: Environment variable naming the config file.
CONFIG_ENV_VAR = "PLANHAT_PIPELINES_CONFIG"
#: The config file used when the environment variable is not set (relative to the working directory).
DEFAULT_CONFIG_PATH = "planhat_pipelines.yaml"


@dataclass(frozen=True)
class Config:
    """The whole parsed config."""

    path: Path
    store: StoreLocation
    connections: Mapping[str, ConnectionConfig]
    crm: tuple[CrmSection, ...] = ()
    usage: tuple[UsageSection, ...] = ()
    objectives: tuple[Objective, ...] = ()
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    behaviours: BehavioursConfig = field(default_factory=BehavioursConfig)
    calculated_metrics: tuple[CalculatedMetric, ...] = ()
    health_score: HealthScoreConfig = field(default_factory=HealthScoreConfig)

    @property
    def key_results(self) -> tuple[KeyResult, ...]:
        return tuple(kr for obj in self.objectives for kr in obj.key_results)

    def connection(self, name: str) -> ConnectionConfig:
        return self.connections[name]


# --- the file ----------------------------------------------------------------------------------------
class ConfigFile(FileModel):
    """The file's top level, in the order its mistakes are reported."""

    read_if_present: ClassVar[frozenset[str]] = frozenset({"alerts", "behaviours", "health_score"})
    store: StoreFile = StoreFile()
    connections: dict[ConnectionName, ConnectionFile] = example("{embedded: {type: duckdb, path: ...}}")
    crm: Annotated[tuple[CrmSectionFile, ...], BeforeValidator(as_items)] = ()
    usage: Annotated[tuple[UsageFile, ...], BeforeValidator(as_items)] = ()
    okrs: Annotated[tuple[ObjectiveFile, ...], BeforeValidator(as_items)] = ()
    alerts: AlertsFile = AlertsFile()
    behaviours: BehavioursFile = BehavioursFile()
    calculated_metrics: Annotated[tuple[CalculatedMetricFile, ...], BeforeValidator(as_items)] = ()
    health_score: HealthScoreFile = HealthScoreFile()

    @field_validator("connections")
    @classmethod
    def _at_least_one(cls, connections: dict[str, Any]) -> dict[str, Any]:
        if not connections:
            fail("no connections are declared", "add at least one under 'connections:'")
        return connections


def _check_names(path: Path, crm: tuple[CrmSection, ...], usage: tuple[UsageSection, ...], okrs: list[str]) -> None:
    """Refuse a name used twice: within a kind, and across CRM and usage sections."""
    for kind, names in (("crm", [s.name for s in crm]), ("usage", [s.name for s in usage]), ("okrs", okrs)):
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigError(
                str(path), kind, f"name '{sorted(dupes)[0]}' is used twice", "give every section a unique name"
            )
    crm_index = {s.name: i for i, s in enumerate(crm)}
    for i, section in enumerate(usage):
        if section.name in crm_index:
            # The sync log, the rejected rows and the alerts are keyed by section name alone.
            raise ConfigError(
                str(path),
                f"usage[{i}].name",
                f"'{section.name}' is also the name of crm[{crm_index[section.name]}]; CRM and usage sections "
                "share the sync log and the rejected rows, which are kept by section name",
                f"give every section a unique name, e.g. '{section.name}_usage'",
            )


def _check_metric_names(path: Path, metrics: tuple[CalculatedMetric, ...]) -> None:
    """Refuse two calculated metrics of one name: they would write the same series and ``custom.<name>``."""
    seen: dict[str, int] = {}
    for i, metric in enumerate(metrics):
        if metric.name in seen:
            raise ConfigError(
                str(path),
                f"calculated_metrics[{i}].name",
                f"'{metric.name}' is also the name of calculated_metrics[{seen[metric.name]}]; both would write the "
                f"same series and custom.{metric.name}",
                f"give every calculated metric a unique name, e.g. '{metric.name}_2'",
            )
        seen[metric.name] = i


def _kind_of(data: Any) -> str:
    if isinstance(data, list):
        return "a list"
    if isinstance(data, str):
        return f"the text {data[:40]!r}"
    return f"a {type(data).__name__}"


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
            "declare at least 'connections:'; start from examples/complete.yaml",
        )
    if not isinstance(data, Mapping):
        raise ConfigError(
            str(path),
            "top level",
            f"must be a mapping of 'key: value' lines, got {_kind_of(data)}",
            "write the sections as top-level keys: store:, connections:, and crm:, usage:, okrs:, alerts: as needed "
            "(see examples/complete.yaml)",
        )
    declared = data.get("connections")
    context = {"connections": tuple(str(n) for n in declared) if isinstance(declared, Mapping) else ()}
    try:
        file = ConfigFile.model_validate(data, context=context)
    except ValidationError as exc:
        raise config_error(exc, ConfigFile, data, path, context) from None
    base_dir = path.parent
    connections = {name: c.build(name, base_dir) for name, c in file.connections.items()}
    crm = tuple(s.build() for s in file.crm)
    usage = tuple(s.build() for s in file.usage)
    objectives = tuple(o.build() for o in file.okrs)
    _check_names(path, crm, usage, [kr.name for o in objectives for kr in o.key_results])
    metrics = tuple(m.build() for m in file.calculated_metrics)
    _check_metric_names(path, metrics)
    health_score = file.health_score.build()
    check_health_inputs(health_score, metrics, path)
    if require_existing_warehouses:
        check_warehouse_files(path, data["connections"], connections)
    return Config(
        path,
        file.store.build(base_dir),
        connections,
        crm,
        usage,
        objectives,
        file.alerts.build(),
        file.behaviours.build(),
        metrics,
        health_score,
    )


def config_path(explicit: str | Path | None = None) -> Path:
    """The config file to use: ``explicit``, else $PLANHAT_PIPELINES_CONFIG, else ./planhat_pipelines.yaml."""
    return Path(explicit or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH).resolve()


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
