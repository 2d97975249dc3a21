"""``calculated_metrics:``: numbers computed from the synced usage, as Planhat's calculated metrics.

A metric has a name, a model (Company, End User, Asset, Project), a source (User Activities, or one
Custom Metric dimension), an operation, an optional filter and a window in days. It is computed per record
per day into the store's ``calculated_metric_values`` series, and its latest value is kept on the record
as the custom field ``custom.<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, model_validator

from planhat_pipelines.config.base import FileModel, Positive, check_name, example, fail

#: The models a calculated metric can be declared on.
METRIC_MODELS = ("company", "enduser", "asset", "project")
#: Operations and the sources each one applies to.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "count": ("activities", "metrics"),
    "sum": ("activities", "metrics"),
    "average": ("activities", "metrics"),
    "distinct_users": ("activities",),
    "last": ("activities", "metrics"),
}


@dataclass(frozen=True)
class CalculatedMetric:
    """One calculated metric.

    Attributes:
        name: Its name; also the custom field ``custom.<name>`` holding the latest value on the record.
        model: ``company``, ``enduser``, ``asset`` or ``project``.
        source: ``activities`` (User Activities) or ``metrics`` (Custom Metrics).
        operation: ``count`` (rows), ``sum`` / ``average`` / ``last`` (of the activity ``count`` or the metric
            ``value``), ``distinct_users`` (end users with an activity; activities only).
        window_days: The value on day D covers the ``window_days`` days ending with D.
        actions: Activities only: count only these actions (empty: every action).
        dimension: Metrics only: the Custom Metric dimension (required).
        history_days: How many days of the daily series each run (re)computes, ending today.
    """

    name: str
    model: str
    source: str
    operation: str
    window_days: int
    actions: tuple[str, ...] = ()
    dimension: str | None = None
    history_days: int = 90


# --- the file ----------------------------------------------------------------------------------------
def _a_list(value: object) -> object:
    """YAML gives a list; the field is a tuple (strict mode converts nothing by itself)."""
    return tuple(value) if isinstance(value, list) else value


class MetricFilterFile(FileModel):
    actions: Annotated[tuple[str, ...], BeforeValidator(_a_list)] = ()
    dimension: str | None = None


class CalculatedMetricFile(FileModel):
    name: Annotated[str, AfterValidator(check_name)] = example("active_users_7d")
    model: Literal["company", "enduser", "asset", "project"] = example("company")
    source: Literal["activities", "metrics"] = example("activities")
    operation: Literal["count", "sum", "average", "distinct_users", "last"] = example("count")
    window_days: Positive = example("30")
    filter: MetricFilterFile = MetricFilterFile()
    history_days: Positive = 90

    @model_validator(mode="after")
    def _fits_the_source(self) -> CalculatedMetricFile:
        if self.source not in OPERATIONS[self.operation]:
            fail(
                f"operation '{self.operation}' does not apply to {self.source}",
                f"use one of: {', '.join(op for op, s in OPERATIONS.items() if self.source in s)}",
                "operation",
            )
        if self.source == "metrics" and not self.filter.dimension:
            fail("a metrics source needs the dimension it reads", "add 'filter: {dimension: api_calls}'", "filter")
        if self.source == "metrics" and self.filter.actions:
            fail("actions filter activities, not metrics", "remove 'actions' or use 'source: activities'", "filter")
        if self.source == "activities" and self.filter.dimension:
            fail("a dimension filters metrics, not activities", "remove 'dimension' or use 'source: metrics'", "filter")
        return self

    def build(self) -> CalculatedMetric:
        return CalculatedMetric(
            self.name,
            self.model,
            self.source,
            self.operation,
            self.window_days,
            tuple(self.filter.actions),
            self.filter.dimension,
            self.history_days,
        )
