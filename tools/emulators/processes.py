"""Process control for the emulator servers: free ports, start in a session of its own, wait, stop the group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from planhat_pipelines.errors import PlanhatPipelinesError

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


class EmulatorError(PlanhatPipelinesError):
    """An emulator is not installed, did not start, or the config does not describe one."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests; the demo uses the config's fixed ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def require_free_port(name: str, host: str, port: int, settings: str) -> None:
    """Refuse to start ``name`` on a taken port, naming the likely cause and the ``settings`` to change.

    Raises:
        EmulatorError: Something listens on ``host:port`` already.
    """
    if port_in_use(host, port):
        raise EmulatorError(
            f"port {host}:{port} is already in use, so {name} cannot start. Fix: stop what listens there "
            f"(an earlier demo still running?) or change {settings}."
        )


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _wait_until_ready(name: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, fix: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmulatorError(
                f"{name} exited with code {proc.returncode} during start-up; its log ({log}):\n{_log_tail(log)}\n"
                f"Fix: {fix}"
            )
        if ready():
            return
        time.sleep(0.1)
    raise EmulatorError(f"{name} did not become ready within {START_TIMEOUT_SECONDS:.0f} s; its log: {log}")


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started with ``start_new_session=True``: SIGTERM its group, SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_SECONDS)


@contextlib.contextmanager
def server_process(
    name: str,
    command: Sequence[str],
    *,
    log: Path,
    ready: Callable[[], bool],
    fix: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[float]:
    """Run ``command`` in its own session until the block ends; yields the seconds start-up took.

    Args:
        name: What the error messages call the server.
        command: Its argv.
        log: Where its stdout and stderr go (the folder is created).
        ready: True once it answers; polled every 0.1 s for up to ``START_TIMEOUT_SECONDS``.
        fix: The advice an error gives when it exits during start-up.
        env: Its environment (default: this process's).
        cwd: Its working folder (default: this process's).

    Raises:
        EmulatorError: It exited or hung during start-up.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            list(command),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,  # so stopping it stops its children too
        )
    try:
        _wait_until_ready(name, ready, proc, log, fix)
        yield time.monotonic() - started
    finally:
        stop_process_group(proc)
