"""BigQuery as the warehouse, through google-cloud-bigquery (REST) and the Storage Read API (gRPC).

Tables are named relative to the connection's dataset (``events``), or qualified once or twice
(``other_dataset.events``, ``project.dataset.events``). Identifiers are validated and backtick-quoted;
values are always query parameters. Nothing here reads the environment or opens a client at import
time: :func:`open_bigquery` does that when it is called.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import contextlib
import io
import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import google.auth
import google.auth.exceptions
import pyarrow as pa
import pyarrow.parquet as pq
import requests
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.auth.credentials import Credentials as BaseCredentials
from google.cloud import bigquery

from planhat_pipelines.config import BigQuerySettings, EnvRef
from planhat_pipelines.errors import CredentialsError, WarehouseError
from planhat_pipelines.warehouses.base import (
    KEY_LIMIT,
    Capabilities,
    Column,
    ColumnKind,
    KeyRange,
    MergeResult,
    TableInfo,
    Warehouse,
    validate_identifier,
)

#: Where OAuth refresh tokens are exchanged unless the settings say otherwise.
DEFAULT_OAUTH_TOKEN_URI = "https://oauth2.googleapis.com/token"
_SCOPES = ("https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform")
#: How long the credentials probe may take, retries included (the client's default retry runs 10 minutes).
PROBE_TIMEOUT_SECONDS = 30.0
#: How long a staging table lives if a run dies before dropping it.
STAGING_TTL = timedelta(hours=6)

# BigQuery's REST API reports legacy type names; these are the standard SQL names used in CASTs.
_STANDARD_TYPE = {
    "INTEGER": "INT64",
    "FLOAT": "FLOAT64",
    "BOOLEAN": "BOOL",
    "RECORD": "STRUCT",
}
_KINDS = {
    "INT64": ColumnKind.INTEGER,
    "FLOAT64": ColumnKind.FLOAT,
    "BOOL": ColumnKind.BOOLEAN,
    "STRING": ColumnKind.TEXT,
    "DATE": ColumnKind.DATE,
    "TIMESTAMP": ColumnKind.TIMESTAMP,
    "DATETIME": ColumnKind.TIMESTAMP,
    "JSON": ColumnKind.JSON,
    "STRUCT": ColumnKind.JSON,
}
#: What the client raises for a refused request, a failed token refresh or an unreachable host.
_CLIENT_ERRORS = (api_exceptions.GoogleAPIError, google.auth.exceptions.GoogleAuthError, requests.RequestException)
_CASTABLE = frozenset(
    {"INT64", "FLOAT64", "BOOL", "STRING", "BYTES", "NUMERIC", "BIGNUMERIC", "DATE", "DATETIME", "TIME", "TIMESTAMP"}
)
# Scales BigQuery uses when a NUMERIC/BIGNUMERIC column has no declared parameters.
_DEFAULT_SCALE = {"NUMERIC": 9, "BIGNUMERIC": 38}


def quote(name: str) -> str:
    """Backtick-quote a (possibly dotted) identifier for BigQuery's standard SQL."""
    if "`" in name or "\\" in name:
        raise ValueError(f"identifier {name!r} contains a backtick or backslash")
    return ".".join(f"`{part}`" for part in name.split("."))


def bigquery_column(field: bigquery.SchemaField) -> Column:
    """Reduce a BigQuery schema field to a Column (kind, standard SQL type text and decimal scale)."""
    base = _STANDARD_TYPE.get(field.field_type.upper(), field.field_type.upper())
    kind = _KINDS.get(base, ColumnKind.OTHER)
    scale: int | None = 0 if kind is ColumnKind.INTEGER else None
    type_text = base
    if base in _DEFAULT_SCALE:
        kind = ColumnKind.DECIMAL
        scale = field.scale if field.scale is not None else _DEFAULT_SCALE[base]
        if field.precision is not None:
            type_text = f"{base}({field.precision}, {scale})"
    if field.mode == "REPEATED":
        return Column(field.name, f"ARRAY<{type_text}>", ColumnKind.JSON, None)
    return Column(field.name, type_text, kind, scale)


