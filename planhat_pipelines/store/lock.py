"""Who holds a DuckDB-file catalog's lock, and what a person should do about it.

Only the single-process catalog kind locks (SQLite and PostgreSQL catalogs do not): DuckDB allows one
writing process per file. Its lock error names the holder ("Conflicting lock is held
in <exe> (PID n)"); the holder's command line (``/proc/<pid>/cmdline`` on Linux) tells a Dagster run
(wait for it: runs that write the store are serialised by the pool) from a person's SQL shell or
notebook (close it: it will not let go by itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")

#: How long an open waits for a holder that is not a Dagster process before saying to close it. Long enough
#: for a short script to finish, short enough that a person is not left staring at a silent terminal.
SHELL_GRACE_S = 5.0

#: ``dagster api <verb>``: the process that executes a run (or one of its steps).
_RUN_VERBS = {"execute_run", "resume_run", "execute_step"}


class HolderKind(Enum):
    """What kind of process holds the store."""

    RUN = "run"  # a Dagster run worker (or a CLI that executes runs in-process)
    DAGSTER = "dagster"  # another Dagster or planhat-pipelines process: a sensor tick, a short command
    OTHER = "other"  # anything else: a duckdb shell, a Python session, a notebook
    UNKNOWN = "unknown"  # DuckDB did not name a holder


@dataclass(frozen=True)
class LockHolder:
    """The process DuckDB named as holding the file."""

    kind: HolderKind
    pid: int | None = None
    command: str = ""

    @property
    def waits_by_itself(self) -> bool:
        """Whether the holder lets go without anyone acting (a run ends, a sensor tick ends)."""
        return self.kind in (HolderKind.RUN, HolderKind.DAGSTER, HolderKind.UNKNOWN)

    def describe(self) -> str:
        """The holder in a few words, e.g. ``PID 42 (duckdb /data/store.duckdb)``."""
        if self.pid is None:
            return "another process"
        return f"PID {self.pid} ({self.command})" if self.command else f"PID {self.pid}"


def lock_holder(error_text: str) -> LockHolder:
    """The holder named in a DuckDB lock error, classified by its command line."""
    match = _HOLDER.search(error_text)
    if match is None:
        return LockHolder(HolderKind.UNKNOWN)
    pid = int(match.group("pid"))
    argv = _cmdline(pid)
    command = " ".join(argv) if argv else match.group("exe")
    if len(command) > 160:
        command = command[:157] + "..."
    return LockHolder(classify(argv or [match.group("exe")]), pid, command)


def classify(argv: list[str]) -> HolderKind:
    """A run worker, another Dagster / planhat-pipelines process, or anything else, from its argv."""
    words = [Path(a).name if "/" in a and " " not in a else a for a in argv]
    for i, word in enumerate(words[:-1]):
        if word == "api" and words[i + 1] in _RUN_VERBS:
            return HolderKind.RUN
    dagster = any(w.startswith(("dagster", "dagster-", "dagster_")) for w in words)
    if dagster and ("materialize" in words or ("job" in words and {"execute", "backfill", "launch"} & set(words))):
        return HolderKind.RUN
    ours = any(w in ("planhat-pipelines", "planhat_pipelines.cli") for w in words)
    if ours and "demo" in words:  # `make demo` executes its runs in its own process
        return HolderKind.RUN
    if dagster or ours:
        return HolderKind.DAGSTER
    return HolderKind.OTHER


def _cmdline(pid: int) -> list[str]:
    """The process's argv, or [] where /proc cannot say (another OS, another namespace, it has exited)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


#: What every lock message adds: the catalog kind that does not lock.
_SHARE = (
    "a DuckDB-file catalog is for one process at a time; to let syncs, sensors and readers share the store, "
    "use a SQLite catalog ('store: catalog: data/planhat.sqlite')"
)


def lock_message(path: Path, holder: LockHolder, exc: BaseException) -> str:
    """The error for a DuckDB-file catalog that stayed locked: who holds it and what to do, by kind of holder."""
    head = f"model store '{path}' cannot be opened: another process holds it"
    if holder.kind is HolderKind.RUN:
        return (
            f"{head}: a Dagster run, {holder.describe()}. Fix: wait for that run to finish and retry (a section's "
            f"runs queue in its section's pool, but runs of other sections meet here); {_SHARE}"
        )
    if holder.kind is HolderKind.DAGSTER:
        return (
            f"{head}: a Dagster or planhat-pipelines process, {holder.describe()}, has kept it open. Fix: retry in "
            f"a minute; if it stays, stop that process; {_SHARE}"
        )
    if holder.kind is HolderKind.OTHER:
        return (
            f"{head}: {holder.describe()}, which is not a Dagster run (a duckdb shell, a Python session or a "
            f"notebook with the file open). Fix: close it (or its connection) and retry; {_SHARE}"
        )
    return f"{head} ({str(exc).splitlines()[0]}). Fix: wait for the other process and retry; {_SHARE}"
