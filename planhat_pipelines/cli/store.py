"""Store commands: ``migrate-store`` (an earlier release's single-file store into the DuckLake), ``history``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from planhat_pipelines.config import load_config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.history import format_history
from planhat_pipelines.store.legacy import migrate_store


def _migrate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    copies = migrate_store(Path(args.source).resolve(), config.store)
    print(f"migrated {args.source} into {config.store.describe()}:")
    for copy in copies:
        print(f"  {copy.table:<20} {copy.source_rows:>12} rows -> {copy.store_rows:>12}")
    return 0


def _history(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with ModelStore(config.store, read_only=True) as store:
        print(format_history(store.record_history(args.model, args.key)))
    return 0


def register(sub: Any) -> None:
    """Add the store commands to the CLI's subparsers."""
    migrate = sub.add_parser(
        "migrate-store",
        help="copy every row, cursor and reject of an earlier release's single-file store into the config's "
        "store (which must be empty); counts are checked before the one commit",
    )
    migrate.add_argument(
        "source",
        help="the old store file (store.path of the old config), or the folder DuckDB 2.0's EXPORT DATABASE "
        "wrote of it (a file written by DuckDB 2.0: see README, 'Moving a store from an earlier release')",
    )
    migrate.set_defaults(handler=_migrate)
    history = sub.add_parser(
        "history",
        help="how one record changed over the kept snapshots: which sync (section, run) changed which fields "
        "from what to what (read-only)",
    )
    history.add_argument("model", help="the model's table name: company, enduser, license, ...")
    history.add_argument("key", help="the record's id, externalId, sourceId (or an End User's email)")
    history.set_defaults(handler=_history)
