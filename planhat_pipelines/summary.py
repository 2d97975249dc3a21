"""Plain-text summaries of the store for the command line."""

from __future__ import annotations

from planhat_pipelines.config import Config
from planhat_pipelines.models import MODELS
from planhat_pipelines.store import ModelStore, RunRecord
from planhat_pipelines.store.schema import USAGE_TABLES


def store_summary(store: ModelStore, config: Config) -> str:
    """Rows per model, usage rows per section, and cursors."""
    lines = ["Model store: " + str(store.path), "", f"{'model':<14}{'records':>10}"]
    for slug in MODELS:
        count = store.count(slug)
        if count:
            lines.append(f"{slug:<14}{count:>10,}")
    lines += ["", f"{'usage section':<22}{'rows':>10}  {'loaded through key':>20}  ranges"]
    for section in config.usage:
        table = USAGE_TABLES[section.kind]
        rows = store.usage_rows(section.name, table)
        ranges = len(store.cursors(section.name))
        through = store.loaded_through(section.name)
        lines.append(f"{section.name:<22}{rows:>10,}  {through if through is not None else '-':>20}  {ranges}")
    latest = [
        runs[0]
        for name in [*(c.name for c in config.crm), *(u.name for u in config.usage)]
        if (runs := store.runs(section=name, limit=1))
    ]
    if latest:
        lines += ["", "last run of each section:", format_runs(latest)]
    open_rejects = store.open_rejects()
    lines += ["", f"open rejected rows: {len(open_rejects):,}"]
    return "\n".join(lines)


def customer_numbers_summary(store: ModelStore, config: Config) -> str:
    """Companies by status, total ARR, what the behaviours did, each calculated metric and the health score."""
    numbers = store.customer_numbers()
    statuses = ", ".join(f"{status} {count:,}" for status, count in numbers.statuses)
    lines = [
        "customer numbers:",
        f"  companies by status: {statuses or 'none'}",
        f"  total ARR: {numbers.arr:,.2f}",
        f"  licenses lost (churned): {numbers.churned_licenses:,}; from won deals: "
        f"{numbers.licenses_from_won_deals:,}; conversations from done tasks: {numbers.conversations_from_tasks:,}",
    ]
    for metric in config.calculated_metrics:
        records, total = numbers.metric_totals.get(metric.name, (0, 0.0))
        lines.append(f"  {metric.name}: {total:,.0f} over {records:,} {metric.model} records (today)")
    scored, average, lowest, highest = numbers.health
    if scored and average is not None:
        lines.append(
            f"  health score: {scored:,} companies, average {average:.1f}, lowest {lowest:.1f}, highest {highest:.1f}"
        )
    return "\n".join(lines)


def format_runs(runs: list[RunRecord]) -> str:
    """The sync log as an aligned table."""
    header = (
        f"{'started':<20} {'section':<18} {'domain':<6} {'status':<8} {'read':>8} {'ins':>8} {'upd':>7} "
        f"{'same':>8} {'rej':>6} {'sent':>6}  cursor / error"
    )
    lines = [header, "-" * len(header)]
    for r in runs:
        tail = r.error or (f"{r.cursor_before or '-'} -> {r.cursor_after or '-'}")
        lines.append(
            f"{r.started_at:%Y-%m-%d %H:%M:%S}  {r.section:<18} {r.domain:<6} {r.status:<8} {r.rows_read:>8} "
            f"{r.inserted:>8} {r.updated:>7} {r.unchanged:>8} {r.rejected:>6} {r.sent:>6}  {tail[:120]}"
        )
    return "\n".join(lines)
