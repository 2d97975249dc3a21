"""The BigQuery harness: local-bigquery (installed by `make emulators`) and one fresh dataset per test.

The emulator is started and stopped by :func:`tools.emulators.bigquery_launcher.bigquery_emulator`
(its own Python 3.13 venv in ``.emulators/bigquery``, HOME pointing inside that venv, where
scripts/setup_bigquery_emulator.sh installed the DuckDB extensions it loads).
Seeding goes through google-cloud-bigquery, never through the adapter under test.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud import bigquery

from planhat_pipelines.config import BigQuerySettings
from planhat_pipelines.warehouses.bigquery import BigQueryWarehouse, open_bigquery, quote
from tools.emulators import bigquery_launcher
from tools.emulators.processes import EmulatorError, free_port

PROJECT = "planhat-test"

#: A running local-bigquery server (project, endpoint, grpc_endpoint, start_seconds, client()).
BigQueryEmulator = bigquery_launcher.BigQueryServer


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    """Start local-bigquery on free ports for the test session and stop it afterwards."""
    try:
        bigquery_launcher.require_bigquery_emulator()
    except EmulatorError as exc:
        pytest.fail(str(exc), pytrace=False)
    workdir = tmp_path_factory.mktemp("bigquery-emulator")
    # The module-qualified name: this file's fixture is called bigquery_emulator too.
    with bigquery_launcher.bigquery_emulator(
        data_dir=workdir / "data",
        project=PROJECT,
        port=free_port(),
        grpc_port=free_port(),
        log=workdir / "server.log",
    ) as server:
        yield server


class BigQueryHarness:
    """A fresh dataset in the emulator, seeded through google-cloud-bigquery."""

    kind = "bigquery"

    def __init__(self, emulator: BigQueryEmulator) -> None:
        self.emulator = emulator
        self.project = emulator.project
        self.dataset = f"t_{uuid.uuid4().hex[:12]}"
        self.client: bigquery.Client = emulator.client()
        self.client.create_dataset(f"{self.project}.{self.dataset}")
        self._open: list[BigQueryWarehouse] = []

    def _config(self) -> bigquery.QueryJobConfig:
        return bigquery.QueryJobConfig(default_dataset=f"{self.project}.{self.dataset}")

    def _table_id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{table}"

    def settings(self, **overrides: Any) -> BigQuerySettings:
        """The connection's settings (the config parser's result for :meth:`connection_config`)."""
        config = self.connection_config()
        config.pop("type")
        config.update(overrides)
        return BigQuerySettings(**config)

    def warehouse(self, name: str = "wh", **overrides: Any) -> BigQueryWarehouse:
        wh = open_bigquery(name, self.settings(**overrides))
        self._open.append(wh)
        return wh

    def create_table(self, table: str, data: pa.Table, *, json_columns: Sequence[str] = ()) -> None:
        buffer = io.BytesIO()
        pq.write_table(data, buffer)
        buffer.seek(0)
        config = bigquery.LoadJobConfig(source_format="PARQUET", write_disposition="WRITE_TRUNCATE")
        self.client.load_table_from_file(buffer, self._table_id(table), job_config=config).result()
        if json_columns:
            # Parquet has no JSON type: load JSON text as STRING, then turn it into BigQuery JSON.
            select = ", ".join(
                f"PARSE_JSON({quote(c)}) AS {quote(c)}" if c in json_columns else quote(c) for c in data.column_names
            )
            self.execute(f"CREATE OR REPLACE TABLE {quote(table)} AS SELECT {select} FROM {quote(table)}")

    def create_view(self, view: str, select_sql: str) -> None:
        self.execute(f"CREATE OR REPLACE VIEW {quote(view)} AS {select_sql}")

    def execute(self, sql: str) -> None:
        self.client.query(sql, job_config=self._config()).result()

    def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in self.client.query(sql, job_config=self._config()).result()]

    def connection_config(self) -> dict[str, Any]:
        return {
            "type": "bigquery",
            "project": self.project,
            "dataset": self.dataset,
            "endpoint": self.emulator.endpoint,
            "storage_grpc_endpoint": self.emulator.grpc_endpoint,
            "auth": "adc",
        }

    def close(self) -> None:
        for wh in self._open:
            wh.close()
        self.client.delete_dataset(f"{self.project}.{self.dataset}", delete_contents=True, not_found_ok=True)
        self.client.close()


@pytest.fixture
def bigquery_harness(bigquery_emulator: BigQueryEmulator) -> Iterator[BigQueryHarness]:
    """A fresh dataset in the session's BigQuery emulator, dropped after the test."""
    harness = BigQueryHarness(bigquery_emulator)
    yield harness
    harness.close()
