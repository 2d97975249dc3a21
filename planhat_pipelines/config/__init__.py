"""The sync config: one YAML file parsed by pydantic models into typed, validated objects.

Every mistake raises :class:`~planhat_pipelines.errors.ConfigError` naming the file, the section,
the field and what to write instead. Nothing is read at import time: call :func:`load_config`.

One module per part of the file (``connections``, ``crm``, ``usage``, ``okrs``, ``alerts``); ``loader``
holds the top level and reading the file, ``errors`` the translation of pydantic's errors.
"""

from planhat_pipelines.config.alerts import AlertsConfig
from planhat_pipelines.config.base import EnvRef
from planhat_pipelines.config.behaviours import BehavioursConfig, ChurnBehaviour, DoneTaskBehaviour, WonDealBehaviour
from planhat_pipelines.config.connections import (
    BigQuerySettings,
    ConnectionConfig,
    ConnectionSettings,
    DuckDBSettings,
    HealthConfig,
    SnowflakeSettings,
)
from planhat_pipelines.config.crm import CrmSection, DeleteLimit, Direction, FieldMapping, OnMissing
from planhat_pipelines.config.health_score import HealthInput, HealthScoreConfig, Threshold
from planhat_pipelines.config.loader import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    Config,
    config_path,
    load_config,
    parse_config,
)
from planhat_pipelines.config.metrics import CalculatedMetric
from planhat_pipelines.config.okrs import KeyResult, Objective
from planhat_pipelines.config.strict_yaml import read_yaml
from planhat_pipelines.config.usage import (
    DEFAULT_USAGE_BATCH_SIZE,
    USAGE_FIELDS,
    USAGE_MODELS,
    Cadence,
    UsageSection,
)

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_USAGE_BATCH_SIZE",
    "USAGE_FIELDS",
    "USAGE_MODELS",
    "AlertsConfig",
    "BehavioursConfig",
    "BigQuerySettings",
    "Cadence",
    "CalculatedMetric",
    "ChurnBehaviour",
    "Config",
    "ConnectionConfig",
    "ConnectionSettings",
    "CrmSection",
    "DeleteLimit",
    "Direction",
    "DoneTaskBehaviour",
    "DuckDBSettings",
    "EnvRef",
    "FieldMapping",
    "HealthConfig",
    "HealthInput",
    "HealthScoreConfig",
    "KeyResult",
    "Objective",
    "OnMissing",
    "SnowflakeSettings",
    "Threshold",
    "UsageSection",
    "WonDealBehaviour",
    "config_path",
    "load_config",
    "parse_config",
    "read_yaml",
]
