"""BigQuery-specific behaviour beyond the contract: Storage vs REST reads, auth errors, job settings, JSON.

Everything runs against the local-bigquery emulator with the real google-cloud-bigquery and google-auth
clients; the only other server is a local token endpoint that refuses refresh tokens like Google does.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.cloud import bigquery

from planhat_pipelines.config import BigQuerySettings, EnvRef
from planhat_pipelines.errors import CredentialsError, WarehouseError
from planhat_pipelines.warehouses.base import ColumnKind, KeyRange
from planhat_pipelines.warehouses.bigquery import BigQueryWarehouse, open_bigquery
from planhat_pipelines_tests.emulators.bigquery import BigQueryHarness


def _events(n: int) -> pa.Table:
    return pa.table(
        {
            "event_id": pa.array(range(1, n + 1), pa.int64()),
            "user_email": [f"user{i % 7}@example.com" for i in range(1, n + 1)],
            "payload": [json.dumps({"plan": "pro", "seats": i}) for i in range(1, n + 1)],
        }
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read(wh: BigQueryWarehouse, batch_size: int, key_range: KeyRange | None = None) -> list[pa.RecordBatch]:
    return list(wh.read_batches("events", ["event_id", "payload"], batch_size=batch_size, key_range=key_range))


# --- reads ---------------------------------------------------------------------------------------------
def test_storage_read_and_rest_fallback_return_the_same_rows(bigquery_harness: BigQueryHarness) -> None:
    bigquery_harness.create_table("events", _events(2_500), json_columns=["payload"])
    storage = bigquery_harness.warehouse("storage")
    rest = bigquery_harness.warehouse("rest", storage_api=False)
    assert storage.storage_api and not rest.storage_api
    rng = KeyRange("event_id", after=100, through=2_400)
    results = {}
    for wh in (storage, rest):
        batches = _read(wh, 300, rng)
        assert all(0 < b.num_rows <= 300 for b in batches)
        table = pa.Table.from_batches(batches)
        results[wh.name] = table.to_pylist()
        assert table.column("event_id").to_pylist() == list(range(101, 2_401))
    assert results["storage"] == results["rest"]
    assert json.loads(results["storage"][0]["payload"]) == {"plan": "pro", "seats": 101}


def test_storage_read_of_a_response_over_grpcs_default_4_mb_limit(bigquery_harness: BigQueryHarness) -> None:
    """local-bigquery answers a whole range in one ReadRows message; the channel must not cap it at 4 MB."""
    n = 12_000
    wide = pa.table({"event_id": pa.array(range(1, n + 1), pa.int64()), "blob": ["x" * 500] * n})  # ~6 MB
    bigquery_harness.create_table("wide", wide)
    wh = bigquery_harness.warehouse("storage")
    batches = list(wh.read_batches("wide", ["event_id", "blob"], batch_size=50_000, key_range=KeyRange("event_id")))
    assert sum(b.num_rows for b in batches) == n


def test_storage_reads_really_go_through_the_storage_endpoint(bigquery_harness: BigQueryHarness) -> None:
    # With a dead Storage endpoint the read must fail: proof that the fast path is the one used
    # (the result is larger than one REST page, so the client cannot serve it from cached pages).
    bigquery_harness.create_table("events", _events(1_000), json_columns=["payload"])
    dead = bigquery_harness.warehouse("fast", storage_grpc_endpoint=f"127.0.0.1:{_closed_port()}")
    with pytest.raises(WarehouseError, match=r"connection 'fast'.*events.*storage_grpc_endpoint"):
        _read(dead, 100, KeyRange("event_id"))
    assert len(pa.Table.from_batches(_read(bigquery_harness.warehouse(), 100, KeyRange("event_id")))) == 1_000


def test_emulator_endpoint_without_storage_endpoint_reads_over_rest(bigquery_harness: BigQueryHarness) -> None:
    # Never fall through to Google's real Storage API when the connection points at a custom endpoint.
    bigquery_harness.create_table("events", _events(50), json_columns=["payload"])
    wh = bigquery_harness.warehouse(storage_grpc_endpoint=None)
    assert not wh.storage_api
    assert pa.Table.from_batches(_read(wh, 20)).num_rows == 50


def test_semi_structured_columns_come_back_as_json_text(bigquery_harness: BigQueryHarness) -> None:
    bigquery_harness.execute(
        "CREATE TABLE typed AS SELECT 1 AS id, STRUCT(1 AS a, 'x' AS b) AS s, [1, 2, 3] AS arr, "
        'PARSE_JSON(\'{"k": [1, {"z": null}]}\') AS j, CAST(NULL AS JSON) AS j_null, '
        "CAST(1.5 AS NUMERIC) AS n, CAST(2 AS BIGNUMERIC) AS bn, 2.5 AS f, TRUE AS b, DATE '2026-01-02' AS d, "
        "TIMESTAMP '2026-01-02 03:04:05+00' AS ts, DATETIME '2026-01-02 03:04:05' AS dt, 'txt' AS t"
    )
    wh = bigquery_harness.warehouse()
    info = wh.describe("typed")
    kinds = {c.name: c.kind for c in info.columns}
    assert kinds == {
        "id": ColumnKind.INTEGER,
        "s": ColumnKind.JSON,
        "arr": ColumnKind.JSON,
        "j": ColumnKind.JSON,
        "j_null": ColumnKind.JSON,
        "n": ColumnKind.DECIMAL,
        "bn": ColumnKind.DECIMAL,
        "f": ColumnKind.FLOAT,
        "b": ColumnKind.BOOLEAN,
        "d": ColumnKind.DATE,
        "ts": ColumnKind.TIMESTAMP,
        "dt": ColumnKind.TIMESTAMP,
        "t": ColumnKind.TEXT,
    }
    assert (info.column("n").scale, info.column("bn").scale) == (9, 38)
    assert info.column("arr").type == "ARRAY<INT64>"
    for storage_api in (True, False):
        reader = bigquery_harness.warehouse(storage_api=storage_api)
        (row,) = pa.Table.from_batches(
            reader.read_batches("typed", ["s", "arr", "j", "j_null"], batch_size=10)
        ).to_pylist()
        assert json.loads(row["s"]) == {"a": 1, "b": "x"}
        assert json.loads(row["arr"]) == [1, 2, 3]
        assert json.loads(row["j"]) == {"k": [1, {"z": None}]}
        assert row["j_null"] is None  # SQL NULL stays NULL, not the text 'null'


# --- writes --------------------------------------------------------------------------------------------
def test_merge_casts_into_numeric_and_json_columns_and_drops_staging(bigquery_harness: BigQueryHarness) -> None:
    bigquery_harness.execute(
        "CREATE TABLE accounts AS "
        "SELECT 'a' AS ext_id, CAST(10 AS NUMERIC) AS arr, PARSE_JSON('{\"tier\": 1}') AS custom"
    )
    wh = bigquery_harness.warehouse()
    data = pa.table({"ext_id": ["a", "b"], "arr": [12.5, 7.25], "custom": ['{"tier": 2}', '{"tier": 3}']})
    result = wh.merge("accounts", data, "ext_id")
    assert (result.inserted, result.updated) == (1, 1)
    rows = sorted(bigquery_harness.fetch("SELECT ext_id, arr, TO_JSON_STRING(custom) FROM accounts"))
    assert rows == [("a", Decimal("12.5"), '{"tier":2}'), ("b", Decimal("7.25"), '{"tier":3}')]
    tables = [t.table_id for t in bigquery_harness.client.list_tables(bigquery_harness.dataset)]
    assert tables == ["accounts"]


# --- queries -------------------------------------------------------------------------------------------
def test_query_sends_timeout_and_bytes_cap_on_the_job(bigquery_harness: BigQueryHarness) -> None:
    bigquery_harness.create_table("events", _events(5), json_columns=["payload"])
    wh = bigquery_harness.warehouse()
    result = wh.query("SELECT count(*) AS n FROM events", timeout_seconds=12.5, max_bytes_billed=10_000_000)
    assert result.column("n").to_pylist() == [5]
    assert wh.last_query_job is not None
    # Read the job back from the server: this is what BigQuery was asked to enforce.
    job = bigquery_harness.client.get_job(wh.last_query_job.job_id, location=wh.last_query_job.location)
    assert isinstance(job, bigquery.QueryJob)
    config = job.configuration
    assert config.maximum_bytes_billed == 10_000_000
    # The client hands the REST value back as its JSON string form.
    assert int(config.job_timeout_ms) == 12_500


def test_query_error_names_connection(bigquery_harness: BigQueryHarness) -> None:
    wh = bigquery_harness.warehouse("okr_wh")
    with pytest.raises(WarehouseError, match=r"connection 'okr_wh', query: query failed: .*no_such_table.*Fix"):
        wh.query("SELECT count(*) FROM no_such_table")


# --- credentials ---------------------------------------------------------------------------------------
def _settings(**kwargs: object) -> BigQuerySettings:
    return BigQuerySettings(project="p", dataset="d", **kwargs)  # type: ignore[arg-type]


def _service_account_key(token_uri: str) -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "planhat-sync@p.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }


@pytest.fixture
def refusing_token_server() -> Iterator[str]:
    """A local OAuth token endpoint answering every request as Google does for a revoked grant."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/token"
    server.shutdown()
    server.server_close()


