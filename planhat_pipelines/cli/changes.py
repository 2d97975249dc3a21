"""``changes``: the per-record change log, what each sync did to a record field by field (read-only).

The rows come from ``store/change_log.py`` (written by the sync engines, kept ``store.change_log_days``).
Filters combine: ``--section`` and ``--key`` give one record's story in one section; ``--run`` what one
sync-log run (``planhat-pipelines logs``) changed. ``--json`` prints one JSON object per line, for ``jq``.
"""

from __future__ import annotations

import argparse
import json
from difflib import get_close_matches
from typing import Any

from planhat_pipelines.config import Config, load_config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.change_log import Change


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``changes`` to the CLI's subcommands."""
    changes = sub.add_parser(
        "changes",
        help="the change log: each record a sync inserted, updated, archived, deleted or sent, with the fields "
        "it changed old → new, newest first (read-only)",
    )
    changes.add_argument("--section", help="only this CRM section")
    changes.add_argument("--key", help="only the record with this key (as the section matches it)")
    changes.add_argument("--record-id", help="only the record with this native id in the store")
    changes.add_argument("--run", dest="run_id", help="only what this sync-log run changed (see `logs`)")
    changes.add_argument("--limit", type=_positive, default=50, help="newest N changes (default 50)")
    changes.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    changes.set_defaults(handler=_changes)


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a positive whole number (e.g. --limit 100)")
    return value


def check_section(config: Config, section: str) -> None:
    """Refuse a section the config does not have, naming the ones it does (and the closest)."""
    names = [s.name for s in config.crm]
    if section in names:
        return
    close = get_close_matches(section, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    listed = ", ".join(names) if names else "none: the config has no crm: sections"
    raise PlanhatPipelinesError(
        f"changes --section {section}: {config.path} has no CRM section '{section}'. Fix: {hint}"
        f"the CRM sections are: {listed}"
    )


def as_json(change: Change) -> dict[str, Any]:
    """One change as a JSON-ready object (``fields`` as ``{"name": {"old": ..., "new": ...}}``)."""
    return {
        "changed_at": change.changed_at.isoformat(),
        "section": change.section,
        "run_id": change.run_id,
        "model": change.model,
        "key": change.key,
        "record_id": change.record_id,
        "op": change.op,
        "fields": {name: {"old": old, "new": new} for name, (old, new) in change.fields.items()},
    }


def _changes(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.section is not None:
        check_section(config, args.section)
    with ModelStore(config.store, read_only=True) as store:
        rows = store.changes(
            section=args.section, key=args.key, record_id=args.record_id, run_id=args.run_id, limit=args.limit
        )
    if args.json:
        for change in rows:
            print(json.dumps(as_json(change), ensure_ascii=False, default=str))
        return 0
    if not rows:
        print(f"no changes in the change log match (it keeps {config.store.change_log_days} days)")
    for change in rows:
        print(change.describe())
    return 0
