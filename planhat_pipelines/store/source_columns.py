"""The source columns each section saw at its last successful run: the baseline schema drift compares with.

One row per column of the section's table (``source_columns``). A run records its columns only when they
differ from the recorded ones (or none are recorded yet), at the end of the run and only if it succeeded:
a run that failed on drift therefore leaves the old baseline, so every run after it fails the same way until
the table or the mapping is fixed (or the new shape is accepted), instead of the second run passing silently.
"""

from __future__ import annotations

from collections.abc import Sequence

from planhat_pipelines.store.transactions import Transactional
from planhat_pipelines.warehouses.tables import Column, ColumnKind

SOURCE_COLUMNS_DDL = """CREATE TABLE IF NOT EXISTS source_columns (
        section VARCHAR NOT NULL, "column" VARCHAR NOT NULL, type VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        seen_at TIMESTAMP NOT NULL, run_id VARCHAR)"""


class SourceColumns(Transactional):
    """The ``source_columns`` table: read and replace a section's recorded source columns."""

    def last_source_columns(self, section: str) -> tuple[Column, ...] | None:
        """The columns recorded for ``section`` (in the table's order), or None before its first recording."""
        rows = self.con.execute(
            'SELECT "column", type, kind FROM source_columns WHERE section = ? ORDER BY rowid', [section]
        ).fetchall()
        if not rows:
            return None
        return tuple(Column(name, type_, _kind(kind)) for name, type_, kind in rows)

    def record_source_columns(self, section: str, columns: Sequence[Column], run_id: str | None) -> None:
        """Replace the recorded columns of ``section`` with ``columns`` (one transaction, a few rows)."""

        def replace() -> None:
            self.con.execute("DELETE FROM source_columns WHERE section = ?", [section])
            if not columns:
                return
            values = ", ".join("(?, ?, ?, ?, now(), ?)" for _ in columns)
            params: list[object] = []
            for c in columns:
                params += [section, c.name, c.type, c.kind.value, run_id]
            self.con.execute(
                f'INSERT INTO source_columns (section, "column", type, kind, seen_at, run_id) VALUES {values}', params
            )

        self.atomic(replace)


def _kind(value: str) -> ColumnKind:
    try:
        return ColumnKind(value)
    except ValueError:
        return ColumnKind.OTHER
