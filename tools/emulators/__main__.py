"""``python -m tools.emulators fakesnow --port P [--db-path DIR]``: the fakesnow server's child process."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any


def serve_fakesnow(host: str, port: int, db_path: str | None) -> None:
    """Serve fakesnow's app under uvicorn until SIGTERM, file-backed if ``db_path`` is given."""
    import uvicorn
    from fakesnow.instance import FakeSnow

    # `fakesnow.server` the attribute is the in-thread context manager; the module is what serves.
    server: Any = importlib.import_module("fakesnow.server")

    if db_path:
        # fakesnow 0.12 reads this module global at each login; a FakeSnow with db_path attaches
        # <db_path>/<DATABASE>.db, so every session shares one store that survives a restart.
        server.shared_fs = FakeSnow(db_path=db_path)
    uvicorn.Server(uvicorn.Config(server.app, host=host, port=port, log_level="warning")).run()
    # uvicorn returns after SIGTERM: close DuckDB so the files are checkpointed.
    server.shared_fs.duck_conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tools.emulators", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fs = sub.add_parser("fakesnow", help="run a fakesnow server (file-backed with --db-path) until SIGTERM")
    fs.add_argument("--host", default="127.0.0.1")
    fs.add_argument("--port", type=int, required=True)
    fs.add_argument("--db-path", help="folder for one DuckDB file per database (default: in memory)")
    args = parser.parse_args(argv)
    serve_fakesnow(args.host, args.port, args.db_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
