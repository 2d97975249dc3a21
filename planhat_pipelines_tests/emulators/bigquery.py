"""The BigQuery harness: local-bigquery (installed by `make emulators`) and one fresh dataset per test.

The emulator runs from its own Python 3.13 venv in ``.emulators/bigquery`` with HOME pointing inside
that venv, where scripts/setup_bigquery_emulator.sh installed the DuckDB extensions it loads.
Seeding goes through google-cloud-bigquery, never through the adapter under test.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from planhat_pipelines.config import BigQuerySettings
from planhat_pipelines.warehouses.bigquery import BigQueryWarehouse, open_bigquery, quote

ROOT = Path(__file__).resolve().parents[2]
EMULATOR_VENV = ROOT / ".emulators" / "bigquery"
EMULATOR_BIN = EMULATOR_VENV / "bin" / "local-bigquery"
EMULATOR_HOME = EMULATOR_VENV / "home"
PROJECT = "planhat-test"
START_TIMEOUT_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class BigQueryEmulator:
    """A running local-bigquery server.

    Attributes:
        project: The project every test dataset lives in.
        endpoint: The REST endpoint (``http://127.0.0.1:PORT``).
        grpc_endpoint: The Storage Read API (``127.0.0.1:PORT``, insecure).
        start_seconds: How long the server took to answer its first dataset listing.
    """

    project: str
    endpoint: str
    grpc_endpoint: str
    start_seconds: float

    def client(self) -> bigquery.Client:
        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )


def _wait_until_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"local-bigquery exited with code {proc.returncode} during start-up; its log ({log}):\n"
                f"{log.read_text()[-3000:]}\nFix: run `make emulators` again (it re-checks the install)."
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"local-bigquery did not answer {url} within {START_TIMEOUT_SECONDS:.0f} s; log: {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    # The server was started in its own session: stop its whole process group.
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    """Start local-bigquery on free ports for the test session and stop it afterwards."""
    if not EMULATOR_BIN.exists() or not (EMULATOR_VENV / ".setup-done").exists():
        pytest.fail(
            f"The BigQuery emulator is not installed ({EMULATOR_BIN} is missing). Fix: run `make emulators`.",
            pytrace=False,
        )
    workdir = tmp_path_factory.mktemp("bigquery-emulator")
    port, grpc_port = _free_port(), _free_port()
    log = workdir / "server.log"
    env = {**os.environ, "HOME": str(EMULATOR_HOME)}
    # Keep a developer's real BigQuery settings away from the emulator process.
    env.pop("BIGQUERY_EMULATOR_HOST", None)
    started = time.monotonic()
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                str(EMULATOR_BIN),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--grpc-port",
                str(grpc_port),
                "--project",
                PROJECT,
                "--data-dir",
                str(workdir / "data"),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait_until_ready(f"{endpoint}/bigquery/v2/projects/{PROJECT}/datasets", proc, log)
        yield BigQueryEmulator(PROJECT, endpoint, f"127.0.0.1:{grpc_port}", time.monotonic() - started)
    finally:
        _stop(proc)


class BigQueryHarness:
    """A fresh dataset in the emulator, seeded through google-cloud-bigquery."""

    kind = "bigquery"

    def __init__(self, emulator: BigQueryEmulator) -> None:
        self.emulator = emulator
        self.project = emulator.project
        self.dataset = f"t_{uuid.uuid4().hex[:12]}"
        self.client = emulator.client()
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
