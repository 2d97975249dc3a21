"""``planhat-pipelines``: the command line (demo, summaries, sync log, OKRs)."""

from __future__ import annotations

import argparse
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
        if args.rejects:
            print()
            for section, key, reason, run_id in store.open_rejects(args.section):
                print(f"{section:<18} {key:<34} {reason}  (run {run_id})")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="planhat-pipelines", description=__doc__)
    parser.add_argument("--config", help="config file (default: $PLANHAT_PIPELINES_CONFIG or ./planhat_pipelines.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("seed-demo", help="create or grow the demo data in the config's DuckDB warehouses").set_defaults(
        handler=_seed
    )
    sub.add_parser("demo", help="seed, run every asset through Dagster, print a summary").set_defaults(handler=_demo)
    sub.add_parser("summary", help="records per model, usage rows and cursors").set_defaults(handler=_summary)
    logs = sub.add_parser("logs", help="the sync log: what each section run did")
    logs.add_argument("--section", help="only this section")
    logs.add_argument("--status", choices=["running", "success", "failed", "skipped"], help="only this status")
    logs.add_argument("--limit", type=int, default=30, help="newest N runs (default 30)")
    logs.add_argument("--rejects", action="store_true", help="also list open rejected rows with their reasons")
    logs.set_defaults(handler=_logs)
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
