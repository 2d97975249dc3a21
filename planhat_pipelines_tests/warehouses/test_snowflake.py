"""Snowflake-specific behaviour beyond the contract, against fakesnow with the real connector."""

from __future__ import annotations

import json
import socket
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import snowflake.connector
import sqlglot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlglot import exp

from planhat_pipelines.config import EnvRef, SnowflakeSettings
from planhat_pipelines.errors import CredentialsError, WarehouseError
from planhat_pipelines.warehouses.base import ChangesUnavailable, ColumnKind, KeyRange
from planhat_pipelines.warehouses.snowflake import (
    SnowflakeWarehouse,
    changes_sql,
    enable_change_tracking_sql,
    json_values,
    jsonable,
    open_snowflake,
    show_tables_sql,
    snowflake_kind,
    split_changes,
)
from planhat_pipelines_tests.emulators.snowflake import EMULATOR_CONNECT_ARGS, PASSWORD_ENV, SnowflakeHarness

FQN = '"ANALYTICS"."PLANHAT"."CRM_COMPANIES"'


# --- the bulk-load payload ----------------------------------------------------------------------------
def test_json_values_keeps_row_order_json_types_and_awkward_text() -> None:
    data = pa.table(
        {
            "name": ["x", 'it\'s "quoted" \\ ü', None],
            "flag": [True, False, None],
            "amount": [Decimal("1.10"), Decimal("12345678901234567890.123456"), None],
            "tags": [[1, 2], None, [3]],
        }
    )
    assert json.loads(json_values(jsonable(data))) == [
        ["x", True, "1.100000", [1, 2]],
        ['it\'s "quoted" \\ ü', False, "12345678901234567890.123456", None],
        [None, None, None, [3]],
    ]
    assert json_values(data.slice(0, 0)) == "[]"
    many = pa.table({"n": pa.array(range(100_000))})
    assert [row[0] for row in json.loads(json_values(many))] == list(range(100_000))


# --- SQL that fakesnow cannot run: checked by parsing ------------------------------------------------
def test_changes_sql_parses_as_snowflake() -> None:
    sql = changes_sql(FQN, '"ID" AS "id", TO_JSON("CUSTOM") AS "custom"')
    tree = sqlglot.parse_one(sql, read="snowflake")
    assert isinstance(tree, exp.Select)
    changes = tree.find(exp.Changes)
    assert changes is not None
    assert changes.args["information"].name.upper() == "DEFAULT"
    at = changes.args["at_before"]
    assert at.this.upper() == "AT" and at.args["kind"].upper() == "TIMESTAMP"
    assert len(list(tree.find_all(exp.Placeholder))) == 1, "the timestamp is bound, not pasted"
    assert "METADATA$ACTION" in sql


def test_change_tracking_ddl_and_show_parse_as_snowflake() -> None:
    alter = sqlglot.parse_one(enable_change_tracking_sql(FQN), read="snowflake")
    assert isinstance(alter, exp.Alter)
    assert "CHANGE_TRACKING" in alter.sql("snowflake").upper()
    show = sqlglot.parse_one(show_tables_sql("ANALYTICS", "PLANHAT", "CRM_COMPANIES"), read="snowflake")
    assert isinstance(show, exp.Show) and show.name.upper() == "TABLES"
    assert show.args["like"].this == "CRM_COMPANIES"


def test_changes_since_without_change_tracking_is_unavailable(snowflake_harness: SnowflakeHarness) -> None:
    snowflake_harness.create_table("crm_companies", pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]}))
    result = snowflake_harness.warehouse().changes_since("crm_companies", ["id", "name"], "id", None)
    assert isinstance(result, ChangesUnavailable)
    assert "change tracking is off" in result.reason
    assert "SET CHANGE_TRACKING = TRUE" in result.reason


def test_changes_since_on_a_view_is_unavailable(snowflake_harness: SnowflakeHarness) -> None:
    snowflake_harness.create_table("accounts", pa.table({"id": pa.array([1], pa.int64())}))
    snowflake_harness.create_view("accounts_v", "SELECT id FROM accounts")
    result = snowflake_harness.warehouse().changes_since("accounts_v", ["id"], "id", "2024-01-01T00:00:00+00:00")
    assert isinstance(result, ChangesUnavailable) and "view" in result.reason


