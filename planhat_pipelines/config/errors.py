"""pydantic's first validation error as today's one-line ``file: section.field: problem. Fix: ...``.

pydantic reports every error with a location (``('crm', 0, 'fields', 0, 'planhat')``, with the tag of a
discriminated union inside it); the config reports the first one, in the words it has always used: the
same problem and fix, a did-you-mean for unknown keys and models, and a misspelled required key named as
the misspelling rather than as missing.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from planhat_pipelines.config.base import CONFIG_ERROR, EXAMPLE, FileModel
from planhat_pipelines.errors import ConfigError

_TYPE_NAMES = {"string_type": "str", "int_type": "int", "float_type": "float", "bool_type": "bool"}
_MAPPING_ERRORS = {"model_type", "model_attributes_type", "dict_type", "dataclass_type"}


@dataclass
class _Place:
    """Where an error is: the path as the file spells it, and the model and raw values along it."""

    parts: list[str | int] = dataclasses.field(default_factory=list)
    ancestors: list[Any] = dataclasses.field(default_factory=list)  # the raw values holding each part, root first
    owner: type[FileModel] | None = None  # the model whose key the last part is
    field: FieldInfo | None = None  # that key's field (None for an unknown key)
    annotation: Any = None  # the type expected at the place
    is_key: bool = False  # the last part is a key of its model (not a list index or a mapping's entry)
    owners: list[type[FileModel] | None] = dataclasses.field(default_factory=list)  # the model each part is a key of

    @property
    def where(self) -> str:
        text = ""
        for part in self.parts:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        return text

    def below(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where and key else (key or self.where)

    @property
    def key(self) -> str:
        return str(self.parts[-1]) if self.parts else ""

    @property
    def parent(self) -> Mapping[str, Any]:
        raw = self.ancestors[-1] if self.ancestors else None
        return raw if isinstance(raw, Mapping) else {}

    def example(self) -> str:
        extra = self.field.json_schema_extra if self.field is not None else None
        value: Any = extra.get("example") if isinstance(extra, dict) else None
        if callable(value):
            return str(value(self.ancestors))
        return str(value) if value else "..."


def _unwrap(tp: Any) -> Any:
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        members = _members(tp)
        if members is not None and type(None) in get_args(tp) and len(members) == 1:
            tp = members[0]
            continue
        return tp


def _members(tp: Any) -> tuple[Any, ...] | None:
    """The non-None members of a union, or None when ``tp`` is no union."""
    if get_origin(tp) in (Union, types.UnionType):
        return tuple(a for a in get_args(tp) if a is not type(None))
    return None


def _tag_member(union: tuple[Any, ...], tag: str) -> Any:
    for member in union:
        for f in member.model_fields.values():
            if get_origin(f.annotation) is Literal and tag in get_args(f.annotation):
                return member
    return None


def _tags(union: tuple[Any, ...], key: str) -> list[str]:
    return [str(get_args(m.model_fields[key].annotation)[0]) for m in union]


def _locate(root: type[FileModel], data: Any, loc: tuple[str | int, ...]) -> _Place:
    place = _Place(annotation=root)
    raw = data
    for step in loc:
        tp = _unwrap(place.annotation)
        if step == "[key]":  # the error is about the mapping's key itself
            continue
        members = _members(tp)
        if members is not None:  # a discriminated union: this step is the tag pydantic chose
            place.annotation = _tag_member(members, str(step))
            continue
        place.ancestors.append(raw)
        place.parts.append(step)
        place.owners.append(tp if isinstance(tp, type) and issubclass(tp, FileModel) else None)
        if isinstance(raw, Mapping):
            raw = raw.get(step)
        elif isinstance(raw, list) and isinstance(step, int) and step < len(raw):
            raw = raw[step]
        else:
            raw = None
        place.is_key = False
        if isinstance(tp, type) and issubclass(tp, FileModel):
            place.owner, place.field, place.is_key = tp, tp.file_keys().get(str(step)), True
            place.annotation = place.field.annotation if place.field is not None else None
        elif get_origin(tp) in (tuple, list):
            place.annotation = get_args(tp)[0]
        elif get_origin(tp) is dict:
            place.annotation = get_args(tp)[1]
        else:
            place.annotation = None
    return place


def _known_keys(root: type[FileModel]) -> frozenset[str]:
    """Every key of every model of the file: a key valid somewhere is never "a misspelling" elsewhere."""
    keys: set[str] = set()
    seen: set[type] = set()
    todo: list[Any] = [root]
    while todo:
        tp = _unwrap(todo.pop())
        members = _members(tp)
        if members is not None:
            todo.extend(members)
        elif isinstance(tp, type) and issubclass(tp, FileModel) and tp not in seen:
            seen.add(tp)
            keys.update(tp.file_keys())
            todo.extend(f.annotation for f in tp.model_fields.values())
        else:
            todo.extend(get_args(tp))
    return frozenset(keys)


def _misspelling_of(required: str, place: _Place, known: frozenset[str]) -> str | None:
    """The unknown key written next to a missing required one that looks like its misspelling, if any."""
    fields = place.owner.file_keys() if place.owner is not None else {}
    strangers = [str(k) for k in place.parent if str(k) not in fields and str(k) not in known]
    typo = get_close_matches(required, strangers, n=1)
    return typo[0] if typo else None


def _renamed(parent: _Place, typo: str, required: str) -> tuple[str, str, str]:
    return parent.below(typo), "unknown key", f"did you mean '{required}'? rename it: '{required}' is required here"


def _missing(place: _Place, known: frozenset[str]) -> tuple[str, str, str]:
    key, parent = place.key, _Place(place.parts[:-1], place.ancestors[:-1])
    typo = _misspelling_of(key, place, known)
    if typo is not None:
        return _renamed(parent, typo, key)
    return place.where, "is missing", f"add '{key}: {place.example()}'"


def _unknown(place: _Place, known: frozenset[str]) -> tuple[str, str, str]:
    parent = _Place(place.parts[:-1], place.ancestors[:-1])
    if place.owner is not None:
        for required in place.owner.conditionally_required(place.parent):
            typo = _misspelling_of(required, place, known) if required not in place.parent else None
            if typo is not None:
                return _renamed(parent, typo, required)
    allowed = sorted(
        k
        for k in (place.owner.file_keys() if place.owner is not None else {})
        if place.owner is None or k not in place.owner.read_if_present or k in place.parent
    )
    close = get_close_matches(place.key, allowed, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
    return place.where, "unknown key", f"remove it; {hint}"


def _union_tag(error: ErrorDetails, place: _Place, known: frozenset[str]) -> tuple[str, str, str]:
    key = str(error.get("ctx", {}).get("discriminator", "")).strip("'")
    members = _members(_unwrap(place.annotation)) or ()
    choices = _tags(members, key)
    at = _Place([*place.parts, key], [*place.ancestors, error["input"]], members[0] if members else None)
    at.field = members[0].model_fields.get(key) if members else None
    if error["type"] == "union_tag_not_found" or error["input"].get(key) is None:
        typo = _misspelling_of(key, at, known)
        if typo is not None:
            return _renamed(place, typo, key)
        return at.where, "is missing", f"add '{key}: {choices[0]}'"
    return _choice(at, error["input"].get(key), choices)


def _choice(place: _Place, value: Any, choices: list[str]) -> tuple[str, str, str]:
    if not isinstance(value, str):
        return place.where, f"must be str, got {value!r}", f"write '{place.key}: {choices[0]}'"
    return place.where, f"'{value}' is not allowed", f"use one of: {', '.join(choices)}"


def _translate(error: ErrorDetails, place: _Place, known: frozenset[str]) -> tuple[str, str, str]:
    kind, value = error["type"], error["input"]
    if kind == CONFIG_ERROR:
        ctx = error.get("ctx", {})
        return (
            place.below(str(ctx.get("key", ""))),
            str(ctx["problem"]),
            str(ctx["fix"]).replace(EXAMPLE, place.example()),
        )
    if kind == "missing":
        return _missing(place, known)
    if kind == "extra_forbidden":
        return _unknown(place, known)
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        return _union_tag(error, place, known)
    if kind == "literal_error":
        return _choice(place, value, [str(c) for c in get_args(_unwrap(place.annotation))])
    if kind in _TYPE_NAMES:
        return place.where, f"must be {_TYPE_NAMES[kind]}, got {value!r}", f"write '{place.key}: {place.example()}'"
    if kind in _MAPPING_ERRORS and place.is_key and value is not None:
        return place.where, f"must be dict, got {value!r}", f"write '{place.key}: {place.example()}'"
    if kind in _MAPPING_ERRORS:
        return place.where, f"must be a mapping, got {type(value).__name__}", "write 'key: value' lines"
    # Not expected from the models of this package; still one line naming the place.
    return place.where, error["msg"], "see docs/config.md for what this key takes"


def _path_of(error: ErrorDetails, place: _Place) -> list[str | int]:
    """The error's path as parts, with the key a validator names below its model split into parts."""
    key = str(error.get("ctx", {}).get("key", "")) if error["type"] == CONFIG_ERROR else ""
    below = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", key)]
    return [*place.parts, *below]


