"""local-bigquery, run from its own Python 3.13 venv that ``make emulators`` installs in ``.emulators/bigquery``."""

from __future__ import annotations

import contextlib
import functools
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.emulators import CHECKOUT
from tools.emulators.processes import EmulatorError, require_free_port, server_process

#: Where `make emulators` (scripts/setup_bigquery_emulator.sh) installs local-bigquery.
BIGQUERY_EMULATOR_VENV = CHECKOUT / ".emulators" / "bigquery"


@dataclass(frozen=True)
class BigQueryServer:
    """A running local-bigquery server.

    Attributes:
        project: The project the server was started for (others are created on first use).
        endpoint: The REST endpoint, ``http://HOST:PORT``.
        grpc_endpoint: The insecure Storage Read API, ``HOST:PORT``.
        start_seconds: How long it took to answer its first dataset listing.
    """

    project: str
    endpoint: str
    grpc_endpoint: str
    start_seconds: float

    def client(self) -> Any:
        """A google-cloud-bigquery client for the emulator (anonymous credentials)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.project, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint}
        )


def require_bigquery_emulator(venv: Path = BIGQUERY_EMULATOR_VENV) -> Path:
    """The local-bigquery command ``make emulators`` installed in ``venv``.

    Raises:
        EmulatorError: It is not installed, or its install did not finish.
    """
    binary = venv / "bin" / "local-bigquery"
    if not binary.exists() or not (venv / ".setup-done").exists():
        raise EmulatorError(f"the BigQuery emulator is not installed ({binary} is missing). Fix: run `make emulators`.")
    return binary


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextlib.contextmanager
def bigquery_emulator(
    *,
    data_dir: Path,
    project: str,
    port: int,
    grpc_port: int,
    host: str = "127.0.0.1",
    log: Path | None = None,
    venv: Path = BIGQUERY_EMULATOR_VENV,
) -> Iterator[BigQueryServer]:
    """Start local-bigquery, wait until it answers, and stop its process group when the block ends.

    Args:
        data_dir: Where it keeps its data; a later start on the same folder sees the same tables.
        project: The project to serve.
        port: REST port.
        grpc_port: Storage Read API port.
        host: Interface to listen on.
        log: Its stdout/stderr (default ``<data_dir>/../bigquery-server.log``).
        venv: The emulator's venv (``make emulators`` installs it).

    Raises:
        EmulatorError: Not installed, a port is taken, or it exited or hung during start-up.
    """
    binary = require_bigquery_emulator(venv)
    for p in (port, grpc_port):
        require_free_port("local-bigquery", host, p, "the ports in the connection's endpoint settings")
    data_dir.mkdir(parents=True, exist_ok=True)
    log = log or data_dir.parent / "bigquery-server.log"
    # The DuckDB extensions local-bigquery loads were installed under this HOME by the setup script;
    # giving the server the same HOME keeps it away from the real ~/.duckdb.
    env = {**os.environ, "HOME": str(venv / "home")}
    env.pop("BIGQUERY_EMULATOR_HOST", None)
    endpoint = f"http://{host}:{port}"
    url = f"{endpoint}/bigquery/v2/projects/{project}/datasets"
    command = [str(binary), "serve", "--host", host, "--port", str(port), "--grpc-port", str(grpc_port)]
    command += ["--project", project, "--data-dir", str(data_dir.resolve())]
    fix = "run `make emulators` again (it re-checks the install)"
    ready = functools.partial(_answers, url)
    with server_process("local-bigquery", command, log=log, ready=ready, fix=fix, env=env, cwd=data_dir) as secs:
        yield BigQueryServer(project, endpoint, f"{host}:{grpc_port}", secs)
