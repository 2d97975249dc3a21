"""OKR values and modes.

``okr_values``: one row per key-result refresh or manual check-in, the key result's history.
``okr_modes``: one row per switch between ``automatic`` and ``manual``; the latest is the key result's mode.
"""

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

#: The mode of a key result whose value the hourly query sets (also: no ``okr_modes`` row at all).
MODE_AUTOMATIC = "automatic"
#: The mode of a key result whose check-ins stand: the hourly refresh skips it.
MODE_MANUAL = "manual"
#: Every mode, in the order the CLI offers them.
MODES = (MODE_MANUAL, MODE_AUTOMATIC)

#: A key result's mode: ``automatic`` (the hourly query sets the value) or ``manual`` (check-ins stand until the
#: mode is switched back). One row per switch; the latest row per key result is its mode (none: automatic).
OKR_MODES_DDL = """CREATE TABLE IF NOT EXISTS okr_modes (
        key_result VARCHAR NOT NULL, mode VARCHAR NOT NULL, changed_at TIMESTAMP NOT NULL)"""

_COLUMNS = 'key_result, objective, recorded_at, "value", source, progress, expected, status, error'

# The latest switch per key result: the newest changed_at, ties going to the row written last.
_LATEST_MODES = (
    "SELECT key_result, mode, changed_at FROM (SELECT *, row_number() OVER (PARTITION BY key_result "
    "ORDER BY changed_at DESC, rowid DESC) AS rn FROM okr_modes) WHERE rn = 1"
)


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


@dataclass(frozen=True)
class OkrMode:
    """A key result's latest ``okr_modes`` row.

    Attributes:
        key_result: The key result's name.
        mode: :data:`MODE_AUTOMATIC` or :data:`MODE_MANUAL`.
        changed_at: When it was switched (naive UTC).
    """

    key_result: str
    mode: str
    changed_at: datetime


class OkrValues(Transactional):
    """The ``okr_values`` and ``okr_modes`` tables: append rows, read history, latest rows and modes."""

    def append_okr_value(self, row: OkrValue) -> None:
        """Append ``row`` to ``okr_values``."""
        self.write(f"INSERT INTO okr_values ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", list(astuple(row)))

    def okr_history(self, key_result: str) -> list[OkrValue]:
        """Every row of one key result, oldest first (ties in the order they were written)."""
        rows = self.con.execute(
            f"SELECT {_COLUMNS} FROM okr_values WHERE key_result = ? ORDER BY recorded_at, rowid", [key_result]
        ).fetchall()
        return [OkrValue(*r) for r in rows]

    def latest_okr_values(self, key_result: str | None = None) -> list[LatestOkrValue]:
        """Per key result, its latest successful row and its latest failed one (each when there is one).

        Latest means the newest ``recorded_at``, ties going to the row written last. For a key result in
        manual mode, query rows recorded after the switch to manual are left out (the refresh writes none,
        but one that was already running when the mode was switched may still land): its check-ins, and
        what it had before the switch, stand.

        Args:
            key_result: Only this key result's rows (default: every key result's).
        """
        only = "AND v.key_result = ?" if key_result is not None else ""
        rows = self.con.execute(
            f"WITH modes AS ({_LATEST_MODES}) "
            f"SELECT {_COLUMNS}, is_error, seq FROM (SELECT v.*, v.rowid AS seq, "
            "coalesce(v.status = ?, false) AS is_error, row_number() OVER (PARTITION BY v.key_result, "
            "coalesce(v.status = ?, false) ORDER BY v.recorded_at DESC, v.rowid DESC) AS rn "
            # m matches only the query rows a switch to manual sets aside; the anti-join drops them.
            "FROM okr_values v LEFT JOIN modes m ON m.key_result = v.key_result "
            "AND m.mode = ? AND v.source = ? AND v.recorded_at > m.changed_at "
            f"WHERE m.key_result IS NULL {only}) WHERE rn = 1",
            [STATUS_ERROR, STATUS_ERROR, MODE_MANUAL, SOURCE_QUERY, *([key_result] if key_result is not None else [])],
        ).fetchall()
        return [LatestOkrValue(OkrValue(*r[:9]), bool(r[9]), int(r[10])) for r in rows]

    def set_okr_mode(self, key_result: str, mode: str, at: datetime) -> None:
        """Record a switch of ``key_result`` to ``mode`` at ``at`` (naive UTC): one new ``okr_modes`` row.

        Raises:
            ValueError: ``mode`` is neither :data:`MODE_AUTOMATIC` nor :data:`MODE_MANUAL`.
        """
        if mode not in MODES:
            raise ValueError(f"unknown OKR mode {mode!r}: use one of {', '.join(MODES)}")
        self.write("INSERT INTO okr_modes (key_result, mode, changed_at) VALUES (?, ?, ?)", [key_result, mode, at])

    def latest_okr_modes(self) -> dict[str, OkrMode]:
        """Each key result's latest switch; a key result that was never switched is absent (automatic)."""
        rows = self.con.execute(_LATEST_MODES).fetchall()
        return {r[0]: OkrMode(*r) for r in rows}

    def okr_modes(self) -> dict[str, str]:
        """Each switched key result's mode by name; one that is absent is automatic."""
        return {name: m.mode for name, m in self.latest_okr_modes().items()}
