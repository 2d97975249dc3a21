"""`make demo WAREHOUSE=bigquery|snowflake`: the demo against a local warehouse emulator.

BigQuery runs as local-bigquery from its own venv in ``.emulators/bigquery`` (installed by
``make emulators``); Snowflake runs as a fakesnow server in a child process. Both keep their data in
files under the store's folder (``.data/bigquery``, ``.data/snowflake``), so a second ``make demo``
finds what the first one loaded and only the new usage rows are copied in.

The demo data itself is made by :func:`~planhat_pipelines.demo.generate.seed_demo` in a local DuckDB
file and copied into the emulator through the warehouse's own client (google-cloud-bigquery,
snowflake-connector-python), never through the adapters the demo then exercises.

Ports, project, dataset, database and schema all come from the demo config's connection
(``examples/demo_bigquery.yaml``, ``examples/demo_snowflake.yaml``), so there is one place to change them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from planhat_pipelines.config import BigQuerySettings, Config, ConnectionConfig, SnowflakeSettings
from planhat_pipelines.demo.generate import DemoSize, SeedResult, seed_demo
from planhat_pipelines.errors import PlanhatPipelinesError

ROOT = Path(__file__).resolve().parents[2]
#: Where `make emulators` (scripts/setup_bigquery_emulator.sh) installs local-bigquery.
BIGQUERY_EMULATOR_VENV = ROOT / ".emulators" / "bigquery"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
#: The kinds ``planhat-pipelines demo --emulator`` accepts.
EMULATOR_KINDS = ("bigquery", "snowflake")

#: Demo tables that grow: only rows with a key above the target's maximum are copied. Every other
#: table is copied once, when the target lacks it (CRM tables; the sync writes back into some of them).
APPEND_KEYS = {"usage_events": "event_id", "usage_metrics": "metric_id"}
#: The read-only reporting view the demo warehouse has beside its tables: name -> (table, columns).
DEMO_VIEWS = {"crm_company_report": ("crm_companies", ("company_key", "name", "phase"))}
#: Rows per batch read from the DuckDB source.
COPY_BATCH_ROWS = 200_000
#: Upper bound of one JSON array bound as a single Snowflake parameter.
SNOWFLAKE_CHUNK_BYTES = 4_000_000


class EmulatorError(PlanhatPipelinesError):
    """An emulator is not installed, did not start, or the config does not describe one."""


# --- processes -------------------------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests; the demo uses the config's fixed ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


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
def _server_process(
    name: str,
    command: Sequence[str],
    *,
    log: Path,
    ready: Callable[[], bool],
    fix: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[float]:
    """Run ``command`` in its own session until the block ends; yields the seconds start-up took."""
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
        if _port_in_use(host, p):
            raise EmulatorError(
                f"port {host}:{p} is already in use, so local-bigquery cannot start. Fix: stop what listens there "
                "(an earlier demo still running?) or change the ports in the connection's endpoint settings."
            )
    data_dir.mkdir(parents=True, exist_ok=True)
    log = log or data_dir.parent / "bigquery-server.log"
    # The DuckDB extensions local-bigquery loads were installed under this HOME by the setup script;
    # giving the server the same HOME keeps it away from the real ~/.duckdb.
    env = {**os.environ, "HOME": str(venv / "home")}
    env.pop("BIGQUERY_EMULATOR_HOST", None)
    endpoint = f"http://{host}:{port}"
    url = f"{endpoint}/bigquery/v2/projects/{project}/datasets"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    command = [str(binary), "serve", "--host", host, "--port", str(port), "--grpc-port", str(grpc_port)]
    command += ["--project", project, "--data-dir", str(data_dir.resolve())]
    fix = "run `make emulators` again (it re-checks the install)"
    with _server_process("local-bigquery", command, log=log, ready=ready, fix=fix, env=env, cwd=data_dir) as secs:
        yield BigQueryServer(project, endpoint, f"{host}:{grpc_port}", secs)


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


@contextlib.contextmanager
def fakesnow_server(
    *, port: int, host: str = "127.0.0.1", db_path: Path | None = None, log: Path | None = None
) -> Iterator[SnowflakeServer]:
    """Start a fakesnow server in a child process (this module's ``fakesnow`` command) and stop it afterwards.

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
    if _port_in_use(host, port):
        raise EmulatorError(
            f"port {host}:{port} is already in use, so fakesnow cannot start. Fix: stop what listens there "
            "(an earlier demo still running?) or change the port in the connection's settings."
        )
    command = [
        sys.executable,
        "-m",
        "planhat_pipelines.demo.emulators",
        "fakesnow",
        "--host",
        host,
        "--port",
        str(port),
    ]
    if db_path is not None:
        db_path.mkdir(parents=True, exist_ok=True)
        command += ["--db-path", str(db_path.resolve())]
        log = log or db_path.parent / "snowflake-server.log"
    if log is None:
        import tempfile

        log = Path(tempfile.mkdtemp(prefix="fakesnow-")) / "server.log"
    fix = "install the test extra (`pip install -e '.[test]'`, which `make demo` does): it brings fakesnow[server]"
    with _server_process("fakesnow", command, log=log, ready=lambda: _port_in_use(host, port), fix=fix) as secs:
        yield SnowflakeServer(host, port, db_path, secs)


def _serve_fakesnow(host: str, port: int, db_path: str | None) -> None:
    """The child process of :func:`fakesnow_server`: fakesnow's app under uvicorn, file-backed if asked."""
    import importlib

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


# --- copying the demo data in ------------------------------------------------------------------------
@dataclass(frozen=True)
class CopyResult:
    """Rows copied into the emulator, per table (zero for tables that were up to date)."""

    rows: dict[str, int]

    def describe(self) -> str:
        copied = [f"{t} +{n:,}" for t, n in self.rows.items() if n]
        return ", ".join(copied) if copied else "nothing new"


class _Target(Protocol):
    """What copying needs from an emulator; written with each warehouse's own client."""

    def exists(self, table: str) -> bool: ...
    def create(self, table: str, schema: pa.Schema, json_columns: Sequence[str]) -> None: ...
    def max_key(self, table: str, key: str) -> int | None: ...
    def append(self, table: str, batch: pa.Table, json_columns: Sequence[str]) -> None: ...
    def create_view(self, view: str, table: str, columns: Sequence[str]) -> None: ...


def _dq(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select_list(cols: Sequence[tuple[str, str]]) -> str:
    # JSON travels as text: Parquet and JSON arrays carry it that way, the target parses it back.
    return ", ".join(f"CAST({_dq(n)} AS VARCHAR) AS {_dq(n)}" if t == "JSON" else _dq(n) for n, t in cols)


def copy_new_rows(source: Path, target: _Target) -> CopyResult:
    """Copy the source's tables into ``target``: missing tables whole, growing tables above their max key.

    Args:
        source: The DuckDB file :func:`seed_demo` filled.
        target: The emulator, seen through its own client.
    """
    rows: dict[str, int] = {}
    con = duckdb.connect(str(source), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY table_name").fetchall()]
        for table in tables:
            cols: list[tuple[str, str]] = con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
            json_cols = [name for name, type_ in cols if type_ == "JSON"]
            select = f"SELECT {_select_list(cols)} FROM {_dq(table)}"
            key = APPEND_KEYS.get(table)
            after: int | None = None
            if not target.exists(table):
                target.create(table, con.sql(f"{select} LIMIT 0").to_arrow_table().schema, json_cols)
            elif key is None:
                rows[table] = 0  # copied once; the sync may have written into it since
                continue
            else:
                after = target.max_key(table, key)
            if key is not None:
                select += f" WHERE {_dq(key)} > {int(after) if after is not None else -(2**63)} ORDER BY {_dq(key)}"
            count = 0
            for batch in con.sql(select).to_arrow_reader(COPY_BATCH_ROWS):
                if batch.num_rows:
                    target.append(table, pa.Table.from_batches([batch]), json_cols)
                    count += batch.num_rows
            rows[table] = count
        for view, (table, columns) in DEMO_VIEWS.items():
            target.create_view(view, table, columns)
    finally:
        con.close()
    return CopyResult(rows)


def _bq_quote(name: str) -> str:
    return ".".join(f"`{part}`" for part in name.split("."))


def _bigquery_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "BOOL"
    if pa.types.is_integer(t):
        return "INT64"
    if pa.types.is_floating(t):
        return "FLOAT64"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    return "STRING"


class BigQueryTarget:
    """A dataset in the emulator, written through google-cloud-bigquery (Parquet loads, then SQL)."""

    def __init__(self, client: Any, project: str, dataset: str) -> None:
        from google.cloud import bigquery

        self._bq = bigquery
        self.client = client
        self.project = project
        self.dataset = dataset
        client.create_dataset(f"{project}.{dataset}", exists_ok=True)

    def _id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{table}"

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        config = self._bq.QueryJobConfig(default_dataset=f"{self.project}.{self.dataset}", query_parameters=params)
        return [tuple(r.values()) for r in self.client.query(sql, job_config=config).result()]

    def exists(self, table: str) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            self.client.get_table(self._id(table))
        except NotFound:
            return False
        return True

    def create(self, table: str, schema: pa.Schema, json_columns: Sequence[str]) -> None:
        cols = ", ".join(
            f"{_bq_quote(f.name)} {'JSON' if f.name in json_columns else _bigquery_type(f.type)}" for f in schema
        )
        self._run(f"CREATE TABLE IF NOT EXISTS {_bq_quote(self._id(table))} ({cols})")

    def max_key(self, table: str, key: str) -> int | None:
        value = self._run(f"SELECT max({_bq_quote(key)}) FROM {_bq_quote(self._id(table))}")[0][0]
        return None if value is None else int(value)

    def append(self, table: str, batch: pa.Table, json_columns: Sequence[str]) -> None:
        import pyarrow.parquet as pq

        # Parquet has no JSON type: load into a staging table as text, then INSERT with PARSE_JSON.
        staging = self._id(f"_seed_{table}")
        buffer = io.BytesIO()
        pq.write_table(batch, buffer)
        buffer.seek(0)
        config = self._bq.LoadJobConfig(source_format="PARQUET", write_disposition="WRITE_TRUNCATE")
        self.client.load_table_from_file(buffer, staging, job_config=config).result()
        try:
            names = ", ".join(_bq_quote(f.name) for f in batch.schema)
            exprs = ", ".join(
                f"PARSE_JSON({_bq_quote(f.name)})"
                if f.name in json_columns
                else f"CAST({_bq_quote(f.name)} AS {_bigquery_type(f.type)})"
                for f in batch.schema
            )
            self._run(f"INSERT INTO {_bq_quote(self._id(table))} ({names}) SELECT {exprs} FROM {_bq_quote(staging)}")
        finally:
            self.client.delete_table(staging, not_found_ok=True)

    def create_view(self, view: str, table: str, columns: Sequence[str]) -> None:
        select = ", ".join(_bq_quote(c) for c in columns)
        self._run(
            f"CREATE OR REPLACE VIEW {_bq_quote(self._id(view))} AS SELECT {select} FROM {_bq_quote(self._id(table))}"
        )


def snowflake_type(t: pa.DataType) -> str:
    """The Snowflake column type a seeded table uses for an Arrow type (the demo, the tests' harness)."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "NUMBER(38,0)"
    if pa.types.is_floating(t):
        return "FLOAT"
    if pa.types.is_decimal(t):
        return f"NUMBER({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP_NTZ"
    return "VARCHAR"


class SnowflakeTarget:
    """A schema in fakesnow, written through snowflake-connector-python (JSON arrays unpacked by FLATTEN).

    Tables are created with unquoted names, as people type them; Snowflake stores them upper-case.
    ``executemany`` sends one row per request to fakesnow, so each chunk of rows travels as one JSON
    array bound as a single parameter, as the adapter's merge does.
    """

    def __init__(self, con: Any) -> None:
        self.con = con

    def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cur:
            cur.execute(sql, params)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def exists(self, table: str) -> bool:
        rows = self._run(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = CURRENT_SCHEMA() AND table_name = ?",
            [table.upper()],
        )
        return bool(rows[0][0])

    def create(self, table: str, schema: pa.Schema, json_columns: Sequence[str]) -> None:
        cols = ", ".join(f"{f.name} {'VARIANT' if f.name in json_columns else snowflake_type(f.type)}" for f in schema)
        self._run(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")

    def max_key(self, table: str, key: str) -> int | None:
        value = self._run(f"SELECT max({key}) FROM {table}")[0][0]
        return None if value is None else int(value)

    def append(self, table: str, batch: pa.Table, json_columns: Sequence[str]) -> None:
        exprs = ", ".join(
            f"PARSE_JSON(f.value[{i}]::VARCHAR)"
            if f.name in json_columns
            else f"f.value[{i}]::{snowflake_type(f.type)}"
            for i, f in enumerate(batch.schema)
        )
        sql = (
            f"INSERT INTO {table} ({', '.join(batch.column_names)}) "
            f"SELECT {exprs} FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?))) f"
        )
        # Numbers, dates and times as text: JSON keeps every digit and Snowflake casts them back.
        text = pa.table(
            [
                c if pa.types.is_boolean(c.type) or pa.types.is_string(c.type) else pc.cast(c, pa.string())
                for c in batch.columns
            ],
            names=batch.column_names,
        )
        per_chunk = max(1, int(SNOWFLAKE_CHUNK_BYTES / max(1.0, 1.5 * text.nbytes / max(1, text.num_rows))))
        for start in range(0, text.num_rows, per_chunk):
            payload = text.slice(start, per_chunk).to_pandas().to_json(orient="values", force_ascii=False)
            self._run(sql, [payload])

    def create_view(self, view: str, table: str, columns: Sequence[str]) -> None:
        self._run(f"CREATE OR REPLACE VIEW {view} AS SELECT {', '.join(columns)} FROM {table}")


# --- the demo: which emulator the config points at, start it, seed it ---------------------------------
def emulator_connection(config: Config, kind: str) -> ConnectionConfig:
    """The config's one connection of ``kind`` that points at a local emulator (endpoint or host set).

    Raises:
        EmulatorError: None or several such connections.
    """
    found = [
        c
        for c in config.connections.values()
        if c.type == kind
        and (
            (isinstance(c.settings, BigQuerySettings) and c.settings.endpoint)
            or (isinstance(c.settings, SnowflakeSettings) and c.settings.host)
        )
    ]
    if len(found) != 1:
        example = f"examples/demo_{kind}.yaml"
        raise EmulatorError(
            f"{config.path} has {len(found)} {kind} connections pointing at a local emulator; the demo needs "
            f"exactly one. Fix: use {example} (make demo WAREHOUSE={kind} does), or declare one like it."
        )
    return found[0]


def _data_dir(config: Config) -> Path:
    return config.store_path.parent


def source_path(config: Config, kind: str) -> Path:
    """The local DuckDB file the demo data is generated in before it is copied into the emulator."""
    return _data_dir(config) / f"demo_source_{kind}.duckdb"


@contextlib.contextmanager
def demo_emulator(config: Config, kind: str) -> Iterator[ConnectionConfig]:
    """Start the emulator the config's ``kind`` connection points at, on the ports it names; stop it afterwards.

    Data lives beside the store: ``<store folder>/bigquery`` or ``<store folder>/snowflake``.
    """
    connection = emulator_connection(config, kind)
    settings = connection.settings
    if isinstance(settings, BigQuerySettings):
        assert settings.endpoint is not None
        rest = urlsplit(settings.endpoint)
        if rest.port is None or not settings.storage_grpc_endpoint:
            raise EmulatorError(
                f"connection '{connection.name}' in {config.path} needs 'endpoint: http://127.0.0.1:PORT' and "
                "'storage_grpc_endpoint: 127.0.0.1:PORT' for the demo to start the emulator on those ports"
            )
        grpc_host, _, grpc_port = settings.storage_grpc_endpoint.rpartition(":")
        with bigquery_emulator(
            data_dir=_data_dir(config) / "bigquery",
            project=settings.project,
            port=rest.port,
            grpc_port=int(grpc_port),
            host=rest.hostname or grpc_host or "127.0.0.1",
        ):
            yield connection
    elif isinstance(settings, SnowflakeSettings):
        if settings.port is None or settings.host is None:
            raise EmulatorError(
                f"connection '{connection.name}' in {config.path} needs 'host' and 'port' for the demo to start "
                "fakesnow there"
            )
        with fakesnow_server(host=settings.host, port=settings.port, db_path=_data_dir(config) / "snowflake"):
            yield connection
    else:  # pragma: no cover - emulator_connection only returns the two kinds above
        raise EmulatorError(f"no emulator for connection type {connection.type}")


@contextlib.contextmanager
def _target(connection: ConnectionConfig) -> Iterator[_Target]:
    settings = connection.settings
    if isinstance(settings, BigQuerySettings):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        client = bigquery.Client(
            project=settings.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": settings.endpoint},
        )
        try:
            yield BigQueryTarget(client, settings.project, settings.dataset)
        finally:
            client.close()
    elif isinstance(settings, SnowflakeSettings):
        import snowflake.connector

        # Any password works against fakesnow; the config's own is used so a typo shows up here.
        password = settings.password.value() if settings.password is not None else "snow"
        con = snowflake.connector.connect(
            account=settings.account,
            user=settings.user,
            password=password or "snow",
            host=settings.host,
            port=settings.port,
            protocol=settings.protocol or "http",
            database=settings.database,
            schema=settings.schema,
            paramstyle="qmark",
            session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            login_timeout=10,
            network_timeout=60,
        )
        try:
            # Connecting creates the database and schema in fakesnow; say so explicitly for a real account.
            with con.cursor() as cur:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {settings.database}.{settings.schema}")
                cur.execute(f"USE SCHEMA {settings.database}.{settings.schema}")
            yield SnowflakeTarget(con)
        finally:
            con.close()
    else:
        raise EmulatorError(f"connection '{connection.name}' is not a BigQuery or Snowflake connection")


def seed_emulator(
    config: Config,
    kind: str,
    *,
    size: DemoSize | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[SeedResult, CopyResult]:
    """Grow the local demo data (:func:`seed_demo`) and copy what the emulator lacks into it.

    Args:
        config: A demo config with one ``kind`` connection pointing at a running emulator.
        kind: ``bigquery`` or ``snowflake``.
        size: How much data the first seed makes (default: the DuckDB demo's).
        echo: Where progress lines go.
    """
    connection = emulator_connection(config, kind)
    source = source_path(config, kind)
    seeded = seed_demo(source, size)
    with _target(connection) as target:
        copied = copy_new_rows(source, target)
    echo(
        f"seeded {connection.name} ({kind} emulator) from {source.resolve()}: +{seeded.events_added:,} events "
        f"(total {seeded.events_total:,}), +{seeded.metrics_added:,} metrics (total {seeded.metrics_total:,}); "
        f"copied {copied.describe()}"
    )
    return seeded, copied


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m planhat_pipelines.demo.emulators fakesnow --port P [--db-path DIR]``: serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m planhat_pipelines.demo.emulators", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fs = sub.add_parser("fakesnow", help="run a fakesnow server (file-backed with --db-path) until SIGTERM")
    fs.add_argument("--host", default="127.0.0.1")
    fs.add_argument("--port", type=int, required=True)
    fs.add_argument("--db-path", help="folder for one DuckDB file per database (default: in memory)")
    args = parser.parse_args(argv)
    _serve_fakesnow(args.host, args.port, args.db_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
