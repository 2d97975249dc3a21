"""The ``store:`` section: the DuckLake catalog and data path the model store lives in.

``store:`` may be left out: the store is then embedded, a SQLite catalog ``.data/planhat.sqlite`` with its
files in ``.data/planhat_files/`` beside the config file. A file catalog is SQLite for ``.sqlite`` /
``.sqlite3`` / ``.db`` and a DuckDB file (single process only) otherwise; ``postgres:`` names the scale-out
catalog, whose ``data_path`` must then be given (a folder every machine mounts, or ``s3://`` / ``gs://``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import model_validator

from planhat_pipelines.config.base import FileModel, Positive, Secret, example, fail
from planhat_pipelines.store.location import (
    DEFAULT_CHANGE_LOG_DAYS,
    DEFAULT_RETENTION_DAYS,
    PostgresCatalog,
    StoreLocation,
)

#: The embedded store a config that says nothing else gets (relative to the config file's folder).
DEFAULT_CATALOG = ".data/planhat.sqlite"


class PostgresCatalogFile(FileModel):
    host: str = example("db.internal")
    port: Positive = example("5432", 5432)
    database: str = example("planhat_catalog")
    user: str = example("planhat")
    password: Secret = None

    def build(self) -> PostgresCatalog:
        return PostgresCatalog(
            self.host, self.port, self.database, self.user, self.password.name if self.password else None
        )


class StoreFile(FileModel):
    catalog: str | None = example("data/planhat.sqlite", None)
    postgres: PostgresCatalogFile | None = None
    data_path: str | None = example("data/planhat_files/", None)
    retention_days: Positive = example("30", DEFAULT_RETENTION_DAYS)
    #: Days the per-record change log keeps its rows (``planhat-pipelines changes``); maintenance prunes older.
    change_log_days: Positive = example("14", DEFAULT_CHANGE_LOG_DAYS)

    @model_validator(mode="before")
    @classmethod
    def _no_single_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and "path" in data:
            old = Path(str(data["path"]))
            fail(
                "names a single DuckDB file, the store of an earlier release; the store is now a DuckLake named "
                "by its catalog",
                f"write 'catalog: {old.with_suffix('.sqlite')}' instead (the data goes to "
                f"{old.with_name(old.stem + '_files')}/), then copy the old store's rows with "
                f"'planhat-pipelines migrate-store {old}'",
                "path",
            )
        return data

    @model_validator(mode="after")
    def _one_catalog(self) -> StoreFile:
        if self.catalog is not None and self.postgres is not None:
            fail("names two catalogs", "keep either 'catalog:' (a file) or 'postgres:' (a server)", "postgres")
        if self.postgres is not None and self.data_path is None:
            fail(
                "is missing (a PostgreSQL catalog is shared by several machines, so its data must be too)",
                "add 'data_path: s3://bucket/planhat/' or a folder every machine mounts",
                "data_path",
            )
        return self

    def build(self, base_dir: Path) -> StoreLocation:
        def resolve(path: str) -> Path:
            raw = Path(path)
            return raw if raw.is_absolute() else base_dir / raw

        data = self.data_path
        if data is not None and "://" not in data:
            data = str(resolve(data))
        if self.postgres is not None:
            assert data is not None
            return StoreLocation(
                "postgres", None, data, self.postgres.build(), self.retention_days, self.change_log_days
            )
        location = StoreLocation.of_file(resolve(self.catalog or DEFAULT_CATALOG), data)
        return StoreLocation(
            location.kind, location.catalog, location.data_path, None, self.retention_days, self.change_log_days
        )
