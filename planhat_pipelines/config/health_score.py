"""``health_score:``: a company health score from weighted inputs, each mapped to 0-10 by thresholds.

An input reads one number per company: a calculated metric (``metric: <name>``), a Company field
(``field: arr`` or ``field: custom.seats``), the days to renewal, the open issues, or the last NPS score. Its
``thresholds`` map the number to a score: the score of the last threshold whose ``at`` is at or below the
number (0 below the first). The company's score is the weighted average of its inputs' scores (inputs without a
number are left out), 0-10 with one decimal, stored on the company as ``h`` with its history and per input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from planhat_pipelines.config.base import FileModel, as_items, check_name, example, fail, finite

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
