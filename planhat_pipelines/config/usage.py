"""``usage:``: a warehouse table of User Activities or Custom Metrics, one pydantic model per ``kind``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from planhat_pipelines.config.base import (
    FileModel,
    Positive,
    check_name,
    check_owners,
    example,
    fail,
    first_connection,
    known_connection,
    model_name,
)
from planhat_pipelines.models import MODELS, ModelSpec


@dataclass(frozen=True)
class Cadence:
    """Every 5, 10, 30 or 60 minutes, or daily at a time in a time zone."""

    every_minutes: int | None = None
    daily_at: time | None = None
    timezone: str = "UTC"

    @property
    def interval_seconds(self) -> int:
        return (self.every_minutes or 24 * 60) * 60

    def describe(self) -> str:
        if self.every_minutes is not None:
            return f"every {self.every_minutes} minutes"
        assert self.daily_at is not None
        return f"daily at {self.daily_at:%H:%M} {self.timezone}"


#: Rows per read batch and per store transaction when a usage section does not say. Measured in
#: BENCHMARKS.md: 200,000 is ~1.5x faster than 50,000 and peaks lower (fewer commits and checkpoints).
DEFAULT_USAGE_BATCH_SIZE = 200_000

USAGE_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "activities": {"required": ("record", "action", "date"), "optional": ("count", "weight", "info")},
    "metrics": {"required": ("record", "dimension", "value", "date"), "optional": ()},
}
USAGE_MODELS = {"activities": ("enduser", "company"), "metrics": ("company", "enduser", "asset", "project")}


@dataclass(frozen=True)
class UsageSection:
    """One warehouse table or view mapped to User Activities or Custom Metrics."""

    name: str
    kind: str  # activities | metrics
    model: ModelSpec
    connection: str
    table: str
    key: str
    fields: Mapping[str, str]  # role -> warehouse column
    record_match: str
    batch_size: int
    partition_span: int
    cadence: Cadence
    lookback: int = 0
    unknown_reference: str = "reject"  # reject | keep
    owners: tuple[str, ...] = ()


# --- the file ----------------------------------------------------------------------------------------
def _time_or_minutes(value: Any, info: ValidationInfo) -> str | int:
    # YAML 1.1 reads an unquoted 06:30 as the sexagesimal integer 390 (minutes), so both are accepted.
    if isinstance(value, bool) or not isinstance(value, str | int):
        fail(f"must be str/int, got {value!r}", "write 'daily_at: ...'")
    return value


def _time_of(daily: str | int) -> time:
    return time.fromisoformat(daily if isinstance(daily, str) else f"{daily // 60:02d}:{daily % 60:02d}")


class CadenceFile(FileModel):
    unknown_keys_first: ClassVar[bool] = True
    every_minutes: int | None = None
    daily_at: Annotated[str | int | None, BeforeValidator(_time_or_minutes)] = None
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _one_offered_cadence(self) -> CadenceFile:
        every, daily = self.every_minutes, self.daily_at
        if (every is None) == (daily is None):
            fail(
                "needs exactly one of every_minutes or daily_at",
                "write 'cadence: {every_minutes: 5}' or 'cadence: {daily_at: \"06:30\", timezone: UTC}'",
            )
        if every is not None and every not in (5, 10, 30, 60):
            fail(f"every_minutes {every} is not offered", "use 5, 10, 30 or 60, or daily_at", "every_minutes")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            fail(f"unknown time zone '{self.timezone}'", "use an IANA name such as UTC or Europe/Stockholm", "timezone")
        if daily is not None:
            try:
                _time_of(daily)
            except ValueError:
                fail(f"'{daily}' is not a time of day", 'write daily_at: "06:30" (quoted, 24-hour)', "daily_at")
        return self

    def build(self) -> Cadence:
        return Cadence(self.every_minutes, None if self.daily_at is None else _time_of(self.daily_at), self.timezone)


class ActivitiesFields(FileModel):
    record: str = example("record_column")
    action: str = example("action_column")
    date: str = example("date_column")
    count: str | None = None
    weight: str | None = None
    info: str | None = None


class MetricsFields(FileModel):
    record: str = example("record_column")
    dimension: str = example("dimension_column")
    value: str = example("value_column")
    date: str = example("date_column")


def _zero_or_more(value: int) -> int:
    if value < 0:
        fail("must be zero or positive", "write 'lookback: 1000' (keys re-read below the cursor)")
    return value


class _UsageFile(FileModel):
    name: Annotated[str, AfterValidator(check_name)] = example("my_section")
    kind: str
    model: str
    connection: Annotated[str, AfterValidator(known_connection)] = example(first_connection)
    table: str = example("usage_events")
    key: str = example("event_id")
    fields: ActivitiesFields | MetricsFields
    record_match: str = example("externalId", "externalId")
    batch_size: Positive = example("1000", DEFAULT_USAGE_BATCH_SIZE)
    partition_span: Positive | None = example("1000", None)  # at least 1,000,000 and the batch size when absent
    cadence: CadenceFile = example("{every_minutes: 5}")
    lookback: Annotated[int, AfterValidator(_zero_or_more)] = 0
    unknown_reference: Literal["reject", "keep"] = "reject"
    owners: Annotated[tuple[str, ...], BeforeValidator(check_owners)] = ()

    @field_validator("model")
    @classmethod
    def _a_model(cls, value: str, info: ValidationInfo) -> str:
        return model_name(value, USAGE_MODELS[str(info.data.get("kind"))])

    @field_validator("record_match")
    @classmethod
    def _a_record_match(cls, value: str, info: ValidationInfo) -> str:
        if "model" not in info.data:
            return value  # the model was refused: that is the message
        matches = (
            ("externalId", "sourceId", "email", "id")
            if info.data["model"] == "enduser"
            else ("externalId", "sourceId", "id")
        )
        if value not in matches:
            fail(f"'{value}' is not allowed", f"use one of: {', '.join(matches)}")
        return value

    @model_validator(mode="after")
    def _span_holds_a_batch(self) -> _UsageFile:
        span = self.span
        if span < self.batch_size:
            fail(
                f"partition_span {span} is smaller than batch_size {self.batch_size}",
                f"set partition_span to at least {self.batch_size}",
                "partition_span",
            )
        return self

    @property
    def span(self) -> int:
        return self.partition_span if self.partition_span is not None else max(1_000_000, self.batch_size)

    def build(self) -> UsageSection:
        given = self.fields.model_dump(exclude_none=True)
        roles = USAGE_FIELDS[self.kind]
        fields = {role: given[role] for role in (*roles["required"], *roles["optional"]) if role in given}
        return UsageSection(
            self.name,
            self.kind,
            MODELS[self.model],
            self.connection,
            self.table,
            self.key,
            fields,
            self.record_match,
            self.batch_size,
            self.span,
            self.cadence.build(),
            self.lookback,
            self.unknown_reference,
            self.owners,
        )


class ActivitiesFile(_UsageFile):
    kind: Literal["activities"]
    model: str = example("enduser")
    fields: ActivitiesFields = example("{record: user_email, ...}")


class MetricsFile(_UsageFile):
    kind: Literal["metrics"]
    model: str = example("company")
    fields: MetricsFields = example("{record: user_email, ...}")


UsageFile = Annotated[ActivitiesFile | MetricsFile, Field(discriminator="kind")]
