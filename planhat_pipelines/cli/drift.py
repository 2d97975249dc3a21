"""``planhat-pipelines drift accept --section S``: take a source table's current columns as the section's baseline.

A run refuses a section whose mapped column was removed or retyped since its last successful run (see
:mod:`planhat_pipelines.sync.drift`). When the new shape is intended (a column widened from INT to BIGINT, a
text id that became numeric and still maps the same), this records the table's columns as they are now, so the
next run compares with them and goes ahead.
"""

from __future__ import annotations

import argparse

from planhat_pipelines.config import Config, CrmSection, UsageSection, load_config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.drift import compare, mapped_columns
from planhat_pipelines.warehouses.factory import open_warehouse


def _section(config: Config, name: str) -> CrmSection | UsageSection:
    sections: dict[str, CrmSection | UsageSection] = {s.name: s for s in config.crm}
    sections |= {s.name: s for s in config.usage}
    if name not in sections:
        raise PlanhatPipelinesError(
            f"{config.path}: no CRM or usage section '{name}'",
            fix=f"name one of: {', '.join(sections) or 'none in this config'}",
        )
    return sections[name]


def _accept(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    section = _section(config, args.section)
    with open_warehouse(config.connection(section.connection)) as warehouse:
        info = warehouse.describe(section.table)
    with ModelStore(config.store) as store:
        drift = compare(store.last_source_columns(section.name), info.columns, mapped_columns(section))
        store.record_source_columns(section.name, info.columns, None)
    changes = [f"mapped column {c.name} removed" for c in drift.removed if drift.is_mapped(c.name)]
    changes += [
        f"mapped column {r.new.name} {r.old.type} → {r.new.type}" for r in drift.retyped if drift.is_mapped(r.new.name)
    ]
    changes += drift.notes()
    print(f"section '{section.name}': the {len(info.columns)} columns of {section.table} are its baseline now")
    for line in changes:
        print(f"  accepted: {line}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``drift accept`` to the command line."""
    drift = sub.add_parser("drift", help="schema drift: a section's source columns against its last successful run")
    actions = drift.add_subparsers(dest="drift_command", required=True)
    accept = actions.add_parser(
        "accept",
        help="take the source table's current columns as the section's baseline, so a run refused for a removed "
        "or retyped mapped column goes ahead",
    )
    accept.add_argument("--section", required=True, help="the CRM or usage section")
    accept.set_defaults(handler=_accept)
