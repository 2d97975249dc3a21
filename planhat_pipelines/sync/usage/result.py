"""What a usage run did and where it is: :class:`UsageResult`, :class:`RangeCounts`, :class:`UsageProgress`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class UsageProgress:
    """Where a running usage run is, after each committed batch.

    Attributes:
        section: The section's name.
        phase: ``retry``, ``lookback``, ``range`` or ``invalid keys``.
        rows_read: Rows read so far by the run.
        inserted: Rows inserted so far.
        rejected: Rows rejected so far.
        key: The highest key of the batch just committed (None in the invalid-keys scan).
        after: Where the current read started (exclusive; None when it has no lower bound).
        through: Where the current read ends: the range's end, or the source's highest key if that is lower
            (None when the read has no upper bound).
        seconds: Time since the run started.
        read_seconds: Time since the current read started.
    """

    section: str
    phase: str
    rows_read: int
    inserted: int
    rejected: int
    key: int | None
    after: int | None
    through: int | None
    seconds: float
    read_seconds: float

    @property
    def rate(self) -> float:
        """Rows read per second so far."""
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        """Time left in the current read, from its key speed so far (None when it cannot be told)."""
        if None in (self.key, self.after, self.through) or self.read_seconds <= 0:
            return None
        assert self.key is not None and self.after is not None and self.through is not None
        done = self.key - self.after
        return None if done <= 0 else max(self.through - self.key, 0) * self.read_seconds / done

    def describe(self) -> str:
        """One log line: counts, the current key against the read's end, rate and estimated time left."""
        text = (
            f"{self.section} ({self.phase}): {self.rows_read:,} read, {self.inserted:,} inserted, "
            f"{self.rejected:,} rejected"
        )
        if self.key is not None and self.through is not None:
            text += f"; key {self.key:,} of {self.through:,}"
            if self.after is not None and self.through > self.after:
                text += f" ({100 * (self.key - self.after) // (self.through - self.after)}%)"
        text += f"; {self.rate:,.0f} rows/s"
        left = self.seconds_left
        return text if left is None else text + f"; about {left:,.0f} s left in this read"


ProgressFn = Callable[[UsageProgress], None]


@dataclass(frozen=True)
class BatchCounts:
    """What one batch did: rows inserted, already loaded, newly rejected, rejected again unchanged; rejects resolved."""

    inserted: int
    unchanged: int
    rejected: int
    still_rejected: int
    resolved: int


@dataclass(frozen=True)
class RangeCounts:
    """What a run did in one key range (or, for :meth:`UsageResult.counts`, in all so far)."""

    rows_read: int = 0
    inserted: int = 0
    unchanged: int = 0
    rejected: int = 0
    still_rejected: int = 0

    def __sub__(self, other: RangeCounts) -> RangeCounts:
        return RangeCounts(
            self.rows_read - other.rows_read,
            self.inserted - other.inserted,
            self.unchanged - other.unchanged,
            self.rejected - other.rejected,
            self.still_rejected - other.still_rejected,
        )

    def metadata(self) -> dict[str, int]:
        return {
            "rows_read": self.rows_read,
            "inserted": self.inserted,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "still_rejected": self.still_rejected,
        }


@dataclass
class UsageResult:
    """What one usage run did, over all the ranges it loaded.

    ``rows_read`` counts every row read (retries, the lookback and the invalid-key scan included); it equals
    ``inserted + unchanged + rejected + still_rejected``. ``rejected`` counts rows this run rejected anew;
    ``still_rejected`` counts rows of open rejects read again unchanged (same key, same values), so a bad row
    that stays in the source is reported once, not by every run that reads it.
    """

    section: str
    rows_read: int = 0
    inserted: int = 0
    unchanged: int = 0
    rejected: int = 0
    still_rejected: int = 0
    resolved_rejects: int = 0
    batches: int = 0
    cursor_before: int | None = None
    cursor_after: int | None = None
    ranges: list[str] = field(default_factory=list)
    per_range: dict[str, RangeCounts] = field(default_factory=dict)
    seconds: float = 0.0
    #: Notes for the sync log beside the counts (e.g. the source columns added since the last run).
    log: list[str] = field(default_factory=list)
    #: The run was a preview (``dry_run``): nothing it counted was written.
    preview: bool = False

    def counts(self) -> RangeCounts:
        """The run's counts so far (to tell one range's share by difference)."""
        return RangeCounts(self.rows_read, self.inserted, self.unchanged, self.rejected, self.still_rejected)

    def add(self, counts: BatchCounts) -> None:
        self.rows_read += counts.inserted + counts.unchanged + counts.rejected + counts.still_rejected
        self.inserted += counts.inserted
        self.unchanged += counts.unchanged
        self.rejected += counts.rejected
        self.still_rejected += counts.still_rejected
        self.resolved_rejects += counts.resolved
        self.batches += 1

    def metadata(self) -> dict[str, float | int | str]:
        return {
            "rows_read": self.rows_read,
            "inserted": self.inserted,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "still_rejected": self.still_rejected,
            "resolved_rejects": self.resolved_rejects,
            "batches": self.batches,
            "ranges": len(self.ranges),
            "cursor_before": "" if self.cursor_before is None else str(self.cursor_before),
            "cursor_after": "" if self.cursor_after is None else str(self.cursor_after),
            "duration_seconds": round(self.seconds, 3),
        }
