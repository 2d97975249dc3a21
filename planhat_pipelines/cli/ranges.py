"""``ranges`` and ``register-ranges``: a usage section's key-range partitions, and the backfill that loads them."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from planhat_pipelines.cli.instance import dagster_instance
from planhat_pipelines.config import Config, UsageSection, load_config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ranges`` and ``register-ranges`` to the CLI's subcommands."""
    ranges = sub.add_parser("ranges", help="a usage section's registered key-range partitions (for backfills)")
    ranges.add_argument("section", help="the usage section")
    ranges.add_argument("--from", dest="from_key", type=int, help="only ranges from the one holding this key")
    ranges.add_argument("--command", action="store_true", help="print the dagster backfill command instead")
    ranges.add_argument(
        "--delete-invalid",
        action="store_true",
        help="delete partition keys that are not key ranges (e.g. a name typed into the UI's backfill dialog)",
    )
    ranges.set_defaults(handler=_ranges)
    pending = sub.add_parser(
        "register-ranges",
        help="register a usage section's pending key ranges in the Dagster instance (what its sensor does) "
        "and print the command that loads them",
    )
    pending.add_argument("section", help="the usage section")
    pending.set_defaults(handler=_register_ranges)


def _dagster_exe() -> str:
    """The dagster command beside this Python (a venv's), so a printed command works without activating it."""
    sibling = Path(sys.executable).parent / "dagster"
    return str(sibling) if sibling.exists() else "dagster"


def backfill_command(section: UsageSection, first: str, last: str, config: Config) -> str:
    """A shell line that materializes the ranges ``first`` to ``last`` in one run, runnable as printed.

    It names the instance and the config explicitly: the range partitions live in that instance, and a
    shell without ``DAGSTER_HOME`` would give Dagster an empty temporary one that has none of them.
    """
    home = os.environ.get("DAGSTER_HOME", "")
    selector = f"--partition {first}" if first == last else f"--partition-range {first}...{last}"
    return (
        f"DAGSTER_HOME={shlex.quote(home)} PLANHAT_PIPELINES_CONFIG={shlex.quote(str(config.path))} "
        f"{shlex.quote(_dagster_exe())} asset materialize -m planhat_pipelines.definitions "
        f"--select usage/{section.name} {selector}"
    )


def runs_in_instance_order(instance_keys: Sequence[str], wanted: set[str]) -> list[tuple[str, str]]:
    """``wanted`` keys as (first, last) spans of consecutive positions in the instance's partition order.

    ``--partition-range A...B`` selects every partition between A and B in the order they were added to
    the instance, not in key order. Ranges added out of key order, or a key that is not a range (added in the
    UI) between two ranges, would fall inside a key-sorted first...last; each span returned here holds
    only wanted keys.
    """
    spans: list[tuple[str, str]] = []
    start: str | None = None
    previous: str | None = None
    for key in instance_keys:
        if key in wanted:
            start = key if start is None else start
            previous = key
        elif start is not None and previous is not None:
            spans.append((start, previous))
            start = None
    if start is not None and previous is not None:
        spans.append((start, previous))
    return spans


def _print_backfill(section: UsageSection, instance_keys: Sequence[str], wanted: set[str], config: Config) -> None:
    spans = runs_in_instance_order(instance_keys, wanted)
    if len(spans) > 1:
        print(
            f"# {len(spans)} commands: the ranges are not consecutive in the order the instance holds them "
            "(`--partition-range` follows that order)"
        )
    for first, last in spans:
        print(backfill_command(section, first, last, config))


def _self_command(args: argparse.Namespace, *words: str) -> str:
    """This CLI invoked with ``words`` (and the same ``--config``), for hints."""
    config = f" --config {shlex.quote(args.config)}" if args.config else ""
    return " ".join(["planhat-pipelines" + config, *words])