def test_capabilities() -> None:
    caps = SnowflakeWarehouse.capabilities
    assert (caps.views_writable, caps.change_tracking, caps.dialect) == (False, True, "snowflake")


# --- types and names ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("type_text", "kind", "scale"),
    [
        ("NUMBER(38,0)", ColumnKind.INTEGER, 0),
        ("NUMBER(12,2)", ColumnKind.DECIMAL, 2),
        ("INT", ColumnKind.INTEGER, 0),
        ("FLOAT", ColumnKind.FLOAT, None),
        ("VARCHAR(16777216)", ColumnKind.TEXT, None),
        ("TEXT", ColumnKind.TEXT, None),
        ("BOOLEAN", ColumnKind.BOOLEAN, None),
        ("DATE", ColumnKind.DATE, None),
        ("TIMESTAMP_NTZ(9)", ColumnKind.TIMESTAMP, None),
        ("TIMESTAMP_LTZ", ColumnKind.TIMESTAMP, None),
        ("TIMESTAMP_TZ", ColumnKind.TIMESTAMP, None),
        ("VARIANT", ColumnKind.JSON, None),
        ("OBJECT", ColumnKind.JSON, None),
        ("ARRAY", ColumnKind.JSON, None),
        ("BINARY", ColumnKind.OTHER, None),
    ],
)
def test_snowflake_kind(type_text: str, kind: ColumnKind, scale: int | None) -> None:
    assert snowflake_kind(type_text) == (kind, scale)


def test_describe_reads_snowflake_types(snowflake_harness: SnowflakeHarness) -> None:
    snowflake_harness.execute(
        "CREATE TABLE typed (id INT, amount NUMBER(12,2), ratio FLOAT, ok BOOLEAN, day DATE, "
        "seen_at TIMESTAMP_NTZ, v VARIANT, o OBJECT, a ARRAY, s VARCHAR)"
    )
    info = snowflake_harness.warehouse().describe("typed")
    kinds = {c.name: (c.kind, c.scale) for c in info.columns}
    assert kinds["ID"] == (ColumnKind.INTEGER, 0)
    assert kinds["AMOUNT"] == (ColumnKind.DECIMAL, 2)
    assert info.column("amount").type == "NUMBER(12,2)"
    assert kinds["RATIO"][0] is ColumnKind.FLOAT
    assert kinds["OK"][0] is ColumnKind.BOOLEAN
    assert kinds["DAY"][0] is ColumnKind.DATE
    assert kinds["SEEN_AT"][0] is ColumnKind.TIMESTAMP
    assert {kinds[c][0] for c in ("V", "O", "A")} == {ColumnKind.JSON}
    assert kinds["S"][0] is ColumnKind.TEXT


def test_variant_object_array_come_back_as_json_text(snowflake_harness: SnowflakeHarness) -> None:
    snowflake_harness.execute("CREATE TABLE docs (id INT, v VARIANT, o OBJECT, a ARRAY)")
    snowflake_harness.execute(
        'INSERT INTO docs SELECT 1, PARSE_JSON(\'{"plan": "pro", "tags": [1, 2]}\'), '
        "PARSE_JSON('{\"k\": true}'), PARSE_JSON('[1, \"x\", null]')"
    )
    batches = list(snowflake_harness.warehouse().read_batches("docs", ["id", "v", "o", "a"], batch_size=10))
    row = pa.Table.from_batches(batches).to_pylist()[0]
    assert all(isinstance(row[c], str) for c in ("v", "o", "a"))
    assert json.loads(row["v"]) == {"plan": "pro", "tags": [1, 2]}
    assert json.loads(row["o"]) == {"k": True}
    assert json.loads(row["a"]) == [1, "x", None]


def test_config_names_map_to_upper_case_and_batches_keep_asked_names(snowflake_harness: SnowflakeHarness) -> None:
    snowflake_harness.create_table(
        "crm_companies", pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": list("abc")})
    )
    assert snowflake_harness.fetch("SELECT COUNT(*) FROM CRM_COMPANIES") == [(3,)]  # stored upper-case
    wh = snowflake_harness.warehouse()
    rng = KeyRange("ID", after=1)
    batches = list(wh.read_batches("crm_companies", ["ID", "name"], batch_size=1, key_range=rng))
    assert [b.num_rows for b in batches] == [1, 1]
    assert batches[0].schema.names == ["ID", "name"]
    assert [b.column(1)[0].as_py() for b in batches] == ["b", "c"]
    # Schema-qualified, in the config's lower case.
    assert wh.max_key(f"{snowflake_harness.schema.lower()}.crm_companies", "id") == 3


