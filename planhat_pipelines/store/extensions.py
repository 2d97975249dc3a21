"""DuckDB extensions the store needs, loaded from their PyPI wheels (never downloaded at run time).

Each ``duckdb-extension-<name>`` wheel ships ``extensions/v<duckdb version>/<name>.duckdb_extension`` inside
its package; ``LOAD '<path>'`` loads it with no install step, so nothing is written to ``~/.duckdb`` and
nothing is fetched from the network. The wheel's version must equal DuckDB's (see ``pyproject.toml``).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import duckdb

from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.sql_quoting import quote_literal


@functools.cache
def extension_path(name: str) -> Path:
    """The ``.duckdb_extension`` file of extension ``name`` (``ducklake``, ``sqlite_scanner``...).

    Raises:
        PlanhatPipelinesError: its wheel is not installed, or was built for another DuckDB version.
    """
    wheel = f"duckdb-extension-{name.replace('_', '-')}=={duckdb.__version__}"
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.origin is None:
        raise PlanhatPipelinesError(
            f"DuckDB extension '{name}' is not installed. Fix: pip install '{wheel}' (the project's "
            "dependencies include it: reinstall with `pip install -e .`)"
        )
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        found = sorted(p.parent.name for p in Path(spec.origin).parent.glob("extensions/*/*.duckdb_extension"))
        raise PlanhatPipelinesError(
            f"DuckDB extension '{name}' is installed for DuckDB {', '.join(found) or 'another version'}, not "
            f"v{duckdb.__version__}. Fix: pip install '{wheel}' (extension wheels must match DuckDB's version)"
        )
    return path


@functools.cache
def _verified(path: Path) -> Path:
    """``path`` once its signature was checked (a signed LOAD in a throwaway database), once per process."""
    con = duckdb.connect()
    try:
        con.execute(f"LOAD {quote_literal(str(path))}")
    finally:
        con.close()
    return path


def connect_with_extensions(*names: str) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection with each extension loaded from its wheel.

    DuckDB checks an extension's signature on every LOAD, which takes 0.2-0.4 s for these (36 MB for
    ducklake): more than the rest of opening the store. Each file is checked once per process
    (:func:`_verified`); the connections after that load the already-checked files with
    ``allow_unsigned_extensions``, which skips the check (~7 ms).
    """
    paths = [_verified(extension_path(name)) for name in names]
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    try:
        for path in paths:
            con.execute(f"LOAD {quote_literal(str(path))}")
    except BaseException:
        con.close()
        raise
    return con


def load_extensions(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Load each extension into an existing connection from its wheel (signature checked on each LOAD)."""
    for name in names:
        con.execute(f"LOAD {quote_literal(str(extension_path(name)))}")
