"""Config documents for tests, built one way: plain dicts as they stand in the YAML file, read by the real loader.

A test names only what it is about; the rest is a small, valid default. ``crm_section`` and ``usage_section``
return one section as a dict, ``objective`` one entry of ``okrs`` (holding ``key_result`` dicts), ``config_doc``
the whole document, ``write_config`` writes it and loads it with ``load_config`` (the CLI's path), ``parse``
parses a document in memory with ``parse_config``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from planhat_pipelines.config import Config, load_config, parse_config


class _Omit:
    """The type of ``OMIT``: a key whose override is ``OMIT`` is left out of the section."""

    def __repr__(self) -> str:
        return "OMIT"


#: Pass as an override to leave a default key out of a section (``usage_section(record_match=OMIT)``).
OMIT: Any = _Omit()

_CRM: dict[str, Any] = {
    "model": "company",
    "connection": "wh",
    "direction": "receive",
    "fields": [{"planhat": "name", "warehouse": "name"}],
}
_USAGE: dict[str, Any] = {
    "kind": "activities",
    "model": "enduser",
    "connection": "wh",
    "key": "event_id",
    "record_match": "email",
    "fields": {"record": "user_email", "action": "action", "date": "occurred_at"},
    "cadence": {"every_minutes": 5},
}
_KEY_RESULT: dict[str, Any] = {
    "connection": "wh",
    "query": "SELECT count(*) FROM leads",
    "start_value": 100,
    "target": 500,
    "start_date": "2026-01-01",
    "end_date": "2026-12-31",
    "direction": "increase",
}


def _merged(defaults: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    # Deep copy: a test that edits its section must never edit the next test's defaults.
    merged = copy.deepcopy(dict(defaults))
    merged.update(over)
    return {k: v for k, v in merged.items() if v is not OMIT}


def duckdb_connection(path: str | Path, **extra: Any) -> dict[str, Any]:
    """A DuckDB connection entry (``type``, ``path``, then ``extra`` such as ``create=True``)."""
    return {"type": "duckdb", "path": str(path), **extra}


def crm_section(
    name: str = "companies", table: str = "crm_companies", *, warehouse_key: str = "id", **over: Any
) -> dict[str, Any]:
    """A receive section of Companies keyed ``externalId`` = ``warehouse_key``, mapping ``name``; ``over`` wins."""
    keys = {"planhat": "externalId", "warehouse": warehouse_key}
    return _merged({"name": name, **_CRM, "table": table, "keys": keys}, over)


def usage_section(name: str = "events", table: str = "events", **over: Any) -> dict[str, Any]:
    """An activities section on End Users matched by email, every five minutes; ``over`` wins."""
    return _merged({"name": name, **_USAGE, "table": table}, over)


def key_result(name: str = "leads", **over: Any) -> dict[str, Any]:
    """A key result counting ``leads``, increasing from 100 to 500 over 2026; ``over`` wins."""
    return _merged({"name": name, **_KEY_RESULT}, over)


def objective(*key_results: Mapping[str, Any], name: str = "grow", **over: Any) -> dict[str, Any]:
    """An objective holding ``key_results`` (one ``key_result()`` if none); ``over`` adds keys such as ``title``."""
    items = [dict(kr) for kr in key_results] if key_results else [key_result()]
    return {"name": name, **over, "key_results": items}


def config_doc(
    tmp_path: Path,
    *,
    connections: Mapping[str, Mapping[str, Any]] | None = None,
    store: str | Path | None = None,
    crm: Sequence[Mapping[str, Any]] | None = None,
    usage: Sequence[Mapping[str, Any]] | None = None,
    okrs: Sequence[Mapping[str, Any]] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """A whole document: the store in ``tmp_path`` and one DuckDB connection ``wh`` unless given.

    A list left ``None`` is left out of the document (not written as an empty list); ``top`` adds other
    top-level keys such as ``alerts``.
    """
    doc: dict[str, Any] = {
        "store": {"catalog": str(tmp_path / "store.sqlite") if store is None else str(store)},
        "connections": (
            {"wh": duckdb_connection(tmp_path / "wh.duckdb")}
            if connections is None
            else {k: dict(v) for k, v in connections.items()}
        ),
    }
    for key, items in (("crm", crm), ("usage", usage), ("okrs", okrs)):
        if items is not None:
            doc[key] = [dict(item) for item in items]
    doc.update(top)
    return doc


def write_config_file(tmp_path: Path, *, name: str = "config.yaml", **doc: Any) -> Path:
    """Write ``config_doc(tmp_path, **doc)`` to ``tmp_path / name`` and return the path."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config_doc(tmp_path, **doc)))
    return path


def write_config(tmp_path: Path, *, name: str = "config.yaml", **doc: Any) -> Config:
    """Write ``config_doc(tmp_path, **doc)`` to ``tmp_path / name`` and load it with the real loader."""
    return load_config(write_config_file(tmp_path, name=name, **doc))


def parse(raw: Mapping[str, Any], tmp_path: Path, name: str = "config.yaml") -> Config:
    """Parse a document in memory as if it were ``tmp_path / name`` (relative paths resolve there)."""
    return parse_config(raw, tmp_path / name)