def test_quoted_lower_case_table_is_found_by_exact_spelling(snowflake_harness: SnowflakeHarness) -> None:
    snowflake_harness.execute('CREATE TABLE "events_raw" ("event_id" INT)')
    snowflake_harness.execute('INSERT INTO "events_raw" VALUES (7)')
    wh = snowflake_harness.warehouse()
    assert wh.describe("events_raw").columns[0].name == "event_id"
    assert wh.max_key("events_raw", "event_id") == 7


def test_merge_casts_types_and_last_duplicate_wins(snowflake_harness: SnowflakeHarness) -> None:
    snowflake_harness.execute(
        "CREATE TABLE accounts (ext_id VARCHAR, big NUMBER(38,0), amount NUMBER(12,2), day DATE, custom VARIANT)"
    )
    snowflake_harness.execute("INSERT INTO accounts (ext_id, big) VALUES ('a', 1)")
    data = pa.table(
        {
            "ext_id": ["a", "b", "b"],
            "big": pa.array([9007199254740993, 2, 3], pa.int64()),
            "amount": pa.array([Decimal("12.34"), None, Decimal("0.50")], pa.decimal128(12, 2)),
            "day": pa.array([date(2024, 2, 3), None, date(2025, 1, 1)], pa.date32()),
            "custom": [json.dumps({"tier": "gold"}), None, json.dumps({"n": [1, 2]})],
        }
    )
    result = snowflake_harness.warehouse().merge("accounts", data, "ext_id")
    assert (result.inserted, result.updated) == (1, 1)
    rows = snowflake_harness.fetch("SELECT ext_id, big, amount, day, TO_JSON(custom) FROM accounts ORDER BY ext_id")
    assert rows == [
        ("a", 9007199254740993, Decimal("12.34"), date(2024, 2, 3), '{"tier":"gold"}'),
        ("b", 3, Decimal("0.50"), date(2025, 1, 1), '{"n":[1,2]}'),
    ]


def test_query_errors_name_the_connection(snowflake_harness: SnowflakeHarness) -> None:
    with pytest.raises(WarehouseError, match=r"connection 'okrs'.*query.*Fix: fix the SQL"):
        snowflake_harness.warehouse("okrs").query("SELECT * FROM no_such_table", timeout_seconds=5)


def test_a_client_side_binding_connection_is_refused(snowflake_harness: SnowflakeHarness) -> None:
    def pyformat() -> snowflake.connector.SnowflakeConnection:
        s = snowflake_harness.settings()
        return snowflake.connector.connect(
            account=s.account, user=s.user, password="snow", host=s.host, port=s.port, protocol=s.protocol,
            database=s.database, schema=s.schema, **EMULATOR_CONNECT_ARGS,
        )  # fmt: skip

    with pytest.raises(WarehouseError, match="paramstyle='qmark'"):
        SnowflakeWarehouse("wh", pyformat).probe()


# --- credentials -----------------------------------------------------------------------------------------
def _write_key(tmp_path: Path, passphrase: bytes | None) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    path = tmp_path / "rsa_key.p8"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return path


def _key_pair_settings(
    harness: SnowflakeHarness, monkeypatch: pytest.MonkeyPatch, path: Path, passphrase: str | None
) -> SnowflakeSettings:
    monkeypatch.setenv("TEST_SF_KEY_PATH", str(path))
    if passphrase is not None:
        monkeypatch.setenv("TEST_SF_KEY_PASSPHRASE", passphrase)
    return harness.settings(
        auth="key_pair",
        password=None,
        private_key_path=EnvRef("TEST_SF_KEY_PATH"),
        private_key_passphrase=EnvRef("TEST_SF_KEY_PASSPHRASE") if passphrase is not None else None,
    )


