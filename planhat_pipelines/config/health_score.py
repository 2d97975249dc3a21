"""``health_score:``: a company health score from weighted inputs, each mapped to 0-10 by thresholds.

An input reads one number per company: a calculated metric (``metric: <name>``), a Company field
(``field: arr`` or ``field: custom.seats``), the days to renewal, the open issues, or the last NPS score. Its
``thresholds`` map the number to a score: the score of the last threshold whose ``at`` is at or below the
number (0 below the first). The company's score is the weighted average of its inputs' scores (inputs without a
number are left out), 0-10 with one decimal, stored on the company as ``h`` with its history and per input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from planhat_pipelines.config.base import FileModel, as_items, check_name, example, fail, finite
from planhat_pipelines.config.metrics import CalculatedMetric
from planhat_pipelines.errors import ConfigError
from planhat_pipelines.models import MODELS, FieldType

#: Input sources that need no further argument.
BUILTIN_INPUTS = ("days_to_renewal", "open_issues", "last_nps")


@dataclass(frozen=True)
class Threshold:
    """From ``at`` upwards (until the next threshold) an input scores ``score``."""

    at: float
    score: float


@dataclass(frozen=True)
class HealthInput:
    """One weighted input of the health score.

    Attributes:
        name: The input's name (shown beside its score).
        source: ``metric``, ``field``, ``days_to_renewal``, ``open_issues`` or ``last_nps``.
        ref: The calculated metric's name (``metric``) or the Company field (``field``; ``custom.x`` allowed).
        weight: Its weight in the average.
        thresholds: Ascending by ``at``.
    """

    name: str
    source: str
    ref: str | None
    weight: float
    thresholds: tuple[Threshold, ...]


@dataclass(frozen=True)
class HealthScoreConfig:
    """The health score: its inputs (none: no score is computed)."""

    inputs: tuple[HealthInput, ...] = ()
    enabled: bool = True


#: Company field types an input cannot read as a number (text is read when it holds one).
_NOT_NUMBERS = (FieldType.DATE, FieldType.DATETIME, FieldType.JSON)


def company_field_problem(ref: str) -> tuple[str, str] | None:
    """Why ``ref`` is no Company field a ``field`` input can read, and the fix; None when it can.

    ``custom.<name>`` is always allowed (custom fields need no declaration); a standard field must exist and hold
    something a number can be read from.
    """
    if ref.startswith("custom.") and ref != "custom.":
        return None
    company = MODELS["company"]
    spec = company.field(ref)
    if spec is None:
        names = [f.name for f in company.all_fields]
        close = get_close_matches(ref, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown Company field '{ref}'", f"{hint}use a standard field ({', '.join(names)}) or 'custom.<name>'"
    if spec.type in _NOT_NUMBERS:
        fix = "use 'source: days_to_renewal'" if ref == "renewalDate" else "use a number field or 'custom.<name>'"
        return f"Company.{ref} is {spec.type.value}, not a number", fix
    return None


def check_health_inputs(health: HealthScoreConfig, metrics: Sequence[CalculatedMetric], path: Path | str) -> None:
    """Refuse inputs that read what is not there: an undeclared metric, a metric not on Company, an unknown field.

    A check across sections (the inputs against ``calculated_metrics:``), so the loader calls it after parsing.

    Raises:
        ConfigError: The first such input, located as ``health_score.inputs[i].metric`` (or ``.field``).
    """
    by_name = {m.name: m for m in metrics}
    company_metrics = [m.name for m in metrics if m.model == "company"]
    listed = ", ".join(company_metrics) or "none yet"
    for i, item in enumerate(health.inputs):
        where = f"health_score.inputs[{i}]"
        if item.source == "metric":
            ref = item.ref or ""
            metric = by_name.get(ref)
            if metric is None:
                close = get_close_matches(ref, list(by_name), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ConfigError(
                    str(path),
                    f"{where}.metric",
                    f"'{ref}' is not a declared calculated metric",
                    f"{hint}declare it under 'calculated_metrics:' (with 'model: company') or use one of: {listed}",
                )
            if metric.model != "company":
                raise ConfigError(
                    str(path),
                    f"{where}.metric",
                    f"'{ref}' is a metric on {metric.model}; the health score reads one number per company",
                    f"declare a metric with 'model: company' (end users' activities roll up to their company) "
                    f"or use one of: {listed}",
                )
        elif item.source == "field":
            problem = company_field_problem(item.ref or "")
            if problem is not None:
                raise ConfigError(str(path), f"{where}.field", *problem)


# --- the file ----------------------------------------------------------------------------------------
def _positive(value: float) -> float:
    if value <= 0:
        fail(f"must be above 0, got {value}", "write 'weight: 1'")
    return value


def _a_score(value: float) -> float:
    if not 0 <= value <= 10:
        fail(f"{value} is not a score from 0 to 10", "write a score between 0 and 10")
    return value


def _as_float(value: object) -> object:
    """YAML reads ``10`` as an int: a number field takes it (bools excepted)."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


Number = Annotated[float, BeforeValidator(_as_float), AfterValidator(finite)]


class ThresholdFile(FileModel):
    at: Number
    score: Annotated[Number, AfterValidator(_a_score)]


class HealthInputFile(FileModel):
    name: Annotated[str, AfterValidator(check_name)] = example("usage")
    source: Literal["metric", "field", "days_to_renewal", "open_issues", "last_nps"] = example("metric")
    metric: str | None = None
    field: str | None = None
    weight: Annotated[
        float, BeforeValidator(lambda v: float(v) if isinstance(v, int) else v), AfterValidator(_positive)
    ] = 1.0
    thresholds: Annotated[tuple[ThresholdFile, ...], BeforeValidator(as_items)] = Field(
        (), json_schema_extra={"example": "[{at: 0, score: 0}, {at: 10, score: 10}]"}
    )

    @model_validator(mode="after")
    def _complete(self) -> HealthInputFile:
        if self.source == "metric" and not self.metric:
            fail("a metric input needs the calculated metric's name", "add 'metric: active_users_30d'", "metric")
        if self.source == "field" and not self.field:
            fail("a field input needs the Company field", "add 'field: custom.seats'", "field")
        if self.source == "field" and self.field:
            problem = company_field_problem(self.field)
            if problem is not None:
                fail(*problem, "field")
        if not self.thresholds:
            fail("has no thresholds", "add 'thresholds: [{at: 0, score: 0}, {at: 10, score: 10}]'", "thresholds")
        ats = [t.at for t in self.thresholds]
        if ats != sorted(ats) or len(set(ats)) != len(ats):
            fail(
                f"thresholds are not in ascending order of 'at' ({ats})",
                "list each 'at' once, smallest first",
                "thresholds",
            )
        return self

    def build(self) -> HealthInput:
        ref = self.metric if self.source == "metric" else self.field if self.source == "field" else None
        return HealthInput(
            self.name, self.source, ref, self.weight, tuple(Threshold(t.at, t.score) for t in self.thresholds)
        )


class HealthScoreFile(FileModel):
    enabled: bool = True
    inputs: Annotated[tuple[HealthInputFile, ...], BeforeValidator(as_items)] = ()

    def build(self) -> HealthScoreConfig:
        return HealthScoreConfig(tuple(i.build() for i in self.inputs), self.enabled)
