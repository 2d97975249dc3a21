"""What every part of the config file shares: the pydantic base of the file's models and its small rules.

The models named ``*File`` describe the YAML file exactly (extra keys forbidden, choices as ``Literal``); each
builds the frozen dataclass the rest of the package uses. A rule pydantic cannot state raises :func:`fail`,
whose problem and fix :mod:`planhat_pipelines.config.errors` turns into the one-line :class:`ConfigError`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from difflib import get_close_matches
from typing import Annotated, Any, ClassVar, NoReturn

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, PydanticUndefined

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DATE_SHAPE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}")
#: The error type of :func:`fail`, recognised by the translation into :class:`ConfigError`.
CONFIG_ERROR = "planhat_config"
#: In a fix given to :func:`fail`, replaced by the example the field declares (a validator cannot see it).
EXAMPLE = "<example>"


@dataclass(frozen=True)
class EnvRef:
    """A secret given by environment-variable name (``{env: NAME}`` in the file)."""

    name: str

    def value(self) -> str:
        """The variable's current value ('' when unset; load_config already checked it is set)."""
        return os.environ.get(self.name, "")


def fail(problem: str, fix: str, key: str = "") -> NoReturn:
    """Refuse the value being validated.

    Args:
        problem: What is wrong.
        fix: What to write instead.
        key: Where, below the location pydantic reports (``end_date``, ``fields[0].planhat``); empty for the
            value itself.
    """
    raise PydanticCustomError(CONFIG_ERROR, "{problem}. Fix: {fix}", {"problem": problem, "fix": fix, "key": key})


def example(value: str | Callable[[list[Any]], str], default: Any = PydanticUndefined) -> Any:
    """A field whose messages show ``value`` as what to write (a callable gets the raw ancestors, root first)."""
    return Field(default, json_schema_extra={"example": value})  # type: ignore[dict-item]


class FileModel(BaseModel):
    """A mapping of the file: unknown keys refused, no type coercion, ``key:`` (null) the same as absent."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True)
    #: Keys read only when present: a null one is refused as "not a mapping", and they are left out of the
    #: "allowed keys" hint when absent (as the hand-written parser did).
    read_if_present: ClassVar[frozenset[str]] = frozenset()
    #: Whether an unknown key is reported before the model's cross-field checks (else after them).
    unknown_keys_first: ClassVar[bool] = False

    @classmethod
    def file_keys(cls) -> dict[str, FieldInfo]:
        """The keys as written in the file (a field's alias where a name would shadow pydantic's own)."""
        return {(f.alias or name): f for name, f in cls.model_fields.items()}

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            fields = cls.file_keys()
            return {k: v for k, v in data.items() if v is not None or k not in fields or k in cls.read_if_present}
        return data

    @classmethod
    def conditionally_required(cls, raw: Mapping[str, Any]) -> tuple[str, ...]:
        """Keys required by the values of others (checked by a validator); a misspelling of one is named as such."""
        return ()


def as_items(value: Any, info: ValidationInfo) -> tuple[Any, ...]:
    """A list key: absent, null or empty is no items; anything else but a list is refused."""
    items = value or []
    if not isinstance(items, list):
        fail("must be a list", f"write '{info.field_name}:' followed by '- name: ...' items")
    return tuple(items)


_OWNER = re.compile(r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s.]+(\.[^@\s.]+)+)$")


def check_owners(value: Any) -> tuple[str, ...]:
    """A section's owners, as Dagster shows them on its asset: a list of emails or ``team:<name>``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        fail("must be a list", "write owners: [jane@acme.com, team:cs-ops]")
    for owner in value:
        if not isinstance(owner, str) or not _OWNER.match(owner):
            fail(f"'{owner}' is neither an email nor 'team:<name>'", "write owners: [jane@acme.com, team:cs-ops]")
    return tuple(value)


def check_name(value: str) -> str:
    """A section, key-result or objective name: lower-case snake case."""
    if not NAME.match(value):
        fail(f"'{value}' is not a valid name", "use lower-case letters, digits and '_', starting with a letter")
    return value


def env_ref(value: Any, info: ValidationInfo) -> EnvRef:
    """``{env: NAME}`` whose variable is set now (its value is read later, when it is used)."""
    key = info.field_name
    if not (isinstance(value, Mapping) and set(value) == {"env"} and isinstance(value["env"], str)):
        fail(
            "secrets are given only by environment variable",
            f"write '{key}: {{env: MY_ENV_VAR}}' and export MY_ENV_VAR",
        )
    ref = EnvRef(value["env"])
    if ref.name not in os.environ:
        fail(
            f"environment variable {ref.name} is not set",
            f"export {ref.name}=... before starting Dagster, or fix the variable name",
        )
    return ref


def calendar_date(value: Any, info: ValidationInfo) -> date:
    """A date written as a YAML date, a date-time (its day is kept) or ISO text naming a real day."""
    key = info.field_name
    if isinstance(value, datetime):
        # YAML reads '2026-01-31 10:00' as a date-time; a date field keeps its day (and a
        # date-time compared with a date would raise TypeError).
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        fail(f"must be date/str, got {value!r}", f"write '{key}: 2026-01-31'")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        # A date-shaped value that is no day of the calendar (2026-02-30): say why.
        reason = f" ({exc})" if _DATE_SHAPE.match(value) else ""
        fail(f"'{value}' is not a date{reason}", f"write '{key}: 2026-01-31'")


def positive_int(value: int | None, info: ValidationInfo) -> int | None:
    """Refuse zero and negative counts, sizes and intervals."""
    if value is not None and value <= 0:
        fail(f"must be a positive integer, got {value}", f"write '{info.field_name}: {EXAMPLE}'")
    return value


#: A secret field: ``{env: NAME}`` whose variable is set (see :func:`env_ref`), or nothing.
Secret = Annotated[EnvRef | None, BeforeValidator(env_ref)]
#: A count, size or interval that must be above zero (see :func:`positive_int`).
Positive = Annotated[int, AfterValidator(positive_int)]


def finite(value: float | None, info: ValidationInfo) -> float | None:
    """Refuse YAML's .nan and .inf, which mean nothing as a target or a limit."""
    if value is not None and not math.isfinite(value):
        fail(f"must be a finite number, got {value}", f"write '{info.field_name}: {EXAMPLE}'")
    return value


def positive_number(value: float, info: ValidationInfo) -> float:
    """Refuse zero, negative and infinite durations."""
    if not (math.isfinite(value) and value > 0):
        shown = int(value) if math.isfinite(value) and value.is_integer() else value
        fail(f"must be a positive number, got {shown}", f"write '{info.field_name}: {EXAMPLE}'")
    return value


def known_connection(value: str, info: ValidationInfo) -> str:
    """A connection name declared under ``connections:`` (the loader passes their names as context)."""
    declared: tuple[str, ...] = (info.context or {}).get("connections", ())
    if value not in declared:
        fail(
            f"unknown connection '{value}'",
            f"use one of the connections declared under 'connections:': {', '.join(declared)}",
        )
    return value


def first_connection(ancestors: list[Any]) -> str:
    """The example of a ``connection:`` key: the first connection the file declares."""
    declared = ancestors[0].get("connections") if ancestors and isinstance(ancestors[0], Mapping) else None
    return next(iter(declared), "embedded") if isinstance(declared, Mapping) else "embedded"


def model_name(value: str, choices: tuple[str, ...]) -> str:
    """A model slug among ``choices``, with a did-you-mean for a near miss."""
    if value not in choices:
        close = get_close_matches(value, choices, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        fail(f"unknown model '{value}'", f"{hint}use one of: {', '.join(choices)}")
    return value