def _usage_section(config: Config, name: str) -> UsageSection:
    sections = {s.name: s for s in config.usage}
    if name not in sections:
        raise PlanhatPipelinesError(
            f"{config.path}: usage: unknown usage section '{name}'. "
            f"Fix: use one of: {', '.join(sections) or '(none declared)'}"
        )
    return sections[name]


def _ranges(args: argparse.Namespace) -> int:
    from planhat_pipelines.defs.usage import usage_partitions
    from planhat_pipelines.sync.ranges import KeyRangeSpan, range_of

    config = load_config(args.config)
    section = _usage_section(config, args.section)
    name = usage_partitions(section).name or ""
    with dagster_instance() as instance:
        keys = list(instance.get_dynamic_partitions(name))  # the instance's order: what a range selects by
        spans: dict[str, KeyRangeSpan] = {}
        invalid: list[str] = []
        for key in keys:
            try:
                spans[key] = KeyRangeSpan.parse(key)
            except ValueError:
                # Anyone can add a partition by name in the UI's backfill dialog; it is no key range.
                invalid.append(key)
        if args.delete_invalid:
            for key in invalid:
                instance.delete_dynamic_partition(name, key)
            listed = "".join(f"\n  {k!r}" for k in invalid)
            print(f"deleted {len(invalid)} partition key(s) of {name} that are not key ranges{listed}")
            return 0
    register = _self_command(args, "register-ranges", section.name)
    if args.from_key is not None:
        first = range_of(args.from_key, section.partition_span).partition_key
        spans = {k: s for k, s in spans.items() if k >= first}
    if not spans and not invalid:
        where = f" from key {args.from_key}" if args.from_key is not None else ""
        print(f"no registered ranges{where} for usage/{section.name}. Fix: `{register}` registers the pending ones")
        return 1
    delete = _self_command(args, "ranges", section.name, "--delete-invalid")
    invalid_note = (
        f"{len(invalid)} partition key(s) of {name} are invalid (not key ranges, so never loaded): "
        f"{', '.join(repr(k) for k in invalid)}. Fix: delete them with `{delete}`"
    )
    if args.command:
        if not spans:
            print(f"no registered ranges to backfill. Fix: `{register}` registers the pending ones", file=sys.stderr)
            return 1
        _print_backfill(section, keys, set(spans), config)
        if invalid:
            print(invalid_note, file=sys.stderr)
        return 0
    for key in sorted(spans):
        print(f"{key}  keys {spans[key].start}..{spans[key].end}")
    if invalid:
        print(invalid_note)
    return 0


def _register_ranges(args: argparse.Namespace) -> int:
    from planhat_pipelines.defs.usage import usage_partitions
    from planhat_pipelines.sync.usage import pending_ranges
    from planhat_pipelines.warehouses.factory import open_warehouse

    config = load_config(args.config)
    section = _usage_section(config, args.section)
    # A first load has no store yet: create it (as the first run would); otherwise only read it.
    exists = config.store.exists()
    with (
        ModelStore(config.store, read_only=exists) as store,
        open_warehouse(config.connection(section.connection)) as warehouse,
    ):
        spans, max_key = pending_ranges(section, store, warehouse)
    if not spans:
        print(f"usage/{section.name}: no pending ranges (source max key {max_key}); nothing registered")
        return 0
    name = usage_partitions(section).name or ""
    keys = [s.partition_key for s in spans]
    with dagster_instance() as instance:
        existing = set(instance.get_dynamic_partitions(name))
        new = [k for k in keys if k not in existing]
        if new:
            instance.add_dynamic_partitions(name, new)
        home = instance.root_directory
        instance_keys = list(instance.get_dynamic_partitions(name))
    print(
        f"usage/{section.name}: registered {len(new)} new range(s) in {home} ({len(keys)} pending, "
        f"source max key {max_key})"
    )
    print("load them:")
    _print_backfill(section, instance_keys, set(keys), config)
    return 0
