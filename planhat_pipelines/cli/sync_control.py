"""``planhat-pipelines preview`` (what a sync would do, writing nothing) and ``allow-deletes`` (one run over the
delete limit)."""

from __future__ import annotations

import argparse
import json

from planhat_pipelines.config import load_config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore


def _preview(args: argparse.Namespace) -> int:
    from planhat_pipelines.preview import preview_sections
    from planhat_pipelines.sync.ranges import KeyRangeSpan

    config = load_config(args.config)
    try:
        ranges = [KeyRangeSpan.parse(key) for key in args.range] if args.range else None
    except ValueError as exc:
        raise PlanhatPipelinesError(f"--range: {exc}", fix="pass a range's partition key as the UI shows it") from exc
    previews = preview_sections(config, args.section, full=args.full, ranges=ranges)
    for preview in previews:
        print(json.dumps(preview.as_json(), default=str) if args.json else preview.describe() + "\n")
    # A preview whose real run would fail exits 1, so a script can gate a deploy on it.
    return 1 if any(p.error for p in previews) else 0


def _allow_deletes(args: argparse.Namespace) -> int:
    from planhat_pipelines.sync.crm.deletes import approve_deletes

    config = load_config(args.config)
    sections = {s.name: s for s in config.crm if s.on_missing.value != "ignore" or s.mirror}
    if args.section not in sections:
        raise PlanhatPipelinesError(
            f"{config.path}: section '{args.section}' removes no records (no on_missing: archive|delete, no mirror)",
            fix=f"name one that does: {', '.join(sections) or 'none in this config'}",
        )
    if args.count < 1:
        raise PlanhatPipelinesError(f"--count {args.count}", fix="pass the number the refused run named (1 or more)")
    with ModelStore(config.store) as store:
        approve_deletes(store, args.section, args.count)
    print(
        f"the next run of '{args.section}' may remove up to {args.count} records although that is over its "
        "delete_limit; that run uses the approval up"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``preview`` and ``allow-deletes`` to the command line."""
    preview = sub.add_parser(
        "preview",
        help="what a sync would do (insert, update, reject, send, remove, with sample before/after), writing nothing",
    )
    preview.add_argument(
        "--section", action="append", help="only this section (repeatable; default: every CRM and usage section)"
    )
    preview.add_argument("--full", action="store_true", help="preview a full sync of the CRM sections")
    preview.add_argument(
        "--range",
        action="append",
        help="a usage range's partition key to preview (repeatable; default: the ranges the next run would load)",
    )
    preview.add_argument("--json", action="store_true", help="one JSON object per section")
    preview.set_defaults(handler=_preview)
    allow = sub.add_parser(
        "allow-deletes",
        help="let the next run of a section remove more records than its delete_limit (once)",
    )
    allow.add_argument("--section", required=True, help="the CRM section the refused run named")
    allow.add_argument("--count", type=int, required=True, help="how many records it may remove (the refused number)")
    allow.set_defaults(handler=_allow_deletes)
