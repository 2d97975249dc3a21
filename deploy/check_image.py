"""The image's last build step (deploy/install.sh project): prove the installed image can run a sync offline.

A run pod has no reason to reach the internet, and DuckDB cannot download extensions on many clusters: so
every module a run imports is imported here, every DuckDB extension the store can need is loaded from its
wheel, a DuckLake store is created and written, and the Dagster definitions are built from a config. Any
failure fails the build with the module or extension that is missing.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

#: What a run worker or the code server imports: Dagster with its PostgreSQL storage and Kubernetes run
#: launcher (the instance the Helm chart writes names both), the warehouses' clients, the project.
MODULES = (
    "dagster",
    "dagster_webserver",
    "dagster_postgres",
    "dagster_k8s",
    "google.cloud.bigquery",
    "google.cloud.bigquery_storage",
    "snowflake.connector",
    "planhat_pipelines.definitions",
)
#: Every extension a store location can need: its catalog (SQLite, PostgreSQL), DuckLake, object storage.
EXTENSIONS = ("ducklake", "sqlite_scanner", "postgres_scanner", "httpfs")
#: A config with only a store (and a DuckDB warehouse that needs no server): enough to build the definitions.
CONFIG = """\
store:
  catalog: {root}/catalog.sqlite
  data_path: {root}/files/
connections:
  warehouse:
    type: duckdb
    path: {root}/warehouse.duckdb
"""


def main() -> None:
    for module in MODULES:
        importlib.import_module(module)

    from planhat_pipelines.config import load_config
    from planhat_pipelines.definitions import build_definitions
    from planhat_pipelines.store.extensions import connect_with_extensions
    from planhat_pipelines.store.location import StoreLocation
    from planhat_pipelines.store.store import ModelStore

    connect_with_extensions(*EXTENSIONS).close()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with ModelStore(StoreLocation.of_file(root / "catalog.sqlite", root / "files")) as store:
            companies = store.count("company")
        config = root / "planhat_pipelines.yaml"
        config.write_text(CONFIG.format(root=root))
        repository = build_definitions(load_config(config, require_existing_warehouses=False)).get_repository_def()
        jobs = sorted(job.name for job in repository.get_all_jobs())
    print(
        f"image check passed: {len(MODULES)} modules, DuckDB extensions {', '.join(EXTENSIONS)} loaded offline, "
        f"a new store ({companies} companies), definitions with jobs {', '.join(jobs)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
