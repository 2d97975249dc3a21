"""The customer numbers built on the synced data: behaviours, calculated metrics and the health score.

One job runs them all (``customer_numbers_refresh``: the demo runs it after the syncs; launch it from the UI to
recompute); one automation sensor, RUNNING by default, runs each asset when its upstream sections land.
"""

from __future__ import annotations

import dagster as dg

from planhat_pipelines.config import Config
from planhat_pipelines.defs.behaviours import build_behaviour_assets
from planhat_pipelines.defs.metrics import build_metric_assets
from planhat_pipelines.defs.naming import CUSTOMER_NUMBERS_JOB, CUSTOMER_NUMBERS_SENSOR


def build_customer_numbers_defs(config: Config) -> dg.Definitions:
    """The behaviour, metric and health-score assets, their job and their automation sensor (empty when none)."""
    assets = build_behaviour_assets(config) + build_metric_assets(config)
    if not assets:
        return dg.Definitions()
    selection = dg.AssetSelection.assets(*assets)
    job = dg.define_asset_job(
        CUSTOMER_NUMBERS_JOB,
        selection=selection,
        description="Run every behaviour, then every calculated metric, then the health score, in lineage order.",
    )
    sensor = dg.AutomationConditionSensorDefinition(
        CUSTOMER_NUMBERS_SENSOR,
        target=selection,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs each behaviour, calculated metric and the health score when its upstream sections land.",
    )
    return dg.Definitions(assets=assets, jobs=[job], sensors=[sensor])
