"""Schema drift: how a section's source columns changed since its last successful run, and whether that stops it.

Every run starts by describing its table and comparing the columns with the ones the store recorded after the
last successful run (``source_columns``, see ``store/source_columns.py``):

- an added column is reported (the run's log, the sync log's notes, the asset's ``schema_added_columns``);
- a removed or retyped column the section maps (its key or a field) fails the run before anything is read or
  written (:class:`~planhat_pipelines.errors.SchemaDriftError`): a column that changed meaning silently would
  otherwise be loaded as nulls, rejects or wrongly cast values. Retyped means another kind of value (text,
  integer, decimal, float, boolean, date, timestamp, JSON): a type widened within its kind (``INTEGER`` →
  ``BIGINT``, ``VARCHAR(100)`` → ``VARCHAR(200)``, more decimal digits) keeps every value and is reported;
- a removed or retyped column the section does not map is reported and the run goes on.

The first run of a section has nothing to compare with: it records the baseline and reports nothing. Names
compare case-insensitively (Snowflake upper-cases unquoted names, DuckDB and BigQuery ignore case); types
compare by the warehouse's own type text (``INT64`` vs ``STRING``, ``NUMBER(38,0)`` vs ``VARCHAR(16777216)``).

This module is pure: the engines pass in the recorded and the described columns and store the new ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from planhat_pipelines.config import CrmSection, UsageSection
from planhat_pipelines.errors import SchemaDriftError
from planhat_pipelines.warehouses.tables import Column

#: How the log line naming added columns starts; :func:`added_columns` reads the names back for metadata.
ADDED_NOTE = "source columns added since the last run (not synced until mapped): "
#: The command that accepts a section's current columns as its new baseline.
ACCEPT_COMMAND = "planhat-pipelines drift accept"


@dataclass(frozen=True)
class Retyped:
    """A column whose type text changed."""

    old: Column
    new: Column


@dataclass(frozen=True)
class Drift:
    """How the source's columns changed since the recorded ones.

    Attributes:
        first: No columns were recorded before (the section's first run): nothing is compared.
        added: Columns the source has now and had not.
        removed: Columns the source had and has not any more.
        retyped: Columns whose type text changed.
        mapped: The section's mapped column names, lower-cased.
    """

    first: bool
    added: tuple[Column, ...] = ()
    removed: tuple[Column, ...] = ()
    retyped: tuple[Retyped, ...] = ()
    mapped: frozenset[str] = frozenset()

    @property
    def changed(self) -> bool:
        """Whether the recorded columns must be written again (first run, or any difference)."""
        return self.first or bool(self.added or self.removed or self.retyped)

    def is_mapped(self, name: str) -> bool:
        return name.lower() in self.mapped

    @property
    def breaking(self) -> tuple[Column | Retyped, ...]:
        """Removed columns, and columns retyped to another kind of value, that the section maps: each fails the run."""
        removed = tuple(c for c in self.removed if self.is_mapped(c.name))
        return removed + tuple(r for r in self.retyped if self.is_mapped(r.new.name) and r.old.kind != r.new.kind)

    def notes(self) -> list[str]:
        """Log lines for what does not fail the run: added columns, unmapped columns removed or retyped."""
        lines = []
        if self.added:
            lines.append(ADDED_NOTE + "; ".join(f"{c.name} {c.type}" for c in self.added))
        removed = [c for c in self.removed if not self.is_mapped(c.name)]
        if removed:
            lines.append("unmapped source columns removed: " + "; ".join(f"{c.name} (was {c.type})" for c in removed))
        retyped = [r for r in self.retyped if not self.is_mapped(r.new.name)]
        if retyped:
            lines.append("unmapped source columns retyped: " + "; ".join(_retyped(r) for r in retyped))
        widened = [r for r in self.retyped if self.is_mapped(r.new.name) and r.old.kind == r.new.kind]
        if widened:
            lines.append("mapped source columns retyped within their kind: " + "; ".join(_retyped(r) for r in widened))
        return lines


def compare(previous: Sequence[Column] | None, current: Sequence[Column], mapped: Iterable[str]) -> Drift:
    """How ``current`` differs from ``previous`` (None or empty: the first run, no drift reported)."""
    lowered = frozenset(name.lower() for name in mapped)
    if not previous:
        return Drift(first=True, mapped=lowered)
    before = {c.name.lower(): c for c in previous}
    now = {c.name.lower(): c for c in current}
    return Drift(
        first=False,
        added=tuple(c for name, c in now.items() if name not in before),
        removed=tuple(c for name, c in before.items() if name not in now),
        retyped=tuple(
            Retyped(before[name], c)
            for name, c in now.items()
            if name in before and before[name].type.strip().upper() != c.type.strip().upper()
        ),
        mapped=lowered,
    )


def check_drift(section_name: str, table: str, drift: Drift) -> None:
    """Raise if a mapped column was removed or retyped: before the run reads or writes anything.

    Raises:
        SchemaDriftError: naming the section, the table, each column with its old and new type, and the fix.
    """
    breaking = drift.breaking
    if not breaking:
        return
    parts = [
        f"mapped column '{c.new.name}' changed type {c.old.type} → {c.new.type}"
        if isinstance(c, Retyped)
        else f"mapped column '{c.name}' ({c.type}) was removed"
        for c in breaking
    ]
    raise SchemaDriftError(
        section_name,
        table,
        "; ".join(parts) + " since the section's last successful run, so nothing was read or written",
        f"restore the column(s) as they were, or change the mapping of section '{section_name}' in the config "
        "file and run again; to accept the table's new shape as it is, run "
        f"`{ACCEPT_COMMAND} --section {section_name}`",
    )


def mapped_columns(section: CrmSection | UsageSection) -> set[str]:
    """The source columns ``section`` maps: its key column and every field's column."""
    if isinstance(section, CrmSection):
        return {section.warehouse_key, *(f.warehouse for f in section.fields)}
    return {section.key, *section.fields.values()}


def added_columns(log: Iterable[str]) -> list[str]:
    """The names of the added columns a run's log reports (for the asset's ``schema_added_columns``)."""
    for line in log:
        if line.startswith(ADDED_NOTE):
            return [part.split(" ", 1)[0] for part in line[len(ADDED_NOTE) :].split("; ")]
    return []


def _retyped(change: Retyped) -> str:
    return f"{change.new.name} {change.old.type} → {change.new.type}"
