"""``planhat-pipelines``: the command line (demo, summaries, sync log, OKRs)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Sequence

from planhat_pipelines.config import load_config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore


def _seed(args: argparse.Namespace) -> int:
    from planhat_pipelines.demo.run import seed

    seed(load_config(args.config))
    return 0


def _demo(args: argparse.Namespace) -> int:
    import dagster as dg

    from planhat_pipelines.demo.run import run_all, seed
    from planhat_pipelines.summary import store_summary

    config = load_config(args.config)
    with contextlib.ExitStack() as stack:
        if args.emulator:
            # The config's bigquery/snowflake connection names the emulator's ports; it runs until the end.
            from planhat_pipelines.demo.emulators import demo_emulator, seed_emulator

            stack.enter_context(demo_emulator(config, args.emulator))
            seed_emulator(config, args.emulator)
        else:
            seed(config)
        with dg.DagsterInstance.get() as instance:
            run_all(config, instance)
    with ModelStore(config.store_path) as store:
        print()
        print(store_summary(store, config))
    if config.key_results:
        from planhat_pipelines.okrs.cli import summary_text

        print()
        print(summary_text(config))
    return 0


def _summary(args: argparse.Namespace) -> int:
    from planhat_pipelines.summary import store_summary

    config = load_config(args.config)
    with ModelStore(config.store_path) as store:
        print(store_summary(store, config))
    return 0


def _logs(args: argparse.Namespace) -> int:
    from planhat_pipelines.summary import format_runs

    config = load_config(args.config)
    with ModelStore(config.store_path) as store:
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


def _ranges(args: argparse.Namespace) -> int:
    import dagster as dg

    from planhat_pipelines.defs.usage import usage_partitions
    from planhat_pipelines.sync.ranges import KeyRangeSpan, range_of

    config = load_config(args.config)
    sections = {s.name: s for s in config.usage}
    if args.section not in sections:
        raise PlanhatPipelinesError(
            f"unknown usage section '{args.section}'. Fix: use one of: {', '.join(sections) or '(none declared)'}"
        )
    section = sections[args.section]
    with dg.DagsterInstance.get() as instance:
        keys = sorted(instance.get_dynamic_partitions(usage_partitions(section).name or ""))
    if args.from_key is not None:
        first = range_of(args.from_key, section.partition_span).partition_key
        keys = [k for k in keys if k >= first]
    if not keys:
        print("no registered ranges (the section's sensor or `make demo` registers them)")
        return 1
    if args.command:
        print(
            "dagster asset materialize -m planhat_pipelines.definitions "
            f"--select usage/{section.name} --partition-range {keys[0]}...{keys[-1]}"
        )
        return 0
    for key in keys:
        span = KeyRangeSpan.parse(key)
        print(f"{key}  keys {span.start}..{span.end}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="planhat-pipelines", description=__doc__)
    parser.add_argument("--config", help="config file (default: $PLANHAT_PIPELINES_CONFIG or ./planhat_pipelines.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("seed-demo", help="create or grow the demo data in the config's DuckDB warehouses").set_defaults(
        handler=_seed
    )
    demo = sub.add_parser("demo", help="seed, run every asset through Dagster, print a summary")
    demo.add_argument(
        "--emulator",
        choices=["bigquery", "snowflake"],
        help="start that local emulator on the ports the config's connection names, seed it, run against it, "
        "stop it (configs: examples/demo_bigquery.yaml, examples/demo_snowflake.yaml)",
    )
    demo.set_defaults(handler=_demo)
    sub.add_parser("summary", help="records per model, usage rows and cursors").set_defaults(handler=_summary)
    logs = sub.add_parser("logs", help="the sync log: what each section run did")
    logs.add_argument("--section", help="only this section")
    logs.add_argument("--status", choices=["running", "success", "failed", "skipped"], help="only this status")
    logs.add_argument("--limit", type=int, default=30, help="newest N runs (default 30)")
    logs.add_argument("--rejects", action="store_true", help="also list open rejected rows with their reasons")
    logs.set_defaults(handler=_logs)
    ranges = sub.add_parser("ranges", help="a usage section's key-range partitions (for backfills)")
    ranges.add_argument("section", help="the usage section")
    ranges.add_argument("--from", dest="from_key", type=int, help="only ranges from the one holding this key")
    ranges.add_argument("--command", action="store_true", help="print the dagster backfill command instead")
    ranges.set_defaults(handler=_ranges)
    from planhat_pipelines.okrs.cli import register as register_okrs

    register_okrs(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Dagster marks backfill_policy as beta; the warning says nothing a user of this CLI can act on.
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except PlanhatPipelinesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