class BigQueryWarehouse(Warehouse):
    """A BigQuery dataset used as the warehouse.

    Args:
        name: The connection's name in the config.
        client: A ready google-cloud-bigquery client (see :func:`open_bigquery`).
        project: The project holding ``dataset``.
        dataset: The dataset that unqualified table names refer to.
        storage_grpc_endpoint: ``host:port`` of an insecure Storage Read API (the local emulator); None
            uses Google's Storage API with the client's credentials.
        storage_api: Whether reads stream through the Storage Read API; False reads pages over REST.
    """

    kind = "bigquery"

    def __init__(
        self,
        name: str,
        client: bigquery.Client,
        *,
        project: str,
        dataset: str,
        storage_api: bool = True,
        storage_grpc_endpoint: str | None = None,
    ) -> None:
        super().__init__(name)
        self.client = client
        self.project = project
        self.dataset = validate_identifier(name, dataset, "dataset")
        self.storage_api = storage_api
        self.storage_grpc_endpoint = storage_grpc_endpoint
        self.capabilities = Capabilities(
            views_writable=False, change_tracking=False, fast_arrow_reads=storage_api, dialect="bigquery"
        )
        self._read_client: Any = None
        #: How long :meth:`probe` may take, retries included.
        self.probe_timeout_seconds = PROBE_TIMEOUT_SECONDS
        #: The job of the last :meth:`query` call (its config shows the timeout and byte cap sent).
        self.last_query_job: bigquery.QueryJob | None = None

    # --- helpers ---------------------------------------------------------------------------------
    def _table_id(self, table: str) -> str:
        """``project.dataset.table`` for a name relative to the connection's dataset."""
        validate_identifier(self.name, table, "table")
        parts = table.split(".")
        if len(parts) == 1:
            parts = [self.dataset, *parts]
        if len(parts) == 2:
            parts = [self.project, *parts]
        return ".".join(parts)

    def _quoted(self, table: str) -> str:
        project, rest = self._table_id(table).split(".", 1)
        return f"{quote(project)}.{quote(rest)}"

    def _job_config(self, **kwargs: Any) -> bigquery.QueryJobConfig:
        return bigquery.QueryJobConfig(default_dataset=f"{self.project}.{self.dataset}", **kwargs)

    def _fail(self, obj: str, action: str, exc: Exception, fix: str) -> WarehouseError:
        if isinstance(exc, CredentialsError):
            return exc
        problem = _credentials_problem(exc)
        if problem is not None:
            return CredentialsError(self.name, obj, f"{action} failed: {problem[0]}", problem[1])
        message = _error_text(exc)
        return WarehouseError(self.name, obj, f"{action} failed: {message}", fix, transient=_is_transient(exc))

    def _run(self, sql: str, config: bigquery.QueryJobConfig, obj: str, fix: str) -> bigquery.QueryJob:
        try:
            job = self.client.query(sql, job_config=config)
            job.result()
        except _CLIENT_ERRORS as exc:
            raise self._fail(obj, "query", exc, fix) from exc
        return job

    def _storage_client(self) -> Any:
        if self._read_client is None:
            # Imported here: the Storage API client pulls in gRPC, which only reads need.
            from google.cloud.bigquery_storage_v1 import BigQueryReadClient

            if self.storage_grpc_endpoint:
                import grpc
                from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
                    BigQueryReadGrpcTransport,
                )

                # No cap on incoming messages, like Google's own client: one read_rows response can exceed 4 MB.
                channel = grpc.insecure_channel(
                    self.storage_grpc_endpoint, options=[("grpc.max_receive_message_length", -1)]
                )
                self._read_client = BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))
            else:
                self._read_client = BigQueryReadClient(credentials=self.client._credentials)
        return self._read_client

    def close(self) -> None:
        if self._read_client is not None:
            self._read_client.transport.close()
            self._read_client = None
        self.client.close()

    # --- reading -----------------------------------------------------------------------------------
    def describe(self, table: str) -> TableInfo:
        table_id = self._table_id(table)
        try:
            bq_table = self.client.get_table(table_id)
        except api_exceptions.NotFound as exc:
            raise WarehouseError(
                self.name,
                f"table '{table}'",
                f"does not exist ({table_id})",
                "create it, or fix the table name (relative to the connection's dataset) in the section",
            ) from exc
        except _CLIENT_ERRORS as exc:
            raise self._fail(f"table '{table}'", "describe", exc, "check the table name and permissions") from exc
        columns = tuple(bigquery_column(f) for f in bq_table.schema)
        return TableInfo(self.name, table, columns, is_view=bq_table.table_type in ("VIEW", "MATERIALIZED_VIEW"))

    @staticmethod
    def quote(name: str) -> str:
        return quote(name)

    @staticmethod
    def json_text(column_sql: str) -> str:
        # TO_JSON_STRING(NULL) is the text 'null': keep SQL NULLs as NULLs.
        return f"IF({column_sql} IS NULL, NULL, TO_JSON_STRING({column_sql}))"

    def read_batches(
        self,
        table: str,
        columns: Sequence[str],
        *,
        batch_size: int,
        key_range: KeyRange | None = None,
    ) -> Iterator[pa.RecordBatch]:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        info = self.describe(table)
        sql = f"SELECT {self.select_list(info, columns)} FROM {self._quoted(table)}"
        params: list[bigquery.ScalarQueryParameter] = []
        if key_range is not None:
            where, order, named = self.key_filter(info, key_range)
            params = _key_parameters(named)
            sql += f" WHERE {where} ORDER BY {order}"
        obj = f"table '{table}'"
        job = self._run(sql, self._job_config(query_parameters=params), obj, "check the mapped columns")
        try:
            rows = job.result(page_size=batch_size)
            if self.storage_api:
                # One stream keeps ORDER BY; unordered reads may use parallel streams. The library still
                # serves results that fit in the first REST page from that page.
                batches = rows.to_arrow_iterable(
                    bqstorage_client=self._storage_client(), max_stream_count=1 if key_range is not None else None
                )
            else:
                batches = rows.to_arrow_iterable()
            for batch in batches:
                # Storage API batches are sized by the server: cut them to the caller's bound.
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)
        except _CLIENT_ERRORS as exc:
            fix = "check storage_grpc_endpoint, or set storage_api: false to read over REST"
            raise self._fail(obj, "read", exc, fix) from exc

    @staticmethod
    def text_is_key(text_sql: str) -> str:
        return f"REGEXP_CONTAINS({text_sql}, r'^\\s*[0-9]{{1,32}}\\s*$')"

    @staticmethod
    def text_to_number(text_sql: str) -> str:
        return f"SAFE_CAST(TRIM({text_sql}) AS BIGNUMERIC)"

    @staticmethod
    def to_integer(number_sql: str) -> str:
        return f"CAST({number_sql} AS BIGNUMERIC)"

    key_limit_literal = f"BIGNUMERIC '{KEY_LIMIT}'"

    def integer_key_sql(self, column: Column) -> str:
        # A valid float key is below 2**53: INT64 holds it exactly (a float -> BIGNUMERIC cast need not).
        if column.kind is ColumnKind.FLOAT:
            return f"CAST({self.key_sql(column)} AS INT64)"
        return super().integer_key_sql(column)

    def valid_key_sql(self, column: Column) -> str:
        # INT64 (at most 19 digits) and NUMERIC (29) keys are always below 10**32: only BIGNUMERIC needs the bound.
        if column.kind is ColumnKind.INTEGER or column.type.startswith("NUMERIC"):
            key = self.key_sql(column)
            whole = "" if column.is_integer_valued else f" AND {key} = FLOOR({key})"
            return f"({key} >= 0{whole})"
        return super().valid_key_sql(column)

    def placeholder(self, name: str) -> str:
        return f"@{name}"

    def table_sql(self, table: str) -> str:
        return self._quoted(table)

    def _key_rows(self, sql: str, params: list[tuple[str, int]], obj: str) -> list[tuple[Any, ...]]:
        job = self._run(sql, self._job_config(query_parameters=_key_parameters(params)), obj, "check the key column")
        return [tuple(row.values()) for row in job.result()]

    def query_job_config(
        self, *, timeout_seconds: float | None = None, max_bytes_billed: int | None = None
    ) -> bigquery.QueryJobConfig:
        """The job config :meth:`query` sends: default dataset, server-side timeout and byte cap."""
        config = self._job_config()
        if timeout_seconds is not None:
            config.job_timeout_ms = max(1, int(timeout_seconds * 1000))
        if max_bytes_billed is not None:
            config.maximum_bytes_billed = max_bytes_billed
        return config

    def query(self, sql: str, *, timeout_seconds: float | None = None, max_bytes_billed: int | None = None) -> pa.Table:
        config = self.query_job_config(timeout_seconds=timeout_seconds, max_bytes_billed=max_bytes_billed)
        self.last_query_job = None
        try:
            job = self.client.query(sql, job_config=config)
            self.last_query_job = job
            rows = job.result(timeout=timeout_seconds)
            return rows.to_arrow(create_bqstorage_client=False)
        except concurrent.futures.TimeoutError as exc:
            if self.last_query_job is not None:
                self.last_query_job.cancel()
            raise WarehouseError(
                self.name,
                "query",
                f"timed out after {timeout_seconds} s",
                "simplify the query or raise timeout_seconds",
            ) from exc
        except _CLIENT_ERRORS as exc:
            fix = "fix the SQL (tables are relative to the connection's dataset)"
            if "bytes billed" in str(exc).lower():
                fix = "narrow the query or raise max_bytes_billed"
            raise self._fail("query", "query", exc, fix) from exc

    # --- writing -----------------------------------------------------------------------------------
    def _merge(self, table: str, data: pa.Table, key: str, info: TableInfo) -> MergeResult:
        target = self._quoted(table)
        if key not in data.column_names:
            raise WarehouseError(
                self.name,
                f"table '{table}'",
                f"the records to merge have no key column '{key}'",
                "map the section's warehouse key to a field that is sent",
            )
        assignments: dict[str, str] = {}
        for name in data.column_names:
            col = info.column(name)
            source = f"__src.{quote(name)}"
            if col.type.startswith("ARRAY<") or col.type == "STRUCT":
                raise WarehouseError(
                    self.name,
                    f"table '{table}'",
                    f"column '{col.name}' is {col.type}, which cannot be written from JSON text",
                    "map the field to a STRING or JSON column instead",
                )
            if col.type == "JSON":
                is_text = pa.types.is_string(data.schema.field(name).type) or pa.types.is_large_string(
                    data.schema.field(name).type
                )
                assignments[col.name] = f"PARSE_JSON({source})" if is_text else f"TO_JSON({source})"
            elif col.type.split("(")[0] in _CASTABLE:
                # The staged column has Parquet's type (FLOAT64 for a double, ...): cast to the target's.
                assignments[col.name] = f"CAST({source} AS {col.type.split('(')[0]})"
            else:
                assignments[col.name] = source
        key_col = info.column(key).name
        # The staging table lives beside the target, so MERGE stays within one dataset (and location).
        stage_id = f"{self._table_id(table).rsplit('.', 1)[0]}._planhat_stage_{uuid.uuid4().hex}"
        obj = f"table '{table}'"
        try:
            self._load_staging(stage_id, data, obj)
            sets = ", ".join(f"{quote(c)} = {expr}" for c, expr in assignments.items() if c != key_col)
            matched = f"WHEN MATCHED THEN UPDATE SET {sets} " if sets else ""
            sql = (
                f"MERGE {target} AS __tgt USING {quote(stage_id)} AS __src "
                f"ON __tgt.{quote(key_col)} = {assignments[key_col]} "
                f"{matched}WHEN NOT MATCHED THEN INSERT ({', '.join(quote(c) for c in assignments)}) "
                f"VALUES ({', '.join(assignments.values())})"
            )
            job = self._run(sql, self._job_config(), obj, "check that the mapped columns have compatible types")
        finally:
            # A failed drop must not hide the MERGE's outcome: the table expires after STAGING_TTL anyway.
            with contextlib.suppress(*_CLIENT_ERRORS):
                self.client.delete_table(stage_id, not_found_ok=True)
        stats = job.dml_stats
        if stats is not None:
            return MergeResult(inserted=stats.inserted_row_count, updated=stats.updated_row_count)
        affected = job.num_dml_affected_rows or 0
        raise WarehouseError(
            self.name,
            obj,
            f"merge wrote {affected} rows but BigQuery returned no insert/update split",
            "report this; the rows were written",
        )

    def _load_staging(self, stage_id: str, data: pa.Table, obj: str) -> None:
        # Columns without a type (all nulls) cannot be loaded; STRING casts to anything in the MERGE.
        data = pa.table(
            {
                n: (c.cast(pa.string()) if pa.types.is_null(c.type) else c)
                for n, c in zip(data.column_names, data.columns, strict=True)
            }
        )
        buffer = io.BytesIO()
        pq.write_table(data, buffer)
        buffer.seek(0)
        config = bigquery.LoadJobConfig(source_format="PARQUET", write_disposition="WRITE_TRUNCATE")
        try:
            self.client.load_table_from_file(buffer, stage_id, job_config=config).result()
            staged = self.client.get_table(stage_id)
            staged.expires = datetime.now(UTC) + STAGING_TTL
            self.client.update_table(staged, ["expires"])
        except _CLIENT_ERRORS as exc:
            fix = "check that the connection may create tables in the dataset"
            raise self._fail(obj, "staging load", exc, fix) from exc

    # --- health ------------------------------------------------------------------------------------
    def probe(self) -> None:
        retry = bigquery.DEFAULT_RETRY.with_timeout(self.probe_timeout_seconds)
        try:
            job = self.client.query("SELECT 1", job_config=self._job_config(), retry=retry, job_retry=None)
            list(job.result(timeout=self.probe_timeout_seconds, retry=retry))
        except concurrent.futures.TimeoutError as exc:
            raise CredentialsError(
                self.name,
                f"project '{self.project}'",
                f"a trivial query did not finish in {self.probe_timeout_seconds:g} s",
                "check the endpoint and BigQuery's status",
            ) from exc
        except Exception as exc:
            problem = _credentials_problem(exc)
            if problem is None:
                message = _error_text(exc)
                problem = (f"a trivial query failed ({message})", "check the project, dataset and permissions")
            raise CredentialsError(self.name, f"project '{self.project}'", *problem) from exc


