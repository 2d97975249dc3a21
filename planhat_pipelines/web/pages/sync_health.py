"""The sync health badge: is any connection's credential check or any section's last run failing right now?"""

from __future__ import annotations

from dataclasses import dataclass

from planhat_pipelines.config import Config
from planhat_pipelines.store import ModelStore


@dataclass(frozen=True)
class Failing:
    """One connection or section whose latest check or run failed."""

    kind: str  # connection | section
    name: str
    error: str | None


@dataclass(frozen=True)
class SyncHealth:
    """The badge: ``ok`` when nothing is failing, else what is."""

    failing: tuple[Failing, ...]

    @property
    def ok(self) -> bool:
        return not self.failing


#: Each connection's latest credential check, and each section's latest finished run, that failed.
_FAILING_SQL = """
SELECT 'connection' AS kind, connection AS name, error FROM (
    SELECT connection, status, error,
           row_number() OVER (PARTITION BY connection ORDER BY checked_at DESC) AS newest
    FROM connection_health) WHERE newest = 1 AND status = 'failing'
UNION ALL
SELECT 'section', section, error FROM (
    SELECT section, status, error, row_number() OVER (PARTITION BY section ORDER BY started_at DESC) AS newest
    FROM sync_runs WHERE status <> 'running') WHERE newest = 1 AND status = 'failed'
ORDER BY 1, 2
"""


def sync_health(store: ModelStore, config: Config) -> SyncHealth:
    """What is failing among the config's connections and sections (ones the config no longer names are left out)."""
    named = set(config.connections) | {s.name for s in config.crm} | {s.name for s in config.usage}
    rows = store.con.execute(_FAILING_SQL).fetchall()
    return SyncHealth(tuple(Failing(kind, name, error) for kind, name, error in rows if name in named))
