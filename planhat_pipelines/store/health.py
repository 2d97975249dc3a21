"""The health log: one ``connection_health`` row per credentials probe of a connection."""

from __future__ import annotations

from datetime import UTC, datetime

from planhat_pipelines.store.transactions import Transactional


def _naive_utc(value: datetime | None) -> datetime | None:
    # The store's TIMESTAMP columns hold UTC wall-clock times.
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


class HealthLog(Transactional):
    """The ``connection_health`` table: append a probe's status, read the latest ones."""

    def record_health(
        self,
        connection: str,
        checked_at: datetime,
        status: str,
        *,
        error: str | None = None,
        fix: str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        """Append one probe's status of ``connection`` (aware times are stored as UTC, naive ones as given).

        Args:
            connection: The connection's name.
            checked_at: When it was probed.
            status: ``ok``, ``expiring`` or ``failing``.
            error: What failed or is about to, else None.
            fix: What to do about ``error``, else None.
            expires_at: When the credentials expire, if known.
        """
        self.write(
            "INSERT INTO connection_health (connection, checked_at, status, error, fix, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [connection, _naive_utc(checked_at), status, error, fix, _naive_utc(expires_at)],
        )

    def recent_health(self, limit_per_connection: int = 3) -> list[tuple[str, datetime, str, str | None, str | None]]:
        """The newest ``limit_per_connection`` statuses of each connection as (connection, checked_at, status,
        error, fix), ordered by connection, newest first."""
        rows = self.con.execute(
            "SELECT connection, checked_at, status, error, fix FROM connection_health "
            "QUALIFY row_number() OVER (PARTITION BY connection ORDER BY checked_at DESC) <= ? "
            "ORDER BY connection, checked_at DESC",
            [int(limit_per_connection)],
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
