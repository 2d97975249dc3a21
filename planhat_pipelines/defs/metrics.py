"""Calculated metrics and the health score in Dagster: an asset per metric and one for the health score.

Thin: each asset calls :mod:`planhat_pipelines.metrics` and reports its numbers (numeric metadata, so the UI
plots them). ``metrics/<name>`` is downstream of the usage sections of its source kind, ``health_score`` of the
metrics it weighs and the CRM sections of the models it reads. Each is refreshed when its upstream lands
(``WHEN_UPSTREAM_LANDS``, evaluated by ``customer_numbers_automation_sensor``) and in ``customer_numbers_refresh``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from planhat_pipelines.config import CalculatedMetric, Config
from planhat_pipelines.defs.automation import WHEN_UPSTREAM_LANDS
from planhat_pipelines.defs.naming import (
    METRICS_GROUP,
    crm_asset_key,
    health_score_asset_key,
    metric_asset_key,
    usage_asset_key,
)
from planhat_pipelines.defs.resources import StoreResource
from planhat_pipelines.metrics import compute_health_scores, compute_metric

#: The models whose CRM sections the health score reads (company fields, renewal dates, issues, NPS).
HEALTH_MODELS = ("company", "license", "issue", "nps")


def _describe_metric(metric: CalculatedMetric) -> str:
    source = f"activities{' ' + ', '.join(metric.actions) if metric.actions else ''}"
    if metric.source == "metrics":
        source = f"custom metric '{metric.dimension}'"
    return (
        f"Calculated metric `{metric.name}` on {metric.model}: {metric.operation} of {source} over the last "
        f"{metric.window_days} days. A daily series per record in the store's `calculated_metric_values` "
        f"(the last {metric.history_days} days recomputed each run) and the latest value on the record as "
        f"`custom.{metric.name}`."
    )


def build_metric_asset(config: Config, metric: CalculatedMetric) -> dg.AssetsDefinition:
    """``metrics/<name>``: recompute the metric's series and latest values."""
    upstream = [usage_asset_key(s) for s in config.usage if s.kind == metric.source]

    @dg.asset(
        key=metric_asset_key(metric.name),
        group_name=METRICS_GROUP,
        kinds={"duckdb"},
        deps=upstream,
        pool=f"planhat_metric_{metric.name}",
        automation_condition=WHEN_UPSTREAM_LANDS,
        description=_describe_metric(metric),
        tags={"domain": "metrics"},
    )
    def _metric(store: StoreResource) -> dg.MaterializeResult:
        with store.open() as model_store:
            result = compute_metric(model_store, metric, datetime.now(UTC).date())
        return dg.MaterializeResult(metadata=dict(result.metadata()))

    return _metric


def build_health_score_asset(config: Config) -> dg.AssetsDefinition:
    """``health_score``: every company's score, its inputs and the day's history row."""
    health = config.health_score
    metric_inputs = [i.ref for i in health.inputs if i.source == "metric" and i.ref]
    deps = [metric_asset_key(name) for name in metric_inputs]
    deps += [crm_asset_key(s) for s in config.crm if s.model.slug in HEALTH_MODELS and s.direction.receives]
    weights = ", ".join(
        f"{i.name} ({i.source}{' ' + i.ref if i.ref else ''}, weight {i.weight:g})" for i in health.inputs
    )

    @dg.asset(
        key=health_score_asset_key(),
        group_name=METRICS_GROUP,
        kinds={"duckdb"},
        deps=deps,
        pool="planhat_health_score",
        automation_condition=WHEN_UPSTREAM_LANDS,
        description=(
            f"Company health score 0-10: the weighted average of its inputs' scores ({weights}), each input mapped "
            "to 0-10 by its thresholds. Kept on the company as `h`, per day in `health_scores` and per input in "
            "`health_score_inputs`."
        ),
        tags={"domain": "metrics"},
    )
    def _health(store: StoreResource) -> dg.MaterializeResult:
        with store.open() as model_store:
            result = compute_health_scores(model_store, health, config.calculated_metrics, datetime.now(UTC).date())
        return dg.MaterializeResult(metadata=dict(result.metadata()))

    return _health


def build_metric_assets(config: Config) -> list[dg.AssetsDefinition]:
    """An asset per calculated metric, and the health score's when it is enabled and has inputs."""
    assets = [build_metric_asset(config, m) for m in config.calculated_metrics]
    if config.health_score.enabled and config.health_score.inputs:
        assets.append(build_health_score_asset(config))
    return assets
