"""``okrs:``: objectives whose key results are one-number SQL queries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from planhat_pipelines.config.base import (
    FileModel,
    as_items,
    calendar_date,
    check_name,
    example,
    fail,
    finite,
    first_connection,
    known_connection,
    positive_int,
    positive_number,
)


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
    #: Its share in the objective's progress (a weighted average over the key results that have progress).
    weight: float = 1.0


@dataclass(frozen=True)
class Objective:
    """An objective: its progress and status roll up from its key results."""

    name: str
    title: str
    key_results: tuple[KeyResult, ...]


# --- the file ----------------------------------------------------------------------------------------
Day = Annotated[date, BeforeValidator(calendar_date)]
Finite = Annotated[float, AfterValidator(finite)]


class KeyResultFile(FileModel):
    # In the order the checks report them: direction and dates first, as the hand-written parser did.
    direction: Literal["increase", "decrease", "kpi"] = "increase"
    start_date: Day = example("2026-01-31")
    end_date: Day = example("2026-01-31")
    target: Finite | None = example("500", None)  # required unless the direction is kpi
    start_value: Finite = example("0", 0.0)
    name: Annotated[str, AfterValidator(check_name)] = example("my_section")
    title: str = ""
    connection: Annotated[str, AfterValidator(known_connection)] = example(first_connection)
    query: str = example("SELECT count(*) FROM leads")
    timeout_seconds: Annotated[float, AfterValidator(positive_number)] = example("60", 60.0)
    max_bytes_billed: Annotated[int | None, AfterValidator(positive_int)] = example("10000000000", None)
    weight: Annotated[float, AfterValidator(positive_number)] = example("1", 1.0)

    @classmethod
    def conditionally_required(cls, raw: Mapping[str, Any]) -> tuple[str, ...]:
        return () if raw.get("direction") == "kpi" else ("target",)

    @model_validator(mode="after")
    def _progress_is_defined(self) -> KeyResultFile:
        if self.end_date <= self.start_date:
            fail(
                f"end_date {self.end_date} is not after start_date {self.start_date}",
                "set an end_date after the start_date",
                "end_date",
            )
        if self.direction != "kpi":
            if self.target is None:
                fail("is missing", "add 'target: 500'", "target")
            if self.target == self.start_value:
                fail("target equals start_value, so progress is undefined", "set a different target", "target")
        return self

    def build(self, objective: str) -> KeyResult:
        return KeyResult(
            name=self.name,
            objective=objective,
            title=self.title,
            connection=self.connection,
            query=self.query,
            start_value=self.start_value,
            target=self.target,
            start_date=self.start_date,
            end_date=self.end_date,
            direction=self.direction,
            timeout_seconds=self.timeout_seconds,
            max_bytes_billed=self.max_bytes_billed,
            weight=self.weight,
        )


def _some(key_results: tuple[KeyResultFile, ...]) -> tuple[KeyResultFile, ...]:
    if not key_results:
        fail("has no key results", "add 'key_results:' with at least one item")
    return key_results


class ObjectiveFile(FileModel):
    name: Annotated[str, AfterValidator(check_name)] = example("my_section")
    title: str | None = None  # the name when absent
    key_results: Annotated[tuple[KeyResultFile, ...], BeforeValidator(as_items), AfterValidator(_some)] = Field(
        (), validate_default=True
    )

    def build(self) -> Objective:
        return Objective(
            self.name,
            self.name if self.title is None else self.title,
            tuple(kr.build(self.name) for kr in self.key_results),
        )
