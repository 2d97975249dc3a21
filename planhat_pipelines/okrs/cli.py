"""The OKR subcommands of ``planhat-pipelines``: ``okrs`` (the summary table), ``checkin`` and ``okr-mode``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime

from planhat_pipelines.config import Config, KeyResult, load_config
from planhat_pipelines.okrs.current import KeyResultSummary, ObjectiveSummary, current_values, find_key_result
from planhat_pipelines.okrs.refresh import MODE_AUTOMATIC, MODE_MANUAL, MODES, check_in, set_mode
from planhat_pipelines.okrs.status import Status
from planhat_pipelines.store import ModelStore

_NONE = "-"
_HEADERS = ("Objective / key result", "Value", "Target", "Progress", "Expected", "Status", "Source", "Recorded (UTC)")
_RIGHT = {1, 2, 3, 4}  # numeric columns are right-aligned


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``okrs``, ``checkin`` and ``okr-mode`` subcommands to the ``planhat-pipelines`` parser.

    Args:
        subparsers: The main parser's subparsers; each handler receives the parsed args, whose
            ``config`` is the ``--config`` option of the main parser.
    """
    okrs = subparsers.add_parser(
        "okrs",
        help="show objectives and key results: value, progress, expected progress, status and mode",
        description="Show every objective and key result with its current value, progress, expected progress "
        "and status. The current value is the latest check-in or successful refresh (in manual mode: the latest "
        "check-in). An objective's progress is the weighted average of its key results' progress, its status "
        "the worst of theirs.",
    )
    okrs.set_defaults(handler=_okrs)
    checkin = subparsers.add_parser(
        "checkin",
        help="record a key result's value by hand (it stands until the next successful refresh, or in manual "
        "mode until the key result is switched back to automatic)",
        description="Record a value for a key result by hand. In automatic mode it is the current value until "
        "the next successful hourly refresh records a newer one; in manual mode it stands until the key result "
        "is switched back with `okr-mode KEY_RESULT automatic`.",
    )
    checkin.add_argument("key_result", metavar="KEY_RESULT", help="the key result's name in the config")
    checkin.add_argument("value", metavar="VALUE", type=float, help="the value, e.g. 312 or 4.5")
    checkin.add_argument(
        "--manual",
        action="store_true",
        help="also switch the key result to manual mode (in the same store transaction), so the hourly "
        "refresh leaves this value alone",
    )
    checkin.set_defaults(handler=_checkin)
    mode = subparsers.add_parser(
        "okr-mode",
        help="switch a key result between manual (check-ins stand) and automatic (the hourly query sets it)",
        description="Switch a key result's mode. manual: the hourly refresh skips it and the latest check-in "
        "stands. automatic (the default): the next successful refresh's value becomes current again.",
    )
    mode.add_argument("key_result", metavar="KEY_RESULT", help="the key result's name in the config")
    mode.add_argument("mode", choices=MODES, help="manual or automatic")
    mode.set_defaults(handler=_okr_mode)


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


def _stands_until(kr: KeyResult, mode: str) -> str:
    if mode == MODE_MANUAL:
        return (
            f"It stands until {kr.name} is switched back to automatic (planhat-pipelines okr-mode {kr.name} automatic)."
        )
    return "It stands until the next successful refresh."


def _checkin(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    kr = find_key_result(config, args.key_result)
    with ModelStore(config.store) as store:
        row = check_in(store, kr, args.value, datetime.now(UTC), manual=args.manual)
        mode = store.okr_modes().get(kr.name, MODE_AUTOMATIC)
    line = f"Checked in {format_number(args.value)} for {kr.name}"
    if row.status is not None and row.progress is not None and row.expected is not None:
        line += (
            f": progress {format_share(row.progress)} (expected {format_share(row.expected)}), "
            f"{Status(row.status).label}"
        )
    if mode == MODE_MANUAL:
        line += f" ({kr.name} is in manual mode)"
    print(f"{line}. {_stands_until(kr, mode)}")
    return 0


def _okr_mode(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    kr = find_key_result(config, args.key_result)
    with ModelStore(config.store) as store:
        changed = set_mode(store, kr, args.mode, datetime.now(UTC))
    if not changed:
        print(f"{kr.name} is already {args.mode}: nothing changed.")
    elif args.mode == MODE_MANUAL:
        print(
            f"{kr.name} is now manual: the hourly refresh skips it and its latest check-in (or, until there is "
            f"one, its latest value) stands. Check in with: planhat-pipelines checkin {kr.name} VALUE"
        )
    else:
        print(f"{kr.name} is now automatic: the next successful refresh's value becomes current.")
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
        (current.source if current else _NONE) + (f" ({MODE_MANUAL})" if s.mode == MODE_MANUAL else ""),
        f"{current.recorded_at:%Y-%m-%d %H:%M}" if current else _NONE,
    ]


def format_summary(objectives: Sequence[ObjectiveSummary]) -> str:
    """The summary as an aligned text table: one line per objective, then one per key result.

    An objective's line shows its progress (weighted over its key results) and its status (the worst of
    theirs); a key result's Source column ends in ``(manual)`` when it is in manual mode.

    A key result whose latest refresh failed after its current value gets an extra line with the
    error's first line.
    """
    rows: list[list[str] | str] = []
    for obj in objectives:
        status = obj.status.label if obj.status else _NONE
        rows.append([obj.objective.title, "", "", format_share(obj.progress), "", status, "", ""])
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
