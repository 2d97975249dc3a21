"""``planhat-pipelines``: the command line (demo, summaries, sync log, OKRs)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from planhat_pipelines.errors import PlanhatPipelinesError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="planhat-pipelines", description=__doc__)
    parser.add_argument("--config", help="config file (default: $PLANHAT_PIPELINES_CONFIG or ./planhat_pipelines.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    from planhat_pipelines.okrs.cli import register as register_okrs

    register_okrs(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except PlanhatPipelinesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
