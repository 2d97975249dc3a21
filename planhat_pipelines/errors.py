"""Typed errors. Every message says where (file, section, field, row key) and what to do."""

from __future__ import annotations

#: How a message joins its problem and its fix; only this module splits a message there.
FIX_SEPARATOR = ". Fix: "


class PlanhatPipelinesError(Exception):
    """Base class of every error this package raises on purpose.

    Its message reads ``<where>: <problem>. Fix: <fix>``. The parts are fields, so callers (health statuses,
    Dagster failures, alerts, ``planhat-pipelines check``) read them instead of taking the message apart.

    Attributes:
        problem: Where and what went wrong (the message without its fix).
        fix: What to do about it ("" when the message gives no fix).
        transient: Whether trying again later can succeed (a dropped connection, a busy store, a 5xx) — such a
            failure is retried; every other one (a missing table, a view as a send target, a bad key column,
            refused credentials, a config mistake) needs a person and fails at once.
    """

    transient: bool = False

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        if fix is None:
            problem, sep, found = message.rpartition(FIX_SEPARATOR)
            self.problem, self.fix = (problem, found) if sep else (message, "")
            super().__init__(message)
        else:
            self.problem, self.fix = message, fix
            super().__init__(f"{message}{FIX_SEPARATOR}{fix}")


class TransientError(PlanhatPipelinesError):
    """A failure that a retry can fix: the store is busy, a warehouse is briefly unreachable or overloaded."""

    transient = True


class ConfigError(PlanhatPipelinesError):
    """The config file is wrong: the message names the file, the section, the field and the fix."""

    def __init__(self, path: str, where: str, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {where}: {problem}", fix=fix)
        self.path = path
        self.where = where
        # The bare problem: callers that name the file and location themselves read these three.
        self.problem = problem


class WarehouseError(PlanhatPipelinesError):
    """A warehouse refused an operation or an object does not fit the operation."""

    def __init__(self, connection: str, obj: str, problem: str, fix: str, *, transient: bool = False) -> None:
        super().__init__(f"connection '{connection}', {obj}: {problem}", fix=fix)
        self.connection = connection
        self.obj = obj
        self.transient = transient


class ReadOnlyTargetError(WarehouseError):
    """A send section targets a view; views are read-only."""


class CredentialsError(WarehouseError):
    """Credentials are missing, malformed, expired or refused."""


class KeyValidationError(PlanhatPipelinesError):
    """No row of a section had a usable key, or the key column itself cannot be used."""


class SyncError(PlanhatPipelinesError):
    """A sync section cannot run; the message names the section and the fix."""


class OkrQueryError(PlanhatPipelinesError):
    """A key result's SQL was refused or returned something other than one number."""


class SchemaDriftError(SyncError):
    """A mapped source column was removed or changed type since the section's last successful run.

    Not transient (a retry sees the same table): the run fails before it writes anything, naming the section,
    the table, each column with its old and new type, and the fix.
    """

    def __init__(self, section: str, table: str, problem: str, fix: str) -> None:
        super().__init__(f"section '{section}', table '{table}': {problem}", fix=fix)
        self.section = section
        self.table = table


class DeleteLimitError(SyncError):
    """A run would remove more records than its section's ``delete_limit`` allows; nothing was written."""
