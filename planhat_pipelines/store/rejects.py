"""Rejected rows: one ``rejected_rows`` record per bad source row, open until a later run no longer sees it."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from planhat_pipelines.store.transactions import Transactional


class Rejects(Transactional):
    """The ``rejected_rows`` table: record, count, resolve and list rejects."""

    def record_rejects(
        self,
        section: str,
        run_id: str,
        rejects: pa.Table,
        *,
        resolve_others: bool,
        scope_keys: Sequence[str] | None = None,
    ) -> int:
        """Store this run's rejects, one record per source row, and mark earlier ones resolved.

        ``rejects`` has columns ``key`` and ``reason``, and optionally ``fingerprint`` (text telling apart
        rows that share a key, e.g. both copies of a duplicate key or several null-key rows; default: the
        reason), ``value`` (the offending value as text) and ``permanent`` (a reject no retry can fix). A row
        seen again with the same key and fingerprint updates its record instead of adding one.

        With ``resolve_others`` (a full read saw every source row), open rejects of the section that this
        run did not record again are marked resolved. Otherwise only those whose key is in ``scope_keys``
        (keys this run read) and that this run did not record again are. Returns how many were resolved.
        """
        con = self.con
        names = set(rejects.column_names)
        fingerprint = "CAST(fingerprint AS VARCHAR)" if "fingerprint" in names else "reason"
        value = 'CAST("value" AS VARCHAR)' if "value" in names else "NULL"
        permanent = "COALESCE(CAST(permanent AS BOOLEAN), false)" if "permanent" in names else "false"

        def record() -> int:
            # MERGE, not ON CONFLICT: DuckLake tables have no primary key to conflict on.
            con.execute(
                'MERGE INTO rejected_rows t USING (SELECT ? AS section, CAST("key" AS VARCHAR) AS "key", '
                f'{fingerprint} AS fingerprint, reason, {value} AS "value", {permanent} AS permanent '
                'FROM __rejects_in) s ON t.section = s.section AND t."key" = s."key" AND t.fingerprint = s.fingerprint '
                'WHEN MATCHED THEN UPDATE SET reason = s.reason, "value" = s."value", run_id = ?, last_seen = now(), '
                "resolved_at = NULL, permanent = s.permanent "
                'WHEN NOT MATCHED THEN INSERT (section, "key", fingerprint, reason, "value", run_id, first_seen, '
                'last_seen, resolved_at, permanent) VALUES (s.section, s."key", s.fingerprint, s.reason, s."value", '
                "?, now(), now(), NULL, s.permanent)",
                [section, run_id, run_id],
            )
            if resolve_others:
                return self.resolve_rejects(section, run_id)
            if scope_keys:
                return self.resolve_rejects(section, run_id, keys=scope_keys)
            return 0

        con.register("__rejects_in", rejects)
        try:
            resolved = self.atomic(record)
        finally:
            con.unregister("__rejects_in")
        return resolved

    def known_rejects(self, section: str, rejects: pa.Table) -> int:
        """How many of ``rejects`` (columns ``key``, ``fingerprint``) are open records seen again, unchanged."""
        self.con.register("__rejects_known", rejects.select(["key", "fingerprint"]))
        try:
            rows = self.con.execute(
                'SELECT count(*) FROM __rejects_known r JOIN rejected_rows t ON t.section = ? AND t."key" = r."key" '
                "AND t.fingerprint = r.fingerprint AND t.resolved_at IS NULL",
                [section],
            ).fetchall()
        finally:
            self.con.unregister("__rejects_known")
        return int(rows[0][0])

    def resolve_rejects(
        self,
        section: str,
        run_id: str,
        *,
        keys: Sequence[str] | str | None = None,
        permanent: bool | None = None,
    ) -> int:
        """Mark resolved the open rejects of ``section`` that run ``run_id`` did not record again.

        Args:
            keys: Only these keys (a list, or the name of a one-column ``key`` table or view in this
                connection); None for every key.
            permanent: Only permanent (True) or only retryable (False) rejects; None for both.

        Returns:
            How many records were resolved.
        """
        sql = (
            "UPDATE rejected_rows SET resolved_at = now() WHERE section = ? AND resolved_at IS NULL "
            "AND run_id IS DISTINCT FROM ?"
        )
        params: list[object] = [section, run_id]
        if permanent is not None:
            sql += " AND permanent = ?"
            params.append(permanent)
        registered = False
        if isinstance(keys, str):
            sql += f' AND "key" IN (SELECT CAST("key" AS VARCHAR) FROM {keys})'
        elif keys is not None:
            self.con.register("__resolve_keys", pa.table({"key": pa.array(list(keys), pa.string())}))
            registered = True
            sql += ' AND "key" IN (SELECT "key" FROM __resolve_keys)'
        try:
            return int(self.write(sql, params)[0][0])
        finally:
            if registered:
                self.con.unregister("__resolve_keys")

    def open_rejects(self, section: str | None = None) -> list[tuple[str, str, str, str]]:
        """Unresolved rejects as (section, key, reason, run_id)."""
        sql = 'SELECT section, "key", reason, run_id FROM rejected_rows WHERE resolved_at IS NULL'
        params: list[str] = []
        if section:
            sql += " AND section = ?"
            params.append(section)
        return [tuple(r) for r in self.con.execute(sql + ' ORDER BY section, "key"', params).fetchall()]

    def has_open_rejects(self, section: str, run_id: str) -> bool:
        """Whether ``section`` has open rejects that runs other than ``run_id`` recorded."""
        rows = self.con.execute(
            "SELECT count(*) FROM rejected_rows WHERE section = ? AND resolved_at IS NULL "
            "AND run_id IS DISTINCT FROM ?",
            [section, run_id],
        ).fetchall()
        return bool(rows[0][0])

    def retryable_reject_keys(self, section: str) -> list[int]:
        """The distinct numeric keys of the section's open, retryable (not permanent) rejects, ascending."""
        rows = self.con.execute(
            'SELECT DISTINCT CAST("key" AS HUGEINT) AS k FROM rejected_rows WHERE section = ? AND resolved_at IS NULL '
            'AND NOT permanent AND TRY_CAST("key" AS HUGEINT) IS NOT NULL ORDER BY k',
            [section],
        ).fetchall()
        return [int(k) for (k,) in rows]