_INT64_MAX = 2**63 - 1
#: Client errors a later attempt can get past: 5xx, rate limits, dropped connections and timeouts.
_TRANSIENT = (
    api_exceptions.ServerError,
    api_exceptions.TooManyRequests,
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT)


def _key_parameters(named: list[tuple[str, int]]) -> list[bigquery.ScalarQueryParameter]:
    """Key bounds as query parameters: INT64 where they fit, BIGNUMERIC for longer keys (up to 32 digits)."""
    return [
        bigquery.ScalarQueryParameter(name, "INT64", value)
        if abs(value) <= _INT64_MAX
        else bigquery.ScalarQueryParameter(name, "BIGNUMERIC", Decimal(value))
        for name, value in named
    ]


def _error_text(exc: BaseException) -> str:
    """The server's own error messages, without the client's job-id and location trailer."""
    errors = getattr(exc, "errors", None) or []
    messages = list(dict.fromkeys(e["message"] for e in errors if isinstance(e, dict) and e.get("message")))
    if messages:
        return "; ".join(messages)
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _credentials_problem(exc: BaseException) -> tuple[str, str] | None:
    """(problem, fix) when ``exc`` means the credentials or the endpoint do not work, else None."""
    if isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
        return (
            f"no application default credentials ({exc})",
            "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a key file, "
            "or use auth: service_account",
        )
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return (
            f"the token refresh was refused ({exc})",
            "re-authorise (a new OAuth refresh token) or rotate the service-account key, then update its env var",
        )
    if isinstance(exc, api_exceptions.Unauthorized):
        return (f"the credentials were rejected ({exc.message})", "re-authorise or rotate the key")
    if isinstance(exc, api_exceptions.Forbidden):
        return (
            f"access was denied ({exc.message})",
            "grant the account BigQuery Job User and Data Editor on the project/dataset",
        )
    if isinstance(exc, google.auth.exceptions.TransportError | requests.ConnectionError | api_exceptions.RetryError):
        return (f"BigQuery cannot be reached ({exc})", "check the endpoint setting and the network")
    if isinstance(exc, api_exceptions.ServiceUnavailable):
        return (f"BigQuery is unavailable ({exc.message})", "check the endpoint (or storage_grpc_endpoint) and retry")
    return None


