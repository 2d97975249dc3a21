"""A real PostgreSQL 15 server for the store's PostgreSQL catalog: one per test session, a fresh database per test.

Debian's ``postgresql-15`` keeps its server binaries off PATH (``/usr/lib/postgresql/15/bin``) and the server
refuses to run as root, so as root (the tests run as root on CI) every server command runs as the ``postgres``
user through ``runuser``, in a temporary folder under ``/tmp`` that user owns. Authentication is ``trust`` on
127.0.0.1 only, so the catalog needs no password. Install it with ``bash scripts/setup_postgres.sh`` (part of
``make emulators``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from planhat_pipelines.store.location import PostgresCatalog, StoreLocation
from tools.emulators.processes import START_TIMEOUT_SECONDS, EmulatorError, free_port

#: The Debian package the server comes from.
PACKAGE = "postgresql-15"
#: The superuser ``initdb`` creates (and the catalog connects as).
SUPERUSER = "postgres"
#: The OS user the server runs as when the tests run as root.
OS_USER = "postgres"
HOST = "127.0.0.1"
_INSTALL_FIX = f"Fix: bash scripts/setup_postgres.sh (or: apt-get install -y {PACKAGE}), then rerun the tests"


def find_bin_dir() -> Path:
    """The folder holding ``initdb``, ``pg_ctl``, ``pg_isready`` and ``createdb`` of PostgreSQL 15.

    Raises:
        EmulatorError: ``postgresql-15`` is not installed.
    """
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        listed = subprocess.run(["dpkg", "-L", PACKAGE], capture_output=True, text=True, timeout=30, check=False)
        candidates += [Path(line).parent for line in listed.stdout.splitlines() if line.endswith("/bin/initdb")]
    candidates.append(Path("/usr/lib/postgresql/15/bin"))
    for bin_dir in candidates:
        if all((bin_dir / tool).is_file() for tool in ("initdb", "pg_ctl", "pg_isready", "createdb")):
            return bin_dir
    raise EmulatorError(f"PostgreSQL 15 is not installed (no initdb from {PACKAGE}). {_INSTALL_FIX}")


def _as_server_user() -> list[str]:
    """The prefix running a command as the server's OS user (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise EmulatorError("running as root, but runuser is missing. Fix: apt-get install -y util-linux")
    return ["runuser", "-u", OS_USER, "--"]


@dataclass
class PostgresServer:
    """A running PostgreSQL server on ``host:port``; :meth:`new_database` gives each test its own database."""

    bin_dir: Path
    root: Path
    port: int
    host: str = HOST
    user: str = SUPERUSER
    _databases: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def run(self, tool: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run one of the server's binaries as the server user (from its own folder, which that user can read).

        Raises:
            EmulatorError: The command failed (its output is in the message).
        """
        command = [*_as_server_user(), str(self.bin_dir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False)
        if done.returncode != 0:
            raise EmulatorError(
                f"{' '.join(command)} failed with code {done.returncode}:\n{done.stdout}{done.stderr}\n"
                f"server log ({self.log}):\n{self._log_tail()}"
            )
        return done

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"

    def _client_args(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user]

    def ready(self) -> bool:
        """Whether the server accepts connections on ``host:port``."""
        command = [str(self.bin_dir / "pg_isready"), *self._client_args(), "-d", "postgres", "-t", "2"]
        return subprocess.run(command, capture_output=True, timeout=30, cwd=self.root, check=False).returncode == 0

    def start(self) -> None:
        """``initdb`` (trust authentication) and start the server, waiting until it accepts connections.

        Raises:
            EmulatorError: initdb or the start failed, or the server did not become ready in time.
        """
        self.run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", self.user, "-E", "UTF8", timeout=120)
        options = f"-p {self.port} -k {self.root} -c listen_addresses={self.host} -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log), "-w", "start", timeout=120)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self.ready():
            if time.monotonic() > deadline:
                raise EmulatorError(
                    f"PostgreSQL did not accept connections on {self.host}:{self.port} within "
                    f"{START_TIMEOUT_SECONDS:.0f} s; its log ({self.log}):\n{self._log_tail()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are ended) if it runs."""
        if (self.data_dir / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", timeout=60)

    def new_database(self) -> str:
        """Create an empty database with a name of its own and return the name."""
        name = f"planhat_test_{uuid.uuid4().hex[:12]}"
        self.run("createdb", *self._client_args(), name)
        self._databases.append(name)
        return name

    def catalog(self, database: str | None = None) -> PostgresCatalog:
        """A :class:`PostgresCatalog` on ``database`` (a new one if not given); trust auth: no password."""
        return PostgresCatalog(self.host, self.port, database or self.new_database(), self.user)

    def store_location(self, data_path: Path | str, database: str | None = None) -> StoreLocation:
        """The store's PostgreSQL catalog on ``database`` (a new one if not given), its files in ``data_path``."""
        return StoreLocation("postgres", None, str(data_path), self.catalog(database))


@contextlib.contextmanager
def postgres_server_running() -> Iterator[PostgresServer]:
    """Start a PostgreSQL server in a new folder under /tmp and stop it (and remove the folder) afterwards."""
    bin_dir = find_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="planhat-postgres-", dir="/tmp"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, OS_USER, OS_USER)
    server = PostgresServer(bin_dir, root, free_port(HOST))
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 server on 127.0.0.1 for the whole session (tests take a fresh database each)."""
    with postgres_server_running() as server:
        yield server
