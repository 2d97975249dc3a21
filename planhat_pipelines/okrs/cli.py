"""The OKR subcommands of ``planhat-pipelines``: ``okrs`` (the summary table) and ``checkin``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime

from planhat_pipelines.config import Config, KeyResult, load_config
from planhat_pipelines.okrs.refresh import (
    KeyResultSummary,
    ObjectiveSummary,
    check_in,
    current_values,
    find_key_result,
)
from planhat_pipelines.okrs.status import Status
from planhat_pipelines.store import ModelStore

_NONE = "-"
_HEADERS = ("Objective / key result", "Value", "Target", "Progress", "Expected", "Status", "Source", "Recorded (UTC)")
_RIGHT = {1, 2, 3, 4}  # numeric columns are right-aligned


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``okrs`` and ``checkin`` subcommands to the ``planhat-pipelines`` parser.

    Args:
        subparsers: The main parser's subparsers; each handler receives the parsed args, whose
            ``config`` is the ``--config`` option of the main parser.
    """
    okrs = subparsers.add_parser(
        "okrs",
        help="show objectives and key results: value, progress, expected progress and status",
        description="Show every objective and key result with its current value, progress, expected progress "
        "and status. The current value is the latest check-in or successful refresh.",
    )
    okrs.set_defaults(handler=_okrs)
    checkin = subparsers.add_parser(
        "checkin",
        help="record a key result's value by hand (it stands until the next successful refresh)",
        description="Record a value for a key result by hand. It is the current value until the next "
        "successful hourly refresh records a newer one.",
    )
    checkin.add_argument("key_result", metavar="KEY_RESULT", help="the key result's name in the config")
    checkin.add_argument("value", metavar="VALUE", type=float, help="the value, e.g. 312 or 4.5")
    checkin.set_defaults(handler=_checkin)


def _okrs(args: argparse.Namespace) -> int:
    print(summary_text(load_config(args.config)))
    return 0


def summary_text(config: Config, now: datetime | None = None) -> str:
    """The OKR table for ``config`` as of ``now`` (default: the current time), read from its store.

    Opens (and closes) the model store at ``config.store`` read-only: no migration, nothing written.
    """
    if not config.objectives:
        return f"No OKRs are configured in {config.path} (add an 'okrs:' section)."
    with ModelStore(config.store, read_only=True) as store:
        return format_summary(current_values(store, config, now or datetime.now(UTC)))


def _checkin(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    kr = find_key_result(config, args.key_result)
    with ModelStore(config.store) as store:
        row = check_in(store, kr, args.value, datetime.now(UTC))
    line = f"Checked in {format_number(args.value)} for {kr.name}"
    if row.status is not None and row.progress is not None and row.expected is not None:
        line += (
            f": progress {format_share(row.progress)} (expected {format_share(row.expected)}), "
            f"{Status(row.status).label}"
        )
    print(line + ". It stands until the next successful refresh.")
    return 0


def format_number(value: float | None) -> str:
    """A value for people: whole numbers without decimals, others with two; '-' for None."""
    if value is None:
        return _NONE
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def format_share(share: float | None) -> str:
    """A fraction as a percentage with one decimal ('62.5 %'); '-' for None."""
    return _NONE if share is None else f"{share * 100:.1f} %"


def _target(kr: KeyResult) -> str:
    if kr.direction == "kpi" or kr.target is None:
        return "KPI"
    return f"{format_number(kr.start_value)} -> {format_number(kr.target)}"


def _status_text(s: KeyResultSummary) -> str:
    if s.evaluation is None:
        return "error" if s.failure else "no value yet"
    return s.status.label if s.status else "KPI"


def _key_result_row(s: KeyResultSummary) -> list[str]:
    kr = s.key_result
    label = f"  {kr.name}" + (f" ({kr.title})" if kr.title else "")
    ev = s.evaluation
    current = s.current
    return [
        label,
        format_number(ev.value if ev else None),
        _target(kr),
        format_share(ev.progress if ev else None),
        format_share(ev.expected if ev else None),
        _status_text(s),
        current.source if current else _NONE,
        f"{current.recorded_at:%Y-%m-%d %H:%M}" if current else _NONE,
    ]


def format_summary(objectives: Sequence[ObjectiveSummary]) -> str:
    """The summary as an aligned text table: one line per objective, then one per key result.

    A key result whose latest refresh failed after its current value gets an extra line with the
    error's first line.
    """
    rows: list[list[str] | str] = []
    for obj in objectives:
        rows.append([obj.objective.title, "", "", "", "", obj.status.label if obj.status else _NONE, "", ""])
        for s in obj.key_results:
            rows.append(_key_result_row(s))
            if s.failure is not None:
                error = s.failure.error.splitlines()[0] if s.failure.error else "unknown error"
                rows.append(f"    ! refresh failed at {s.failure.recorded_at:%Y-%m-%d %H:%M} UTC: {error}")
    table = [list(_HEADERS)] + [r for r in rows if isinstance(r, list)]
    widths = [max(len(r[i]) for r in table) for i in range(len(_HEADERS))]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i in _RIGHT else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    out = [line(_HEADERS), line(["-" * w for w in widths])]
    out += [line(r) if isinstance(r, list) else r for r in rows]
    return "\n".join(out)


__all__ = ["format_number", "format_share", "format_summary", "register", "summary_text"]
