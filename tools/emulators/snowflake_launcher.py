"""fakesnow as a server in a child process of its own venv (``python -m tools.emulators fakesnow``)."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.emulators import CHECKOUT
from tools.emulators.processes import EmulatorError, port_in_use, require_free_port, server_process


@dataclass(frozen=True)
class SnowflakeServer:
    """A running fakesnow server (any account, user and password are accepted).

    Attributes:
        host: Its interface.
        port: Its port (it speaks plain HTTP).
        db_path: The folder holding one DuckDB file per database, or None for in-memory.
        start_seconds: How long it took to accept connections.
    """

    host: str
    port: int
    db_path: Path | None
    start_seconds: float

    def connect_kwargs(self) -> dict[str, Any]:
        """``snowflake.connector.connect`` arguments reaching this server (add database and schema)."""
        return {
            "account": "fakesnow",
            "user": "fake",
            "password": "snow",
            "host": self.host,
            "port": self.port,
            "protocol": "http",
            "paramstyle": "qmark",
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            "login_timeout": 10,
            "network_timeout": 60,
        }


#: fakesnow's own venv (it pins duckdb 2.0, the project pins 1.5.5): ``scripts/setup_snowflake_emulator.sh``.
FAKESNOW_PYTHON = CHECKOUT / ".emulators" / "snowflake" / "bin" / "python"


def _child_env() -> dict[str, str]:
    # The child runs `python -m tools.emulators`: the checkout must be importable wherever the parent was
    # started from (a benchmark script, pytest from another folder), and tools/ is never installed.
    paths = [str(CHECKOUT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@contextlib.contextmanager
def fakesnow_server(
    *, port: int, host: str = "127.0.0.1", db_path: Path | None = None, log: Path | None = None
) -> Iterator[SnowflakeServer]:
    """Start a fakesnow server in a child process (``python -m tools.emulators fakesnow``) and stop it afterwards.

    fakesnow's server shares one in-memory store between all sessions, unless a client sends the
    session parameter ``FAKESNOW_DB_PATH`` -- and then that session gets a store of its own. The
    adapters the demo runs cannot send session parameters from the config, so persistence has to
    be the server's default: the child process replaces the shared store by a file-backed one.

    Args:
        port: Port to listen on.
        host: Interface to listen on.
        db_path: A folder for the databases' DuckDB files (created); None keeps everything in memory.
        log: Its stdout/stderr (default: ``<db_path>/../snowflake-server.log``, or a temp file).

    Raises:
        EmulatorError: The port is taken, or the server exited or hung during start-up.
    """
    require_free_port("fakesnow", host, port, "the port in the connection's settings")
    command = [str(FAKESNOW_PYTHON), "-m", "tools.emulators", "fakesnow", "--host", host, "--port", str(port)]
    if db_path is not None:
        db_path.mkdir(parents=True, exist_ok=True)
        command += ["--db-path", str(db_path.resolve())]
        log = log or db_path.parent / "snowflake-server.log"
    if log is None:
        log = Path(tempfile.mkdtemp(prefix="fakesnow-")) / "server.log"
    fix = "set up its venv with `make emulators` (scripts/setup_snowflake_emulator.sh installs fakesnow[server] there)"
    if not FAKESNOW_PYTHON.exists():
        raise EmulatorError(f"fakesnow is not installed: {FAKESNOW_PYTHON} is missing. Fix: {fix}")
    ready = functools.partial(port_in_use, host, port)
    with server_process("fakesnow", command, log=log, ready=ready, fix=fix, env=_child_env()) as secs:
        yield SnowflakeServer(host, port, db_path, secs)
