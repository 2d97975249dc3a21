"""Where the store lives: a DuckLake catalog (SQLite file, DuckDB file or PostgreSQL) and its data path.

- **SQLite** (the embedded default): one catalog file, many processes reading and writing at once on one
  machine. The file is put in WAL mode when created, so readers do not wait on a writer's commit.
- **DuckDB file**: single-process use only (DuckDB locks the file for one writing process), e.g. a notebook
  that owns the store.
- **PostgreSQL**: the scale-out catalog for runs on several machines; the data path is then a folder all of
  them share or object storage (``s3://`` / ``gs://`` through httpfs).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.sql_quoting import quote_literal

CatalogKind = Literal["sqlite", "duckdb", "postgres"]

#: File suffixes read as a SQLite catalog (anything else that is a path is a DuckDB-file catalog).
SQLITE_SUFFIXES = frozenset({".sqlite", ".sqlite3", ".db"})
#: The name the store's DuckLake is attached under in every connection (``USE store`` follows).
CATALOG_ALIAS = "store"
#: Snapshot retention when the config does not say.
DEFAULT_RETENTION_DAYS = 30
#: How long change-log rows are kept when the config does not say (``store.change_log_days``).
DEFAULT_CHANGE_LOG_DAYS = 14


@dataclass(frozen=True)
class PostgresCatalog:
    """A PostgreSQL database holding the catalog; the password comes from ``password_env`` at connect time."""

    host: str
    port: int
    database: str
    user: str
    password_env: str | None = None

    def dsn(self) -> str:
        """The libpq connection string (with the password, for ATTACH only: never print it)."""
        parts = [f"dbname={self.database}", f"host={self.host}", f"port={self.port}", f"user={self.user}"]
        if self.password_env:
            password = os.environ.get(self.password_env)
            if not password:
                raise PlanhatPipelinesError(
                    f"store.postgres.password: environment variable {self.password_env} is not set. "
                    f"Fix: export {self.password_env}=<the catalog user's password>"
                )
            # libpq keyword/value syntax: a quoted value, with backslash and single quote escaped.
            quoted = password.replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"password='{quoted}'")
        return " ".join(parts)

    def describe(self) -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class StoreLocation:
    """A DuckLake catalog and the data path its Parquet files go to.

    Attributes:
        kind: ``sqlite`` (default), ``duckdb`` (single process) or ``postgres``.
        catalog: The catalog file (``sqlite`` / ``duckdb``); unused for ``postgres``.
        data_path: The folder (or ``s3://`` / ``gs://`` prefix) holding the tables' files.
        postgres: The catalog database, for ``postgres``.
        retention_days: Snapshots older than this are expired by maintenance (time travel reaches this far).
        change_log_days: Change-log rows older than this are deleted by maintenance.
    """

    kind: CatalogKind
    catalog: Path | None
    data_path: str
    postgres: PostgresCatalog | None = None
    retention_days: int = DEFAULT_RETENTION_DAYS
    change_log_days: int = DEFAULT_CHANGE_LOG_DAYS

    @classmethod
    def of_file(cls, catalog: str | Path, data_path: str | Path | None = None) -> StoreLocation:
        """A file catalog: SQLite for ``.sqlite``/``.sqlite3``/``.db``, else a DuckDB file.

        ``data_path`` defaults to ``<catalog stem>_files/`` beside the catalog.
        """
        if str(catalog) == ":memory:":
            raise PlanhatPipelinesError(
                "store catalog ':memory:': a DuckLake store needs a catalog file (an in-memory one would lose "
                "every sync). Fix: name a file, e.g. 'catalog: .data/planhat.sqlite'"
            )
        path = Path(catalog)
        kind: CatalogKind = "sqlite" if path.suffix.lower() in SQLITE_SUFFIXES else "duckdb"
        data = str(data_path) if data_path is not None else str(path.with_name(path.stem + "_files"))
        return cls(kind, path, data)

    @property
    def remote_data(self) -> bool:
        """Whether the data path is object storage (needs httpfs) rather than a folder."""
        return self.data_path.startswith(("s3://", "gs://", "gcs://", "r2://", "http://", "https://"))

    def describe(self) -> str:
        """The catalog and data path, for messages (never a password)."""
        where = self.postgres.describe() if self.postgres is not None else str(self.catalog)
        return f"DuckLake {self.kind} catalog {where} (data {self.data_path})"

    def exists(self) -> bool:
        """Whether the catalog is there already (a PostgreSQL catalog is assumed to be)."""
        return self.postgres is not None or (self.catalog is not None and self.catalog.exists())

    def extensions(self) -> tuple[str, ...]:
        """The DuckDB extensions attaching this store needs."""
        scanner = {"sqlite": ("sqlite_scanner",), "postgres": ("postgres_scanner",), "duckdb": ()}[self.kind]
        return ("ducklake", *scanner, *(("httpfs",) if self.remote_data else ()))

    def attach_sql(self, *, read_only: bool) -> str:
        """The ``ATTACH`` statement for this store under :data:`CATALOG_ALIAS`."""
        if self.kind == "postgres":
            assert self.postgres is not None
            target = f"ducklake:postgres:{self.postgres.dsn()}"
        else:
            assert self.catalog is not None
            target = f"ducklake:{'sqlite:' if self.kind == 'sqlite' else ''}{self.catalog}"
        data = self.data_path if self.remote_data else str(Path(self.data_path).resolve()) + os.sep
        options = [f"DATA_PATH {quote_literal(data)}"]
        if read_only:
            options.append("READ_ONLY")
        return f"ATTACH {quote_literal(target)} AS {CATALOG_ALIAS} ({', '.join(options)})"

    def prepare(self) -> None:
        """Create what a new writable store needs before the first ATTACH: folders, a WAL-mode SQLite file."""
        if not self.remote_data:
            Path(self.data_path).mkdir(parents=True, exist_ok=True)
        if self.catalog is None:
            return
        self.catalog.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "sqlite" and not self.catalog.exists():
            # WAL lets readers read while a writer commits (the default rollback journal blocks them for up to
            # a second at a time). The mode is stored in the file, so every later connection uses it.
            con = sqlite3.connect(self.catalog)
            try:
                con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
