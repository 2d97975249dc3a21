"""What one CRM section run did: :class:`CrmResult`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from planhat_pipelines.store.change_log import Change


@dataclass
class CrmResult:
    """What one section run did; the asset turns it into metadata and the sync log stores it.

    Attributes:
        section: The section's name.
        rows_read: Warehouse rows read by receive (all rows on a full read, changed rows otherwise).
        inserted: Store records created.
        updated: Store records changed.
        unchanged: Rows read whose record already held the same values.
        rejected: Rows rejected (bad key, unknown company, unconvertible value, ...).
        resolved_rejects: Earlier rejects that this run accepted or no longer saw.
        sent: Records written to the warehouse by send.
        deleted: Deletes reported by change tracking (applied only as ``on_missing`` says).
        removed: Store records archived or deleted because their rows left the source (``on_missing``).
        restored: Archived records whose rows came back (un-archived).
        mirrored: Warehouse rows deleted because their records left the store (``mirror``).
        preview: The run was a preview: nothing it counted was written.
        samples: Some of the changes it made (or, in a preview, would make), newest first.
        full_read: Whether receive read the whole table.
        cursor_before: The change-tracking cursor before the run.
        cursor_after: The cursor after the run.
        log: Human-readable lines about what happened and why.
    """

    section: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    resolved_rejects: int = 0
    sent: int = 0
    deleted: int = 0
    removed: int = 0
    restored: int = 0
    mirrored: int = 0
    full_read: bool = False
    cursor_before: str | None = None
    cursor_after: str | None = None
    log: list[str] = field(default_factory=list)
    preview: bool = False
    samples: list[Change] = field(default_factory=list)

    def combine(self, other: CrmResult) -> CrmResult:
        """This result followed by ``other`` (receive then send)."""
        return replace(
            self,
            rows_read=self.rows_read + other.rows_read,
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
            rejected=self.rejected + other.rejected,
            resolved_rejects=self.resolved_rejects + other.resolved_rejects,
            sent=self.sent + other.sent,
            deleted=self.deleted + other.deleted,
            removed=self.removed + other.removed,
            restored=self.restored + other.restored,
            mirrored=self.mirrored + other.mirrored,
            full_read=self.full_read or other.full_read,
            cursor_after=other.cursor_after,
            log=[*self.log, *other.log],
        )