def _read_before(later: list[str | int], earlier: list[str | int], owners: list[type[FileModel] | None]) -> bool:
    """Whether the hand-written parser read path ``earlier`` before finishing the mapping holding ``later``.

    It read a mapping's keys in the order its model declares them, and checked a mapping's unknown keys
    only once everything inside it was read and checked.
    """
    for i, (a, b) in enumerate(zip(later, earlier, strict=False)):
        if a == b:
            continue
        if i == len(later) - 1:  # ``earlier`` is inside the mapping holding the unknown key
            return True
        if isinstance(a, int) and isinstance(b, int):
            return b < a
        owner = owners[i] if i < len(owners) else None
        order = list(owner.file_keys()) if owner is not None else []
        return b in order and (a not in order or order.index(b) < order.index(a))
    return len(earlier) >= len(later) - 1


def config_error(
    exc: ValidationError,
    root: type[FileModel],
    data: Any,
    path: Path,
    context: dict[str, Any],
) -> ConfigError:
    """The :class:`ConfigError` for the file's first mistake, in the order it was always reported.

    pydantic runs a model's cross-field validators only once its keys are valid, so an unknown key hides
    them; the file's parser reported unknown keys last. Dropping the unknown keys of that mapping and
    validating again finds what was reported before it (costs a second validation, on the error path only).
    """
    first = exc.errors(include_url=False)[0]
    known = _known_keys(root)
    place = _locate(root, data, first["loc"])
    where, problem, fix = _translate(first, place, known)
    owner_first = place.owner is not None and place.owner.unknown_keys_first
    if first["type"] == "extra_forbidden" and fix.startswith("remove it") and not owner_first:
        inner = _without_unknown_keys(exc, first, root, data, context)
        if inner is not None:
            error, stripped = inner
            second = _locate(root, stripped, error["loc"])
            if _read_before(place.parts, _path_of(error, second), place.owners):
                return config_error_of(error, second, stripped, root, path, context)
    return ConfigError(str(path), where, problem, fix)


def config_error_of(
    error: ErrorDetails, place: _Place, data: Any, root: type[FileModel], path: Path, context: dict[str, Any]
) -> ConfigError:
    where, problem, fix = _translate(error, place, _known_keys(root))
    return ConfigError(str(path), where, problem, fix)


def _without_unknown_keys(
    exc: ValidationError, first: ErrorDetails, root: type[FileModel], data: Any, context: dict[str, Any]
) -> tuple[ErrorDetails, Any] | None:
    """The first error of ``data`` without the unknown keys beside ``first``'s, and that document."""
    parent = first["loc"][:-1]
    stripped = copy.deepcopy(data)
    holder = _locate(root, stripped, first["loc"]).ancestors[-1]
    for error in exc.errors(include_url=False):
        if error["type"] == "extra_forbidden" and error["loc"][:-1] == parent and isinstance(holder, dict):
            holder.pop(error["loc"][-1], None)
    try:
        root.model_validate(stripped, context=context)
    except ValidationError as again:
        return again.errors(include_url=False)[0], stripped
    return None
