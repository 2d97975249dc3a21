"""``planhat-pipelines``: the command line (demo, summaries, sync log, key ranges, OKRs, the web app)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from planhat_pipelines.cli.instance import dagster_instance, resolve_dagster_home
from planhat_pipelines.config import Config, load_config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore

__all__ = ["main", "resolve_dagster_home"]


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
    from planhat_pipelines.summary import customer_numbers_summary, store_summary

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
        with dagster_instance() as instance:
            run_all(config, instance, echo, progress=printer.update)
    with ModelStore(config.store, read_only=True) as store:
        print()
        print(store_summary(store, config))
        print()
        print(customer_numbers_summary(store, config))
    if config.key_results:
        from planhat_pipelines.okrs.cli import summary_text

        print()
        print(summary_text(config))
    return 0


# --- reading the store ----------------------------------------------------------------------------------------
def _summary(args: argparse.Namespace) -> int:
    from planhat_pipelines.summary import store_summary

    config = load_config(args.config)
    with ModelStore(config.store, read_only=True) as store:
        print(store_summary(store, config))
    return 0


def _logs(args: argparse.Namespace) -> int:
    from planhat_pipelines.summary import format_runs

    config = load_config(args.config)
    with ModelStore(config.store, read_only=True) as store:
        print(format_runs(store.runs(section=args.section, status=args.status, limit=args.limit)))
        health = store.recent_health(limit_per_connection=3)
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
    from planhat_pipelines.cli.auth import register as register_auth
    from planhat_pipelines.cli.changes import register as register_changes
    from planhat_pipelines.cli.drift import register as register_drift
    from planhat_pipelines.cli.ranges import register as register_ranges
    from planhat_pipelines.cli.serve import register as register_serve
    from planhat_pipelines.cli.store import register as register_store
    from planhat_pipelines.cli.sync_control import register as register_sync_control
    from planhat_pipelines.okrs.cli import register as register_okrs
    from planhat_pipelines.preflight import register as register_preflight

    register_changes(sub)
    register_drift(sub)
    register_ranges(sub)
    register_store(sub)
    register_okrs(sub)
    register_preflight(sub)
    register_serve(sub)
    register_sync_control(sub)
    register_auth(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code is 2 for a project error, printed as one line without a traceback."""
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except PlanhatPipelinesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