# --- opening a connection ------------------------------------------------------------------------------
def _env_value(name: str, ref: EnvRef | None, setting: str) -> str:
    value = ref.value().strip() if ref is not None else ""
    if not value:
        where = f"environment variable {ref.name}" if ref is not None else f"setting '{setting}'"
        raise CredentialsError(
            name, setting, f"{where} is empty or unset", f"set it ({'export ' + ref.name + '=...' if ref else setting})"
        )
    return value


def _service_account_info(name: str, ref: EnvRef | None) -> dict[str, Any]:
    """The key JSON from a key file path or base64-encoded JSON (as dagster-gcp's gcp_credentials takes)."""
    value = _env_value(name, ref, "service_account_key")
    var = ref.name if ref is not None else "service_account_key"
    path = Path(value).expanduser()
    looks_like_path = value.startswith(("/", "./", "../", "~")) or value.endswith(".json")
    try:
        is_file = path.is_file()
    except OSError:  # e.g. a base64 key is longer than a file name may be
        is_file = False
    if is_file:
        source = f"key file '{path}' (from {var})"
        try:
            text = path.read_text()
        except OSError as exc:
            raise CredentialsError(
                name, "service_account_key", f"{source} cannot be read ({exc})", "fix its permissions"
            ) from exc
    elif looks_like_path:
        raise CredentialsError(
            name,
            "service_account_key",
            f"key file '{path}' (from {var}) does not exist",
            f"point {var} at the downloaded JSON key file, or set it to the base64-encoded key JSON",
        )
    else:
        source = f"the base64 key in {var}"
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise CredentialsError(
                name,
                "service_account_key",
                f"{var} is neither an existing key file nor base64-encoded key JSON",
                f"set {var} to the key file's path or to the output of `base64 -w0 key.json`",
            ) from None
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialsError(
            name,
            "service_account_key",
            f"{source} is not JSON ({exc.msg} at line {exc.lineno})",
            "download a new JSON key for the service account (rotate the key) and update the setting",
        ) from exc
    if not isinstance(info, dict):
        raise CredentialsError(
            name, "service_account_key", f"{source} is not a JSON object", "use the JSON key file Google issued"
        )
    info["__source__"] = source
    return info


