"""Reading the config file: PyYAML's safe loader, refusing what plain YAML would silently lose."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from planhat_pipelines.errors import ConfigError


class _DuplicateKeyError(Exception):
    """A mapping in the YAML file declares the same key twice."""

    def __init__(self, where: str, key: str, first_line: int, second_line: int) -> None:
        super().__init__(where)
        self.where = where
        self.key = key
        self.lines = (first_line, second_line)


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter where plain YAML would silently lose meaning.

    - A key declared twice in one mapping raises :class:`_DuplicateKeyError` with its dotted
      location (YAML itself keeps the last value, so the first declaration would be ignored).
      ``<<`` merge keys are not duplicates: keys written beside a merge override it, as YAML means.
    - A date-shaped scalar that is no calendar day (``2026-02-30``) stays text, so the config field
      that reads it reports it with its location (PyYAML would raise a bare ``ValueError``).
    """

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _refuse_duplicate_keys(node, "", set())
        return node

    def construct_lenient_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _StrictLoader.construct_lenient_timestamp)


def _refuse_duplicate_keys(node: yaml.Node, where: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias of a node already checked (and anchors may be recursive)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            at = f"{where}.{key}" if where else key
            line = key_node.start_mark.line + 1
            ident = (key_node.tag, key)
            if isinstance(key_node, yaml.ScalarNode) and ident in lines:
                raise _DuplicateKeyError(at, key, lines[ident], line)
            lines[ident] = line
            _refuse_duplicate_keys(value_node, at, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{where}[{i}]", seen)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path`` (None when it holds none), read with :class:`_StrictLoader`.

    Raises:
        ConfigError: The file cannot be read, is not valid YAML, or declares a key twice.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "file", f"cannot be read ({exc})", "point at a readable UTF-8 YAML file") from exc
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: constructs plain data only
    except _DuplicateKeyError as exc:
        first, second = exc.lines
        raise ConfigError(
            str(path),
            exc.where,
            f"appears twice (lines {first} and {second}); YAML would silently keep only the last one",
            f"keep one '{exc.key}:' and delete or rename the other",
        ) from None
    except yaml.YAMLError as exc:
        problem = f"is not valid YAML ({_yaml_problem(exc)})"
        raise ConfigError(str(path), "file", problem, "fix the YAML syntax at that line") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line error as one line: what, and where (line and column)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        context = f"{exc.context}: " if exc.context else ""
        return f"{context}{exc.problem}{where}"
    return " ".join(str(exc).split())
