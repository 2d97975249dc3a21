"""The BigQuery adapter: table naming, reads (Storage API or REST), queries, Parquet-staged MERGE, probe."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as api_exceptions
from google.cloud import bigquery

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
from planhat_pipelines.warehouses.bigquery.client_errors import (
    CLIENT_ERRORS,
    credentials_problem,
    error_text,
    is_transient,
    last_error_text,
)
from planhat_pipelines.warehouses.bigquery.dialect import bigquery_column, key_parameters, merge_assignments, quote
from planhat_pipelines.warehouses.retries import (
    BigQueryRetries,
    RetriesExhausted,
    bigquery_retries,
)

#: How long the credentials probe may take, retries included (the client's default retry runs 10 minutes).
PROBE_TIMEOUT_SECONDS = 30.0
#: How long a staging table lives if a run dies before dropping it.
STAGING_TTL = timedelta(hours=6)


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
        retries: The bounded, logged retries every client call and query job gets (default
            :func:`~planhat_pipelines.warehouses.retries.bigquery_retries` with the default bounds).
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
        retries: BigQueryRetries | None = None,
    ) -> None:
        super().__init__(name)
        self.retries = retries or bigquery_retries(name)
        self.client = client
        self.project = project
        self.dataset = validate_identifier(name, dataset, "dataset")
        self.storage_api = storage_api
        self.storage_grpc_endpoint = storage_grpc_endpoint
        self.capabilities = Capabilities(views_writable=False, change_tracking=False, dialect="bigquery")
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
        if isinstance(exc, api_exceptions.RetryError):
            # The client's retries ran out of time on a rate limit, a 5xx or a dropped connection.
            return RetriesExhausted(self.name, obj, action, self.retries.bounds, last_error_text(exc))
        problem = credentials_problem(exc)
        if problem is not None:
            return CredentialsError(self.name, obj, f"{action} failed: {problem[0]}", problem[1])
        message = error_text(exc)
        return WarehouseError(self.name, obj, f"{action} failed: {message}", fix, transient=is_transient(exc))

    def _start(self, sql: str, config: bigquery.QueryJobConfig) -> bigquery.QueryJob:
        # job_retry=None turns off the insert's own 10-minute retry; result() gets the bounded job retry instead.
        return self.client.query(sql, job_config=config, retry=self.retries.api, job_retry=None)

    def _run(self, sql: str, config: bigquery.QueryJobConfig, obj: str, fix: str) -> bigquery.QueryJob:
        try:
            job = self._start(sql, config)
            job.result(retry=self.retries.api, job_retry=self.retries.job)
        except CLIENT_ERRORS as exc:
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
            bq_table = self.client.get_table(table_id, retry=self.retries.api)
        except api_exceptions.NotFound as exc:
            raise WarehouseError(
                self.name,
                f"table '{table}'",
                f"does not exist ({table_id})",
                "create it, or fix the table name (relative to the connection's dataset) in the section",
            ) from exc
        except CLIENT_ERRORS as exc:
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
        """:meth:`Warehouse.read_batches`, refusing a batch size below 1 before any request."""
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        yield from super().read_batches(table, columns, batch_size=batch_size, key_range=key_range)

    def _arrow_stream(
        self, sql: str, params: list[tuple[str, int]], batch_size: int, *, ordered: bool, obj: str
    ) -> Iterator[pa.RecordBatch]:
        job = self._run(sql, self._job_config(query_parameters=key_parameters(params)), obj, "check the mapped columns")
        try:
            rows = job.result(page_size=batch_size, retry=self.retries.api)
            if self.storage_api:
                # One stream keeps ORDER BY; unordered reads may use parallel streams. The library still
                # serves results that fit in the first REST page from that page.
                batches = rows.to_arrow_iterable(
                    bqstorage_client=self._storage_client(), max_stream_count=1 if ordered else None
                )
            else:
                batches = rows.to_arrow_iterable()
            for batch in batches:
                # Storage API batches are sized by the server: cut them to the caller's bound.
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)
        except CLIENT_ERRORS as exc:
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
        job = self._run(sql, self._job_config(query_parameters=key_parameters(params)), obj, "check the key column")
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
            job = self._start(sql, config)
            self.last_query_job = job
            rows = job.result(timeout=timeout_seconds, retry=self.retries.api, job_retry=self.retries.job)
            return rows.to_arrow(create_bqstorage_client=False)
        except concurrent.futures.TimeoutError as exc:
            if self.last_query_job is not None:
                self.last_query_job.cancel()
            raise self._query_timed_out(timeout_seconds) from exc
        except CLIENT_ERRORS as exc:
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
        assignments = merge_assignments(self.name, table, data, info)
        key_col = info.column(key).name
        # The staging table lives beside the target, so MERGE stays within one dataset (and location).
        stage_id = f"{self._table_id(table).rsplit('.', 1)[0]}._planhat_stage_{uuid.uuid4().hex}"
        obj = f"table '{table}'"
        try:
            self._load_staging(stage_id, data, obj)
            sql = (
                f"MERGE {target} AS __tgt USING {quote(stage_id)} AS __src "
                f"ON __tgt.{quote(key_col)} = {assignments[key_col]} {self.merge_actions(assignments, key_col)}"
            )
            job = self._run(sql, self._job_config(), obj, "check that the mapped columns have compatible types")
        finally:
            # A failed drop must not hide the MERGE's outcome: the table expires after STAGING_TTL anyway.
            with contextlib.suppress(*CLIENT_ERRORS):
                self.client.delete_table(stage_id, not_found_ok=True, retry=self.retries.api)
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

    def _delete_keys(self, table: str, column: Column, keys: list[str]) -> int:
        config = self._job_config(query_parameters=[bigquery.ArrayQueryParameter("keys", "STRING", keys)])
        sql = f"DELETE FROM {self._quoted(table)} WHERE CAST({quote(column.name)} AS STRING) IN UNNEST(@keys)"
        job = self._run(sql, config, f"table '{table}'", "check the table and its key column")
        return int(job.num_dml_affected_rows or 0)

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
        api = self.retries.api

        def upload() -> bigquery.LoadJob:
            # The upload's own retries (google-resumable-media) are off: ours repeat it from the buffer's start,
            # bounded and logged like every other call; a repeated load into the staging table is harmless.
            return self.client.load_table_from_file(buffer, stage_id, rewind=True, num_retries=0, job_config=config)

        try:
            api(upload)().result(retry=api)
            staged = self.client.get_table(stage_id, retry=api)
            staged.expires = datetime.now(UTC) + STAGING_TTL
            self.client.update_table(staged, ["expires"], retry=api)
        except CLIENT_ERRORS as exc:
            fix = "check that the connection may create tables in the dataset"
            raise self._fail(obj, "staging load", exc, fix) from exc

    # --- health ------------------------------------------------------------------------------------
    def probe(self) -> None:
        retry = self.retries.api.with_timeout(self.probe_timeout_seconds)
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
            problem = credentials_problem(exc)
            if problem is None:
                message = error_text(exc)
                problem = (f"a trivial query failed ({message})", "check the project, dataset and permissions")
            raise CredentialsError(self.name, f"project '{self.project}'", *problem) from exc