def _credentials(name: str, settings: BigQuerySettings) -> BaseCredentials:
    auth = settings.auth
    if auth == "service_account":
        from google.oauth2 import service_account

        info = _service_account_info(name, settings.service_account_key)
        source = info.pop("__source__")
        try:
            return service_account.Credentials.from_service_account_info(info, scopes=_SCOPES)
        except (ValueError, KeyError) as exc:
            raise CredentialsError(
                name,
                "service_account_key",
                f"{source} is not a usable service-account key ({exc})",
                "download a new JSON key for the service account (rotate the key) and update the setting",
            ) from exc
    if auth == "oauth":
        from google.oauth2.credentials import Credentials as OAuthCredentials

        return OAuthCredentials(
            token=None,
            refresh_token=_env_value(name, settings.oauth_refresh_token, "oauth_refresh_token"),
            client_id=_env_value(name, settings.oauth_client_id, "oauth_client_id"),
            client_secret=_env_value(name, settings.oauth_client_secret, "oauth_client_secret"),
            token_uri=settings.oauth_token_uri or DEFAULT_OAUTH_TOKEN_URI,
            scopes=list(_SCOPES),
        )
    if auth == "adc":
        if settings.endpoint:
            # A custom endpoint is the local emulator: it takes no credentials.
            return AnonymousCredentials()
        try:
            credentials, _ = google.auth.default(scopes=list(_SCOPES))
        except google.auth.exceptions.DefaultCredentialsError as exc:
            problem, fix = _credentials_problem(exc) or (str(exc), "")
            raise CredentialsError(name, "auth: adc", problem, fix) from exc
        return credentials
    raise CredentialsError(name, "auth", f"unknown auth '{auth}'", "use service_account, oauth or adc")


def open_bigquery(name: str, settings: BigQuerySettings) -> BigQueryWarehouse:
    """Build the BigQuery client from ``settings`` now (reading the env vars they name).

    Args:
        name: The connection's name, used in every message.
        settings: The connection's settings from the config.

    Raises:
        CredentialsError: A key or token is missing or malformed, or no default credentials exist.
    """
    credentials = _credentials(name, settings)
    client_options = {"api_endpoint": settings.endpoint} if settings.endpoint else None
    client = bigquery.Client(
        project=settings.project,
        credentials=credentials,
        location=settings.location,
        client_options=client_options,
    )
    # Pointing at an emulator without a Storage endpoint must not fall through to Google's Storage API.
    storage_api = settings.storage_api and (settings.endpoint is None or settings.storage_grpc_endpoint is not None)
    return BigQueryWarehouse(
        name,
        client,
        project=settings.project,
        dataset=settings.dataset,
        storage_api=storage_api,
        storage_grpc_endpoint=settings.storage_grpc_endpoint,
    )
