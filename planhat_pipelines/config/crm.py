"""``crm:``: one Planhat model mapped to one warehouse table or view, field by field."""

from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from planhat_pipelines.config.base import (
    FileModel,
    as_items,
    check_name,
    check_owners,
    example,
    fail,
    first_connection,
    known_connection,
    model_name,
)
from planhat_pipelines.models import MODELS, ModelSpec


class Direction(Enum):
    """Which way a CRM section or field syncs."""

    BOTH = "both"
    SEND = "send"  # Planhat (the store) -> warehouse
    RECEIVE = "receive"  # warehouse -> Planhat (the store)

    @property
    def receives(self) -> bool:
        return self in (Direction.BOTH, Direction.RECEIVE)

    @property
    def sends(self) -> bool:
        return self in (Direction.BOTH, Direction.SEND)

    def allows(self, other: Direction) -> bool:
        """Whether ``other`` narrows (or equals) this direction."""
        return self is Direction.BOTH or other is self


@dataclass(frozen=True)
class FieldMapping:
    """One mapped field of a CRM section.

    Attributes:
        planhat: A standard field, ``custom`` (the whole JSON column into custom fields) or
            ``custom.<name>`` (one custom field).
        warehouse: The warehouse column.
        direction: Narrows the section's direction.
        path: A dot path into a JSON/VARIANT column picking one nested attribute.
    """

    planhat: str
    warehouse: str
    direction: Direction
    path: str | None = None

    @property
    def is_custom(self) -> bool:
        return self.planhat == "custom" or self.planhat.startswith("custom.")

    @property
    def custom_name(self) -> str | None:
        return self.planhat.split(".", 1)[1] if self.planhat.startswith("custom.") else None


class OnMissing(Enum):
    """What receive does with a record whose source row is gone (``on_missing:``)."""

    IGNORE = "ignore"  # keep it as it is (Planhat's own sync: the default)
    ARCHIVE = "archive"  # keep it, marked ``_archived_at`` and hidden from the web app's pages
    DELETE = "delete"  # delete it from the store


@dataclass(frozen=True)
class DeleteLimit:
    """The most records one run may remove (archive, delete, or delete from the warehouse when mirroring).

    Exactly one of ``percent`` (of the records the section holds before the run) and ``count`` is set; a run
    that would remove more fails before anything is written. ``planhat-pipelines allow-deletes`` lifts it once.
    """

    percent: float | None = 10.0
    count: int | None = None

    def allows(self, removing: int, holding: int) -> bool:
        """Whether removing ``removing`` of ``holding`` records stays within the limit (the edge is allowed)."""
        if self.count is not None:
            return removing <= self.count
        assert self.percent is not None
        return removing * 100 <= self.percent * holding

    def describe(self) -> str:
        return f"{self.count} records" if self.count is not None else f"{self.percent:g} %"


@dataclass(frozen=True)
class CrmSection:
    """One model mapped to one warehouse table or view."""

    name: str
    model: ModelSpec
    connection: str
    table: str
    direction: Direction
    planhat_key: str
    warehouse_key: str
    fields: tuple[FieldMapping, ...]
    company_match: str = "externalId"
    null_overwrites: bool = False
    owners: tuple[str, ...] = ()
    on_missing: OnMissing = OnMissing.IGNORE
    mirror: bool = False
    delete_limit: DeleteLimit = DeleteLimit()

    def receive_fields(self) -> tuple[FieldMapping, ...]:
        return tuple(f for f in self.fields if f.direction.receives)

    def send_fields(self) -> tuple[FieldMapping, ...]:
        return tuple(f for f in self.fields if f.direction.sends)


# --- the file ----------------------------------------------------------------------------------------
DirectionName = Literal["both", "send", "receive"]
Name = Annotated[str, AfterValidator(check_name)]
ConnectionRef = Annotated[str, AfterValidator(known_connection)]


def _first_key_of_the_model(ancestors: list[Any]) -> str:
    model = MODELS.get(str(ancestors[-2].get("model"))) if len(ancestors) >= 2 else None
    return model.keys[0] if model is not None else "sourceId"


def _some_fields(fields: tuple[FieldFile, ...]) -> tuple[FieldFile, ...]:
    if not fields:
        fail("maps no fields", "add 'fields:' with at least one '- {planhat: ..., warehouse: ...}'")
    return fields


def _delete_limit(value: Any) -> DeleteLimit:
    """``delete_limit:`` as a share (``"10%"``, of the records the section holds) or a count (``500``)."""
    if isinstance(value, DeleteLimit):
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        fail(f"{value!r} is neither a share nor a count", "write a share such as '10%' or a count such as 500")
    if isinstance(value, int):
        if value < 0:
            fail(f"{value} is negative", "write a count of 0 or more, or a share such as '10%'")
        return DeleteLimit(percent=None, count=value)
    text = value.strip()
    try:
        percent = float(text.removesuffix("%"))
    except ValueError:
        percent = -1.0
    if not text.endswith("%") or not 0 <= percent <= 100:
        fail(f"'{value}' is not a share from 0% to 100%", "write a share such as '10%' or a count such as 500")
    return DeleteLimit(percent=percent)


