"""The one place that assembles the Dagster ``Definitions`` from the config file.

Loaded lazily: the config is read when Dagster calls :func:`defs`, never at import time.
"""

from __future__ import annotations

import dagster as dg

from planhat_pipelines.config import Config, load_config
from planhat_pipelines.defs.crm import build_crm_defs
from planhat_pipelines.defs.customer_numbers import build_customer_numbers_defs
from planhat_pipelines.defs.health import build_health_defs
from planhat_pipelines.defs.maintenance import build_maintenance_defs
from planhat_pipelines.defs.okrs import build_okr_defs
from planhat_pipelines.defs.preview import build_preview_defs
from planhat_pipelines.defs.resources import build_resources
from planhat_pipelines.defs.usage import build_usage_defs


def build_definitions(config: Config) -> dg.Definitions:
    """All assets, checks, jobs, schedules, sensors and resources the config declares."""
    return dg.Definitions.merge(
        build_crm_defs(config),
        build_usage_defs(config),
        build_customer_numbers_defs(config),
        build_okr_defs(config),
        build_health_defs(config),
        build_maintenance_defs(),
        build_preview_defs(config),
        dg.Definitions(resources=build_resources(config), executor=dg.in_process_executor),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Definitions for the config named by $PLANHAT_PIPELINES_CONFIG (default ./planhat_pipelines.yaml)."""
    return build_definitions(load_config())
