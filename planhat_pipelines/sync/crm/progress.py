"""Progress of a running CRM section: :class:`CrmProgress` and the per-phase :class:`Reporter`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class CrmProgress:
    """Where a running section is: after every batch read from the warehouse, the store upsert, every send batch.

    Attributes:
        section: The section's name.
        phase: ``read`` (warehouse rows staged: receive's source rows, or send's comparison read of the
            target), ``validate`` (the staged rows are checked and converted, before the store write),
            ``write`` (the store upsert is done) or ``send`` (records merged into the warehouse).
        rows: Rows done so far in this phase.
        total: Rows the phase will handle, when known (a change-tracking read, the upsert, the send);
            None for a full read, whose size the warehouse is not asked for.
        seconds: Time since the phase started.
    """

    section: str
    phase: str
    rows: int
    total: int | None
    seconds: float

    @property
    def rate(self) -> float:
        """Rows per second in this phase so far."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        """Time left in this phase at the rate so far (None when done, or when the total or rate is unknown)."""
        if self.total is None or self.rows <= 0 or self.seconds <= 0 or self.rows >= self.total:
            return None
        return max(self.total - self.rows, 0) / self.rate

    def describe(self) -> str:
        """One log line: rows so far (of the total, with a percentage, when known), rate and time left."""
        text = f"{self.section} ({self.phase}): {self.rows:,}"
        if self.total is not None:
            share = 100 * self.rows // self.total if self.total else 100
            text += f" of {self.total:,} rows ({share}%)"
        else:
            text += " rows"
        text += f"; {self.rate:,.0f} rows/s"
        left = self.seconds_left
        return text if left is None else text + f"; about {left:,.0f} s left"


CrmProgressFn = Callable[[CrmProgress], None]


class Reporter:
    """Hands one phase's running row count to a progress callback (a no-op without one)."""

    def __init__(self, section: str, progress: CrmProgressFn | None, phase: str, total: int | None = None) -> None:
        self.section, self.progress, self.phase, self.total = section, progress, phase, total
        self.rows = 0
        self.started = time.perf_counter()

    def add(self, rows: int) -> None:
        """Count ``rows`` more as done and report."""
        self.rows += rows
        if self.progress is not None:
            seconds = time.perf_counter() - self.started
            self.progress(CrmProgress(self.section, self.phase, self.rows, self.total, seconds))

    def counted(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """``batches`` unchanged, reporting after each one is read (one call per batch, never per row)."""
        for batch in batches:
            self.add(batch.num_rows)
            yield batch
