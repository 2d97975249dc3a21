"""Numbers computed in the store from the synced data: calculated metrics and the company health score.

The pure core (no Dagster): each computation is set-based SQL on the store in one transaction, safe to run again.
"""

from planhat_pipelines.metrics.calculated import MetricResult, compute_metric
from planhat_pipelines.metrics.health_score import HealthResult, compute_health_scores

__all__ = ["HealthResult", "MetricResult", "compute_health_scores", "compute_metric"]
