"""The store's side of the asset checks: key uniqueness, keys above the cursor, counts and freshness."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.store.transactions import Transactional


class StoreChecks(Transactional):
    """Read-only queries the asset checks ask of the store's tables."""

    def last_success(self, section: str) -> tuple[datetime | None, float | None]:
        """(ended_at, age in seconds) of the section's last successful run, both None if there is none."""
        # ended_at was written with now() in the same session time zone, so compare in SQL.
        row = self.con.execute(
            "SELECT max(ended_at), date_diff('second', max(ended_at), CAST(now() AS TIMESTAMP)) FROM sync_runs "
            "WHERE section = ? AND status = 'success'",
            [section],
        ).fetchall()[0]
        return row[0], None if row[1] is None else float(row[1])

    def duplicate_planhat_keys(self, model: str, key: str) -> list[tuple[str, int]]:
        """(value as text, count) of every non-null ``key`` value stored more than once in model table ``model``,
        most repeated first."""
        table, column = q(model), q(key)
        rows = self.con.execute(
            f"SELECT CAST({column} AS VARCHAR), count(*) FROM {table} WHERE {column} IS NOT NULL "
            f"GROUP BY {column} HAVING count(*) > 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        return [(r[0], int(r[1])) for r in rows]

    def duplicate_usage_keys(self, section: str, table: str) -> int:
        """How many keys usage section ``section`` stores more than once in ``table``."""
        rows = self.con.execute(
            f'SELECT count(*) FROM (SELECT "key" FROM {q(table)} WHERE section = ? GROUP BY "key" HAVING count(*) > 1)',
            [section],
        ).fetchall()
        return int(rows[0][0])

    def usage_rows_above(self, section: str, table: str, through: int | None) -> tuple[int, str | None]:
        """(count, lowest key as text) of the section's rows in ``table`` with a key above ``through``.

        Args:
            through: The loaded-through cursor; None (no cursor yet) counts every row of the section.
        """
        above_sql = "" if through is None else ' AND "key" > CAST(? AS HUGEINT)'
        row = self.con.execute(
            f'SELECT count(*), CAST(min("key") AS VARCHAR) FROM {q(table)} WHERE section = ?{above_sql}',
            [section] if through is None else [section, str(through)],
        ).fetchall()[0]
        return int(row[0]), row[1]

    def usage_key_stats(self, section: str, table: str, through: int) -> tuple[int, int, int]:
        """Over the section's keys at or below ``through``: (stored rows, keys of open retryable rejects not
        stored, stored rows + those keys).

        Two counts, no DISTINCT over the stored keys: a stored key is stored once (``unique_keys`` checks that;
        a key stored twice makes the sum exceed the source's distinct keys, so this check fails too). The
        rejects (few) are matched against the stored keys by a join that builds on the rejects.
        """
        row = self.con.execute(
            f'WITH s AS (SELECT "key" FROM {q(table)} WHERE section = ? AND "key" <= CAST(? AS HUGEINT)), '
            'r AS (SELECT DISTINCT TRY_CAST("key" AS HUGEINT) AS "key" FROM rejected_rows WHERE section = ? '
            'AND resolved_at IS NULL AND NOT permanent AND TRY_CAST("key" AS HUGEINT) <= CAST(? AS HUGEINT)) '
            "SELECT (SELECT count(*) FROM s), "
            '(SELECT count(*) FROM r LEFT JOIN (SELECT "key" FROM s WHERE "key" IN (SELECT "key" FROM r)) m '
            'ON m."key" = r."key" WHERE m."key" IS NULL)',
            [section, str(through), section, str(through)],
        ).fetchall()[0]
        stored, rejected = int(row[0]), int(row[1])
        return stored, rejected, stored + rejected

    def missing_usage_keys(self, section: str, table: str, keys: pa.Array | pa.ChunkedArray) -> tuple[int | None, int]:
        """(lowest, count) of the distinct valid ``keys`` that the section neither stores in ``table`` nor has
        as open rejects (``keys`` is one batch of a source key column; invalid keys are left out)."""
        self.con.register("__check_keys", pa.table({"k": keys}))
        try:
            low, n = self.con.execute(
                "SELECT min(k), count(*) FROM (SELECT DISTINCT TRY_CAST(trim(CAST(k AS VARCHAR)) AS HUGEINT) AS k "
                f'FROM __check_keys) b WHERE k NOT IN (SELECT "key" FROM {q(table)} WHERE section = ?) '
                'AND CAST(k AS VARCHAR) NOT IN (SELECT "key" FROM rejected_rows WHERE section = ? '
                "AND resolved_at IS NULL)",
                [section, section],
            ).fetchall()[0]
        finally:
            self.con.unregister("__check_keys")
        return None if low is None else int(low), int(n)
