"""``planhat-pipelines``: the command line (demo, summaries, sync log, key ranges, OKRs)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_shared.utils.warnings import BetaWarning

from planhat_pipelines.config import Config, UsageSection, load_config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore

if TYPE_CHECKING:
    import dagster as dg

#: The checkout this package runs from: its .dagster_home is the documented default instance (the Makefile's).
REPO_ROOT = Path(__file__).resolve().parents[1]


# --- the Dagster instance ---------------------------------------------------------------------------------
def resolve_dagster_home(env: Mapping[str, str], root: Path = REPO_ROOT) -> tuple[Path, bool]:
    """The instance folder: ``$DAGSTER_HOME``, else the checkout's ``.dagster_home`` (as ``make dev`` uses).

    Returns:
        The folder, and whether it is the default (``DAGSTER_HOME`` was not set).

    Raises:
        PlanhatPipelinesError: neither is there.
    """
    if env.get("DAGSTER_HOME"):
        return Path(env["DAGSTER_HOME"]), False
    default = root / ".dagster_home"
    if default.is_dir():
        return default, True
    raise PlanhatPipelinesError(
        "DAGSTER_HOME is not set, and there is no project default (.dagster_home in the checkout). Fix: export "
        "DAGSTER_HOME=<folder> naming the Dagster instance the UI and daemon use (`make dev` uses "
        "<checkout>/.dagster_home), e.g. export DAGSTER_HOME=$PWD/.dagster_home"
    )


@contextlib.contextmanager
def _instance() -> Iterator[dg.DagsterInstance]:
    """The Dagster instance of ``$DAGSTER_HOME`` or of the project default, set up as the Makefile does."""
    import dagster as dg

    home, defaulted = resolve_dagster_home(os.environ)
    if defaulted:
        # The same instance `make dev` and `make demo` use; exported so the commands this CLI prints, and any
        # Dagster code it calls, see the same one.
        os.environ["DAGSTER_HOME"] = str(home)
        if not (home / "dagster.yaml").exists() and (REPO_ROOT / "dagster.yaml").exists():
            shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")  # what `make dev` does
        print(f"(DAGSTER_HOME is not set: using the project's default, DAGSTER_HOME={home})", file=sys.stderr)
    with dg.DagsterInstance.get() as instance:
        yield instance


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


# --- demo data ---------------------------------------------------------------------------------------------
def _require_demo_config(config: Config, args: argparse.Namespace, what: str) -> None:
    from planhat_pipelines.demo.run import DEMO_CONFIGS, is_demo_config

    if args.demo or is_demo_config(config.path):
        return
    raise PlanhatPipelinesError(
        f"{config.path} is not a demo config: {what} writes demo tables and rows into every DuckDB warehouse it "
        f"names. Fix: use a shipped demo config ({', '.join(str(p) for p in DEMO_CONFIGS)}; `make demo` uses the "
        "first), or pass --demo if these warehouses are scratch ones made for the demo"
    )


def _seed(args: argparse.Namespace) -> int:
    from planhat_pipelines.demo.run import is_demo_config, seed

    config = load_config(args.config)
    if args.if_missing and not (args.demo or is_demo_config(config.path)):
        # `make dev` on a person's own config: nothing to seed, and not an error.
        print(f"{config.path} is not a demo config: its warehouses are left alone (no demo data written)")
        return 0
    _require_demo_config(config, args, "seed-demo")
    seed(config, only_missing=args.if_missing)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from planhat_pipelines.demo.run import run_all, seed
    from planhat_pipelines.progress import stderr_printer
    from planhat_pipelines.summary import store_summary

    config = load_config(args.config)
    _require_demo_config(config, args, "demo")
    with contextlib.ExitStack() as stack:
        # Progress goes to stderr (a bar on a terminal, plain lines in a pipe or log); results to stdout.
        printer = stack.enter_context(stderr_printer())

        def echo(line: str) -> None:
            printer.finish()  # a run's result line starts below its progress bar, not on top of it
            print(line, flush=True)  # in order with the progress lines when both streams go to one log

        if args.emulator:
            # The config's bigquery/snowflake connection names the emulator's ports; it runs until the end.
            # The launchers are checkout tooling (tools/emulators/), not part of the installed package.
            from planhat_pipelines.demo.checkout import emulator_demo

            emulators = emulator_demo()
            stack.enter_context(emulators.demo_emulator(config, args.emulator))
            emulators.seed_emulator(config, args.emulator)
        else:
            seed(config, echo)
        with _instance() as instance:
            run_all(config, instance, echo, progress=printer.update)
    with ModelStore(config.store_path, read_only=True) as store:
        print()
        print(store_summary(store, config))
    if config.key_results:
        from planhat_pipelines.okrs.cli import summary_text

        print()
        print(summary_text(config))
    return 0


# --- reading the store ----------------------------------------------------------------------------------------
def _summary(args: argparse.Namespace) -> int:
    from planhat_pipelines.summary import store_summary

    config = load_config(args.config)
    with ModelStore(config.store_path, read_only=True) as store:
        print(store_summary(store, config))
    return 0


def _logs(args: argparse.Namespace) -> int:
    from planhat_pipelines.summary import format_runs

    config = load_config(args.config)
    with ModelStore(config.store_path, read_only=True) as store:
        print(format_runs(store.runs(section=args.section, status=args.status, limit=args.limit)))
        health = store.con.execute(
            "SELECT connection, checked_at, status, error, fix FROM connection_health "
            "QUALIFY row_number() OVER (PARTITION BY connection ORDER BY checked_at DESC) <= 3 "
            "ORDER BY connection, checked_at DESC"
        ).fetchall()
        if health:
            print()
            print("connection health (newest 3 checks per connection):")
            for connection, checked_at, status, error, fix in health:
                detail = f"  {error}  Fix: {fix}" if error else ""
                print(f"{checked_at:%Y-%m-%d %H:%M:%S}  {connection:<18} {status:<9}{detail}")
        if args.rejects:
            print()
            for section, key, reason, run_id in store.open_rejects(args.section):
                print(f"{section:<18} {key:<34} {reason}  (run {run_id})")
    return 0


# --- key ranges ---------------------------------------------------------------------------------------------
def _ranges(args: argparse.Namespace) -> int:
    from planhat_pipelines.defs.usage import usage_partitions
    from planhat_pipelines.sync.ranges import KeyRangeSpan, range_of

    config = load_config(args.config)
    section = _usage_section(config, args.section)
    name = usage_partitions(section).name or ""
    with _instance() as instance:
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
    exists = config.store_path.exists()
    with (
        ModelStore(config.store_path, read_only=exists) as store,
        open_warehouse(config.connection(section.connection)) as warehouse,
    ):
        spans, max_key = pending_ranges(section, store, warehouse)
    if not spans:
        print(f"usage/{section.name}: no pending ranges (source max key {max_key}); nothing registered")
        return 0
    name = usage_partitions(section).name or ""
    keys = [s.partition_key for s in spans]
    with _instance() as instance:
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


# --- the parser -----------------------------------------------------------------------------------------------
def _add_demo_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo",
        action="store_true",
        help="treat the config as a demo config: write demo data into its DuckDB warehouses although it is not "
        "one of the shipped demo configs (planhat_pipelines.yaml, examples/demo_*.yaml)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="planhat-pipelines", description=__doc__)
    parser.add_argument("--config", help="config file (default: $PLANHAT_PIPELINES_CONFIG or ./planhat_pipelines.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    seed = sub.add_parser(
        "seed-demo",
        help="create or grow (+2 %% usage rows) the demo data in a demo config's DuckDB warehouses",
    )
    _add_demo_flag(seed)
    seed.add_argument(
        "--if-missing",
        action="store_true",
        help="only create demo warehouses that do not exist yet (no growth); a config that is not a demo "
        "config is left alone without an error (what `make dev` runs)",
    )
    seed.set_defaults(handler=_seed)
    demo = sub.add_parser("demo", help="seed a demo config, run every asset through Dagster, print a summary")
    _add_demo_flag(demo)
    demo.add_argument(
        "--emulator",
        choices=["bigquery", "snowflake"],
        help="start that local emulator on the ports the config's connection names, seed it, run against it, "
        "stop it (configs: examples/demo_bigquery.yaml, examples/demo_snowflake.yaml)",
    )
    demo.set_defaults(handler=_demo)
    sub.add_parser("summary", help="records per model, usage rows and cursors (read-only)").set_defaults(
        handler=_summary
    )
    logs = sub.add_parser("logs", help="the sync log: what each section run did (read-only)")
    logs.add_argument("--section", help="only this section")
    logs.add_argument("--status", choices=["running", "success", "failed", "skipped"], help="only this status")
    logs.add_argument("--limit", type=int, default=30, help="newest N runs (default 30)")
    logs.add_argument("--rejects", action="store_true", help="also list open rejected rows with their reasons")
    logs.set_defaults(handler=_logs)
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
    register = sub.add_parser(
        "register-ranges",
        help="register a usage section's pending key ranges in the Dagster instance (what its sensor does) "
        "and print the command that loads them",
    )
    register.add_argument("section", help="the usage section")
    register.set_defaults(handler=_register_ranges)
    from planhat_pipelines.okrs.cli import register as register_okrs
    from planhat_pipelines.preflight import register as register_preflight

    register_okrs(sub)
    register_preflight(sub)
    return parser


def quiet_beta_warnings() -> None:
    """Hide Dagster's BetaWarning about ``backfill_policy``: it says nothing a user of this project can act on."""
    warnings.filterwarnings("ignore", category=BetaWarning, message=r"Parameter `backfill_policy` ")


def main(argv: Sequence[str] | None = None) -> int:
    quiet_beta_warnings()
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except PlanhatPipelinesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
