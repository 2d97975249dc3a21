"""OKR values: one ``okr_values`` row per key-result refresh or manual check-in, the key result's history."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import datetime

from planhat_pipelines.store.transactions import Transactional

#: ``okr_values.source`` of a value the key result's query returned.
SOURCE_QUERY = "query"
#: ``okr_values.source`` of a value someone checked in by hand.
SOURCE_CHECKIN = "checkin"
#: ``okr_values.status`` of a refresh that failed (the error column says why).
STATUS_ERROR = "error"

#: A key result's mode: ``automatic`` (the hourly query sets the value) or ``manual`` (check-ins stand until the
#: mode is switched back). One row per switch; the latest row per key result is its mode (none: automatic).
OKR_MODES_DDL = """CREATE TABLE IF NOT EXISTS okr_modes (
        key_result VARCHAR NOT NULL, mode VARCHAR NOT NULL, changed_at TIMESTAMP NOT NULL)"""

_COLUMNS = 'key_result, objective, recorded_at, "value", source, progress, expected, status, error'


@dataclass(frozen=True)
class OkrValue:
    """One row of ``okr_values``.

    Attributes:
        key_result: The key result's name.
        objective: Its objective's name.
        recorded_at: When it was recorded (naive UTC).
        value: The number; None for a failed refresh.
        source: ``query`` or ``checkin``.
        progress: Progress when recorded (None for a KPI or a failure).
        expected: Expected progress when recorded (None for a KPI or a failure).
        status: ``on_track``, ``behind``, ``at_risk``, ``error``, or None for a KPI.
        error: Why the refresh failed, else None.
    """

    key_result: str
    objective: str
    recorded_at: datetime
    value: float | None
    source: str
    progress: float | None
    expected: float | None
    status: str | None
    error: str | None


@dataclass(frozen=True)
class LatestOkrValue:
    """A key result's latest row among its successes or among its failures.

    Attributes:
        row: The row.
        is_error: Whether it is a failed refresh (``status = 'error'``).
        seq: Its position in write order (breaks ties on ``recorded_at``).
    """

    row: OkrValue
    is_error: bool
    seq: int


class OkrValues(Transactional):
    """The ``okr_values`` table: append a row, read a key result's history and the latest rows."""

    def append_okr_value(self, row: OkrValue) -> None:
        """Append ``row`` to ``okr_values``."""
        self.write(f"INSERT INTO okr_values ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", list(astuple(row)))

    def okr_history(self, key_result: str) -> list[OkrValue]:
        """Every row of one key result, oldest first (ties in the order they were written)."""
        rows = self.con.execute(
            f"SELECT {_COLUMNS} FROM okr_values WHERE key_result = ? ORDER BY recorded_at, rowid", [key_result]
        ).fetchall()
        return [OkrValue(*r) for r in rows]

    def latest_okr_values(self) -> list[LatestOkrValue]:
        """Per key result, its latest successful row and its latest failed one (each when there is one).

        Latest means the newest ``recorded_at``, ties going to the row written last.
        """
        rows = self.con.execute(
            f"SELECT {_COLUMNS}, is_error, seq FROM (SELECT *, rowid AS seq, coalesce(status = ?, false) AS is_error, "
            "row_number() OVER (PARTITION BY key_result, coalesce(status = ?, false) ORDER BY recorded_at DESC, "
            "rowid DESC) AS rn FROM okr_values) WHERE rn = 1",
            [STATUS_ERROR, STATUS_ERROR],
        ).fetchall()
        return [LatestOkrValue(OkrValue(*r[:9]), bool(r[9]), int(r[10])) for r in rows]
