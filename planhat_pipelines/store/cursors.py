"""Sync cursors: where each section (and each usage key range) has read up to."""

from __future__ import annotations

from planhat_pipelines.store.transactions import Transactional


class Cursors(Transactional):
    """The ``sync_cursors`` table: one value per (section, scope)."""

    def get_cursor(self, section: str, scope: str = "") -> str | None:
        """The cursor of ``section`` in ``scope`` (``""`` for a CRM section), or None before its first run."""
        rows = self.con.execute(
            'SELECT "value" FROM sync_cursors WHERE section = ? AND scope = ?', [section, scope]
        ).fetchall()
        return rows[0][0] if rows else None

    def set_cursor(self, section: str, scope: str, value: str) -> None:
        """Move a cursor; call inside the same :meth:`transaction` as the data it covers."""
        # MERGE, not ON CONFLICT: DuckLake tables have no primary key to conflict on.
        self.write(
            'MERGE INTO sync_cursors t USING (SELECT ? AS section, ? AS scope, ? AS "value") s '
            "ON t.section = s.section AND t.scope = s.scope "
            'WHEN MATCHED THEN UPDATE SET "value" = s."value", updated_at = now() '
            'WHEN NOT MATCHED THEN INSERT (section, scope, "value", updated_at) '
            'VALUES (s.section, s.scope, s."value", now())',
            [section, scope, value],
        )

    def cursors(self, section: str) -> dict[str, str]:
        """Every cursor of ``section``, by scope (a usage section has one per key range)."""
        rows = self.con.execute(
            'SELECT scope, "value" FROM sync_cursors WHERE section = ? ORDER BY scope', [section]
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def loaded_through(self, section: str) -> int | None:
        """The highest key any range of usage section ``section`` has committed; None before any.

        A usage section's cursors are its ranges' highest committed keys (integers), so the section is
        loaded through the largest of them.
        """
        return max((int(v) for v in self.cursors(section).values()), default=None)