def test_missing_key_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BQ_KEY", str(tmp_path / "nope.json"))
    settings = _settings(auth="service_account", service_account_key=EnvRef("BQ_KEY"))
    with pytest.raises(
        CredentialsError, match=r"connection 'bq'.*key file '.*nope.json' \(from BQ_KEY\) does not exist"
    ):
        open_bigquery("bq", settings)


def test_unset_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BQ_KEY_UNSET", raising=False)
    settings = _settings(auth="service_account", service_account_key=EnvRef("BQ_KEY_UNSET"))
    with pytest.raises(CredentialsError, match="environment variable BQ_KEY_UNSET is empty or unset"):
        open_bigquery("bq", settings)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64 at all!", "BQ_KEY is neither an existing key file nor base64-encoded key JSON"),
        (base64.b64encode(b"{not json").decode(), "the base64 key in BQ_KEY is not JSON"),
        (base64.b64encode(b'{"type": "service_account"}').decode(), "is not a usable service-account key"),
    ],
)
def test_malformed_key_is_explained(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setenv("BQ_KEY", value)
    settings = _settings(auth="service_account", service_account_key=EnvRef("BQ_KEY"))
    with pytest.raises(CredentialsError, match=message) as info:
        open_bigquery("bq", settings)
    assert "Fix:" in str(info.value)


def test_key_file_and_base64_key_both_open(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = _service_account_key("http://127.0.0.1:9/token")
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    for value in (str(path), base64.b64encode(json.dumps(key).encode()).decode()):
        monkeypatch.setenv("BQ_KEY", value)
        wh = open_bigquery("bq", _settings(auth="service_account", service_account_key=EnvRef("BQ_KEY")))
        assert wh.client._credentials.service_account_email == key["client_email"]
        wh.close()


def test_revoked_service_account_key_fails_probe_with_rotate_hint(
    bigquery_harness: BigQueryHarness, refusing_token_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _service_account_key(refusing_token_server)
    monkeypatch.setenv("BQ_KEY", base64.b64encode(json.dumps(key).encode()).decode())
    wh = bigquery_harness.warehouse(
        "prod_bq", auth="service_account", service_account_key=EnvRef("BQ_KEY"), storage_grpc_endpoint=None
    )
    with pytest.raises(CredentialsError, match=r"connection 'prod_bq'.*token refresh was refused.*rotate"):
        wh.probe()


def test_revoked_oauth_refresh_token_fails_probe_with_reauthorise_hint(
    bigquery_harness: BigQueryHarness, refusing_token_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("BQ_CLIENT_ID", "BQ_CLIENT_SECRET", "BQ_REFRESH"):
        monkeypatch.setenv(var, f"{var.lower()}-value")
    wh = bigquery_harness.warehouse(
        "oauth_bq",
        auth="oauth",
        oauth_client_id=EnvRef("BQ_CLIENT_ID"),
        oauth_client_secret=EnvRef("BQ_CLIENT_SECRET"),
        oauth_refresh_token=EnvRef("BQ_REFRESH"),
        oauth_token_uri=refusing_token_server,
    )
    with pytest.raises(CredentialsError, match=r"connection 'oauth_bq'.*invalid_grant.*re-authorise"):
        wh.probe()


def test_missing_oauth_secret_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BQ_CLIENT_ID", "id")
    monkeypatch.delenv("BQ_CLIENT_SECRET", raising=False)
    monkeypatch.setenv("BQ_REFRESH", "r")
    settings = _settings(
        auth="oauth",
        oauth_client_id=EnvRef("BQ_CLIENT_ID"),
        oauth_client_secret=EnvRef("BQ_CLIENT_SECRET"),
        oauth_refresh_token=EnvRef("BQ_REFRESH"),
    )
    with pytest.raises(CredentialsError, match="BQ_CLIENT_SECRET is empty or unset"):
        open_bigquery("bq", settings)


def test_unreachable_endpoint_fails_probe_with_endpoint_hint() -> None:
    wh = open_bigquery("down_bq", _settings(endpoint=f"http://127.0.0.1:{_closed_port()}", storage_api=False))
    wh.probe_timeout_seconds = 2
    with pytest.raises(CredentialsError, match=r"connection 'down_bq'.*cannot be reached.*check the endpoint"):
        wh.probe()