def test_key_pair_with_the_right_passphrase_connects(
    snowflake_harness: SnowflakeHarness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _key_pair_settings(snowflake_harness, monkeypatch, _write_key(tmp_path, b"s3cret"), "s3cret")
    # fakesnow accepts any JWT; this checks the key is loaded and handed to the connector.
    open_snowflake("sf", settings, connect_args=EMULATOR_CONNECT_ARGS).probe()


def test_key_pair_missing_file(
    snowflake_harness: SnowflakeHarness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _key_pair_settings(snowflake_harness, monkeypatch, tmp_path / "nope.p8", None)
    with pytest.raises(CredentialsError, match=r"connection 'sf'.*nope\.p8.*does not exist.*TEST_SF_KEY_PATH"):
        open_snowflake("sf", settings)


def test_key_pair_unreadable_pem(
    snowflake_harness: SnowflakeHarness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "garbage.p8"
    path.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    settings = _key_pair_settings(snowflake_harness, monkeypatch, path, None)
    with pytest.raises(CredentialsError, match=r"garbage\.p8.*is not a readable PEM private key"):
        open_snowflake("sf", settings)


def test_key_pair_wrong_passphrase(
    snowflake_harness: SnowflakeHarness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _key_pair_settings(snowflake_harness, monkeypatch, _write_key(tmp_path, b"right"), "wrong")
    with pytest.raises(CredentialsError, match=r"cannot be decrypted with the passphrase.*TEST_SF_KEY_PASSPHRASE"):
        open_snowflake("sf", settings)


def test_key_pair_encrypted_without_passphrase(
    snowflake_harness: SnowflakeHarness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _key_pair_settings(snowflake_harness, monkeypatch, _write_key(tmp_path, b"right"), None)
    with pytest.raises(CredentialsError, match="is encrypted but no passphrase is set"):
        open_snowflake("sf", settings)


def test_empty_password_variable(snowflake_harness: SnowflakeHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "")
    with pytest.raises(CredentialsError, match=rf"connection 'sf'.*no password is set.*Fix: set {PASSWORD_ENV}"):
        open_snowflake("sf", snowflake_harness.settings())


def test_refused_password_is_a_credentials_error_naming_the_variable(snowflake_harness: SnowflakeHarness) -> None:
    # fakesnow accepts every password, so feed the adapter the error Snowflake sends for a wrong one.
    wh = open_snowflake("sf", snowflake_harness.settings())
    refused = snowflake.connector.errors.DatabaseError(
        msg="Incorrect username or password was specified.", errno=390100, sqlstate="08004"
    )
    err = wh._connect_error(refused)
    assert isinstance(err, CredentialsError)
    assert f"set {PASSWORD_ENV} to the current password" in str(err)
    assert "connection 'sf'" in str(err) and "Incorrect username or password" in str(err)


def test_unreachable_host_is_a_credentials_error(snowflake_harness: SnowflakeHarness) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings = snowflake_harness.settings(port=closed_port)
    wh = open_snowflake("sf", settings, connect_args={**EMULATOR_CONNECT_ARGS, "login_timeout": 5})
    with pytest.raises(CredentialsError, match=r"connection 'sf'.*cannot reach Snowflake.*check the account"):
        wh.probe()


def test_split_changes_keeps_inserts_and_pure_deletes() -> None:
    # What CHANGES(INFORMATION => DEFAULT) returns: key 1 updated (DELETE+INSERT), 2 deleted, 3 inserted.
    changes = pa.table(
        {
            "id": pa.array([1, 1, 2, 3], pa.int64()),
            "name": ["old", "new", "gone", "fresh"],
            "__planhat_key": pa.array([1, 1, 2, 3], pa.int64()),
            "__planhat_action": ["DELETE", "INSERT", "DELETE", "INSERT"],
        }
    )
    rows, deleted = split_changes(changes, ["id", "name"])
    assert rows.column_names == ["id", "name"]
    assert rows.to_pylist() == [{"id": 1, "name": "new"}, {"id": 3, "name": "fresh"}]
    assert deleted.to_pylist() == [2]


def test_connection_config_parses_and_opens(snowflake_harness: SnowflakeHarness, tmp_path: Path) -> None:
    from planhat_pipelines.config import parse_config

    snowflake_harness.create_table("accounts", pa.table({"ext_id": ["a"]}))
    doc = {"store": {"catalog": "store.sqlite"}, "connections": {"sf": snowflake_harness.connection_config()}}
    settings = parse_config(doc, tmp_path / "planhat_pipelines.yaml").connections["sf"].settings
    assert isinstance(settings, SnowflakeSettings)
    with open_snowflake("sf", settings) as wh:
        assert [c.name for c in wh.describe("accounts").columns] == ["EXT_ID"]
