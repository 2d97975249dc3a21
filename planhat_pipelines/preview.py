"""Previews: what a CRM section, a usage section's pending ranges or the whole job would do, writing nothing.

Each section runs as its sync runs (:func:`~planhat_pipelines.sync.crm.sync_section` /
:func:`~planhat_pipelines.sync.usage.run_usage` with ``dry_run=True``): it reads the warehouse, validates,
compares with the store and stages its writes inside one store transaction that is rolled back, and sends
nothing to the warehouse. The report is the counts it would write, the log lines (a removal over the delete
limit says a real run would stop there) and, for CRM sections, a sample of the records it would change with
their field-level before/after. ``planhat-pipelines preview`` prints it; Dagster's ``dry_run: true`` run
config reports it as an asset observation.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from planhat_pipelines.config import Config, CrmSection, UsageSection
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.change_log import Change
from planhat_pipelines.sync.crm import CrmResult, sync_section
from planhat_pipelines.sync.ranges import KeyRangeSpan
from planhat_pipelines.sync.usage import UsageResult, pending_ranges, run_usage
from planhat_pipelines.warehouses.base import Warehouse
from planhat_pipelines.warehouses.factory import open_warehouse


@dataclass
class Preview:
    """What one section would do.

    Attributes:
        section: The section's name.
        kind: ``crm`` or ``usage``.
        counts: What it would write, by name (inserted, updated, unchanged, rejected, sent, removed, ...).
        log: Its log lines, as a real run would write them.
        samples: Some of the records it would change, with each field's before/after (CRM sections).
        error: Why the real run would fail, when it would (the preview of the other sections goes on).
    """

    section: str
    kind: str
    counts: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    samples: list[Change] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "kind": self.kind,
            "counts": self.counts,
            "log": self.log,
            "error": self.error,
            "samples": [{"op": c.op, "key": c.key, "record_id": c.record_id, "fields": c.fields} for c in self.samples],
        }

    def describe(self) -> str:
        """A few lines for a terminal: the counts, the log, the sample changes."""
        head = f"{self.kind} section '{self.section}' (preview: nothing written)"
        if self.error:
            return f"{head}\n  would fail: {self.error}"
        lines = [head, "  would: " + ", ".join(f"{k} {v}" for k, v in self.counts.items())]
        lines += [f"  {line}" for line in self.log]
        if self.samples:
            lines.append(f"  changes ({len(self.samples)} shown):")
            lines += [f"    {_sample(c)}" for c in self.samples]
        return "\n".join(lines)


def _sample(change: Change) -> str:
    fields = "; ".join(f"{k}: {_show(old)} → {_show(new)}" for k, (old, new) in sorted(change.fields.items()))
    return f"{change.op:<11} {change.key or '-'}" + (f"  {fields}" if fields else "")


def _show(value: Any) -> str:
    return "∅" if value is None else json.dumps(value, ensure_ascii=False, default=str)


def crm_preview(result: CrmResult) -> Preview:
    """The preview of one CRM section run with ``dry_run=True``."""
    counts = {
        "read": result.rows_read,
        "insert": result.inserted,
        "update": result.updated,
        "leave unchanged": result.unchanged,
        "reject": result.rejected,
        "send": result.sent,
        "remove (on_missing)": result.removed,
        "restore": result.restored,
        "delete in the warehouse (mirror)": result.mirrored,
    }
    return Preview(result.section, "crm", counts, list(result.log), list(result.samples))


def usage_preview(result: UsageResult) -> Preview:
    """The preview of one usage section run with ``dry_run=True``."""
    counts = {
        "read": result.rows_read,
        "insert": result.inserted,
        "leave unchanged": result.unchanged,
        "reject": result.rejected,
        "ranges": len(result.ranges),
    }
    return Preview(result.section, "usage", counts, list(result.log))


def preview_sections(
    config: Config,
    names: list[str] | None = None,
    *,
    full: bool = False,
    ranges: list[KeyRangeSpan] | None = None,
    store: ModelStore | None = None,
    warehouse_for: Callable[[str], Warehouse] | None = None,
) -> list[Preview]:
    """Preview the named sections (every CRM and usage section when None), in config order.

    Args:
        full: Preview a full sync of the CRM sections (every row compared, no change-tracking read).
        ranges: The usage ranges to preview (default: the ranges a run would load next, per section).
        store: The store to preview against (default: the config's, opened here).
        warehouse_for: Opens a connection's warehouse by name (default: from the config).

    Raises:
        PlanhatPipelinesError: A name is not a section of the config (the message lists them).
    """
    sections: list[CrmSection | UsageSection] = [*config.crm, *config.usage]
    if names:
        known = {s.name: s for s in sections}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise PlanhatPipelinesError(
                f"{config.path}: no section named {', '.join(repr(n) for n in unknown)}",
                fix=f"use one of: {', '.join(known)}",
            )
        sections = [known[n] for n in names]
    opener = warehouse_for or (lambda name: open_warehouse(config.connection(name)))
    with contextlib.ExitStack() as stack:
        if store is None:
            store = stack.enter_context(ModelStore(config.store))
        return [_preview_one(section, store, opener, full=full, ranges=ranges) for section in sections]


def _preview_one(
    section: CrmSection | UsageSection,
    store: ModelStore,
    warehouse_for: Callable[[str], Warehouse],
    *,
    full: bool,
    ranges: list[KeyRangeSpan] | None,
) -> Preview:
    """One section's preview; a section whose real run would fail gets the error (the others go on)."""
    with warehouse_for(section.connection) as warehouse:
        try:
            if isinstance(section, CrmSection):
                return crm_preview(sync_section(section, store, warehouse, full=full, dry_run=True))
            spans = ranges if ranges is not None else pending_ranges(section, store, warehouse)[0]
            return usage_preview(run_usage(section, store, warehouse, spans, dry_run=True))
        except PlanhatPipelinesError as exc:
            return Preview(section.name, "crm" if isinstance(section, CrmSection) else "usage", error=str(exc))