class FieldFile(FileModel):
    planhat: str = example("name")
    warehouse: str = example("column_name")
    direction: DirectionName | None = None  # the section's when absent
    path: str | None = None


class KeysFile(FileModel):
    planhat: str = example(_first_key_of_the_model)
    warehouse: str = example("id")


class CrmSectionFile(FileModel):
    name: Name = example("my_section")
    model: str = example("company")
    connection: ConnectionRef = example(first_connection)
    table: str = example("crm_companies")
    direction: DirectionName = example("both")
    keys: KeysFile = example("{planhat: externalId, warehouse: id}")
    fields: Annotated[tuple[FieldFile, ...], BeforeValidator(as_items), AfterValidator(_some_fields)] = Field(
        (), validate_default=True
    )
    company_match: Literal["externalId", "sourceId", "id"] = "externalId"
    null_overwrites: bool = False
    owners: Annotated[tuple[str, ...], BeforeValidator(check_owners)] = ()
    on_missing: Literal["ignore", "archive", "delete"] = "ignore"
    mirror: bool = False
    delete_limit: Annotated[DeleteLimit, BeforeValidator(_delete_limit)] = DeleteLimit()

    @field_validator("model")
    @classmethod
    def _a_model(cls, value: str, info: ValidationInfo) -> str:
        return model_name(value, tuple(MODELS))

    @model_validator(mode="after")
    def _keys_and_fields_fit_the_model(self) -> CrmSectionFile:
        model, direction = MODELS[self.model], Direction(self.direction)
        if self.keys.planhat not in model.keys:
            fail(
                f"'{self.keys.planhat}' cannot match {model.name} records",
                f"use one of: {', '.join(model.keys)}",
                "keys.planhat",
            )
        if self.keys.planhat == "id" and direction.receives:
            fail(
                "the native id is assigned by Planhat, so a receiving section cannot match on it",
                "use sourceId or externalId, or set the section's direction to 'send'",
                "keys.planhat",
            )
        for i, mapping in enumerate(self.fields):
            _check_field(f"fields[{i}]", mapping, model, direction)
        if self.on_missing != "ignore" and not direction.receives:
            fail(
                f"'{self.on_missing}' applies to records that left the source, and a send section receives none",
                "remove on_missing (to delete warehouse rows whose records left the store, use 'mirror: true')",
                "on_missing",
            )
        if self.mirror and not direction.sends:
            fail(
                "mirror deletes warehouse rows whose records left the store, and a receive section sends nothing",
                "remove mirror, or use 'on_missing: archive' or 'delete' for records that left the warehouse",
                "mirror",
            )
        return self

    def build(self) -> CrmSection:
        direction = Direction(self.direction)
        fields = tuple(
            FieldMapping(f.planhat, f.warehouse, Direction(f.direction or self.direction), f.path) for f in self.fields
        )
        return CrmSection(
            self.name,
            MODELS[self.model],
            self.connection,
            self.table,
            direction,
            self.keys.planhat,
            self.keys.warehouse,
            fields,
            self.company_match,
            self.null_overwrites,
            self.owners,
            OnMissing(self.on_missing),
            self.mirror,
            self.delete_limit,
        )


def _check_field(where: str, mapping: FieldFile, model: ModelSpec, section_dir: Direction) -> None:
    """A field narrows the section's direction and names a field of the model that can flow that way."""
    direction = Direction(mapping.direction or section_dir.value)
    if not section_dir.allows(direction):
        fail(
            f"direction '{direction.value}' is wider than the section's '{section_dir.value}'",
            f"a field can only narrow its section's direction: use '{section_dir.value}' or omit it",
            f"{where}.direction",
        )
    planhat = mapping.planhat
    if planhat == "custom" or planhat.startswith("custom."):
        return
    spec = model.field(planhat)
    if spec is None:
        names = [f.name for f in model.all_fields]
        close = get_close_matches(planhat, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        fail(
            f"unknown {model.name} field '{planhat}'",
            f"{hint}use a standard field ({', '.join(names)}), 'custom' or 'custom.<name>'",
            f"{where}.planhat",
        )
    if spec.derived and direction.receives:
        fail(
            f"{model.name}.{planhat} is derived from licenses and cannot be received",
            "set 'direction: send' for this field, or sync the License model instead",
            f"{where}.planhat",
        )
    if spec.name == "id" and direction.receives:
        fail(
            "the native id is assigned by Planhat and cannot be received",
            "set 'direction: send' for this field",
            f"{where}.planhat",
        )
