"""Typed errors. Every message says where (file, section, field, row key) and what to do."""

from __future__ import annotations


class PlanhatPipelinesError(Exception):
    """Base class of every error this package raises on purpose.

    Attributes:
        transient: Whether trying again later can succeed (a dropped connection, a busy store, a 5xx) — such a
            failure is retried; every other one (a missing table, a view as a send target, a bad key column,
            refused credentials, a config mistake) needs a person and fails at once.
    """

    transient: bool = False


class TransientError(PlanhatPipelinesError):
    """A failure that a retry can fix: the store is busy, a warehouse is briefly unreachable or overloaded."""

    transient = True


class ConfigError(PlanhatPipelinesError):
    """The config file is wrong: the message names the file, the section, the field and the fix."""

    def __init__(self, path: str, where: str, problem: str, fix: str) -> None:
        self.path = path
        self.where = where
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path}: {where}: {problem}. Fix: {fix}")


class WarehouseError(PlanhatPipelinesError):
    """A warehouse refused an operation or an object does not fit the operation."""

    def __init__(self, connection: str, obj: str, problem: str, fix: str, *, transient: bool = False) -> None:
        self.connection = connection
        self.obj = obj
        self.transient = transient
        super().__init__(f"connection '{connection}', {obj}: {problem}. Fix: {fix}")


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
