"""The config file: a valid config parses; every mistake names file, section, field and the fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from planhat_pipelines.config import Direction, load_config, parse_config
from planhat_pipelines.errors import ConfigError
from planhat_pipelines.store import StoreLocation

ROOT = Path(__file__).resolve().parents[1]


def _base() -> dict[str, Any]:
    return {
        "store": {"catalog": "store.sqlite"},
        "connections": {"wh": {"type": "duckdb", "path": "wh.duckdb"}},
        "crm": [
            {
                "name": "companies",
                "model": "company",
                "connection": "wh",
                "table": "crm_companies",
                "direction": "both",
                "keys": {"planhat": "externalId", "warehouse": "company_key"},
                "fields": [
                    {"planhat": "name", "warehouse": "name"},
                    {"planhat": "custom.tier", "warehouse": "attrs", "path": "plan.tier", "direction": "receive"},
                ],
            }
        ],
        "usage": [
            {
                "name": "events",
                "kind": "activities",
                "model": "enduser",
                "connection": "wh",
                "table": "events",
                "key": "event_id",
                "record_match": "email",
                "fields": {"record": "email", "action": "action", "date": "ts"},
                "cadence": {"every_minutes": 10},
            }
        ],
        "okrs": [
            {
                "name": "grow",
                "key_results": [
                    {
                        "name": "leads",
                        "connection": "wh",
                        "query": "SELECT 1",
                        "target": 10,
                        "start_date": "2026-01-01",
                        "end_date": "2026-12-31",
                    }
                ],
            }
        ],
    }


def test_a_config_without_store_gets_the_embedded_sqlite_catalog_under_dot_data(tmp_path: Path) -> None:
    doc = _base()
    del doc["store"]
    store = parse_config(doc, tmp_path / "c.yaml").store
    assert (store.kind, store.catalog) == ("sqlite", tmp_path / ".data" / "planhat.sqlite")
    assert store.data_path == str(tmp_path / ".data" / "planhat_files")
    assert store.retention_days == 30


def test_store_catalog_kinds_and_data_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def store(section: dict[str, Any]) -> StoreLocation:
        return parse_config({**_base(), "store": section}, tmp_path / "c.yaml").store

    assert store({"catalog": "a/s.duckdb"}).kind == "duckdb"
    assert store({"catalog": "s.db", "data_path": "files"}).data_path == str(tmp_path / "files")
    assert store({"catalog": "s.db", "data_path": "s3://b/p/"}).remote_data
    monkeypatch.setenv("CATALOG_PW", "secret")
    pg = store(
        {"postgres": {"host": "h", "database": "d", "user": "u", "password": {"env": "CATALOG_PW"}}, "data_path": "d"}
    )
    assert pg.kind == "postgres" and pg.postgres is not None and pg.postgres.password_env == "CATALOG_PW"
    assert "secret" not in pg.describe() and "password='secret'" in pg.postgres.dsn()


def test_valid_config_parses_into_typed_objects(tmp_path: Path) -> None:
    config = parse_config(_base(), tmp_path / "c.yaml")
    assert config.store.catalog == tmp_path / "store.sqlite"
    crm = config.crm[0]
    assert crm.direction is Direction.BOTH and crm.model.slug == "company"
    assert crm.fields[1].custom_name == "tier" and crm.fields[1].path == "plan.tier"
    assert config.usage[0].cadence.every_minutes == 10
    assert config.usage[0].partition_span >= config.usage[0].batch_size
    assert config.key_results[0].objective == "grow"


def test_the_shipped_configs_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "GCP_SERVICE_ACCOUNT_KEY",
        "BQ_OAUTH_CLIENT_ID",
        "BQ_OAUTH_CLIENT_SECRET",
        "BQ_OAUTH_REFRESH_TOKEN",
        "SNOWFLAKE_PASSWORD",
        "SNOWFLAKE_PRIVATE_KEY_PATH",
        "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
        "PLANHAT_TEST_SNOWFLAKE_PASSWORD",
        "DEMO_SNOWFLAKE_PASSWORD",
        "PLANHAT_ALERTS_WEBHOOK",
    ):
        monkeypatch.setenv(var, "x")
    demo = load_config(ROOT / "planhat_pipelines.yaml")
    assert {s.model.slug for s in demo.crm} >= {"company", "enduser", "license"}
    assert {s.kind for s in demo.usage} == {"activities", "metrics"}
    assert len({s.cadence for s in demo.usage}) == 2
    assert len(demo.objectives[0].key_results) == 2
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        load_config(path)


def _mutate(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(_base())
    target: Any = data
    parts = path.split("/")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if value is DELETE:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return data


class _Delete:
    """The type of ``DELETE``; its repr is stable, so test ids are the same in every process (pytest-xdist)."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()

CASES = [
    # (mutation path, value, where in the message, words of the problem, words of the fix)
    ("crm/0/model", "account", "crm[0].model", "unknown model 'account'", "use one of: company"),
    ("crm/0/model", "compnay", "crm[0].model", "unknown model", "did you mean 'company'"),
    ("crm/0/connection", "bq", "crm[0].connection", "unknown connection 'bq'", "declared under 'connections:': wh"),
    (
        "crm/0/fields/0/planhat",
        "nmae",
        "crm[0].fields[0].planhat",
        "unknown Company field 'nmae'",
        "did you mean 'name'",
    ),
    ("crm/0/keys/planhat", "email", "crm[0].keys.planhat", "'email' cannot match Company", "sourceId, externalId, id"),
    ("crm/0/keys/planhat", "id", "crm[0].keys.planhat", "native id is assigned by Planhat", "direction to 'send'"),
    ("crm/0/direction", "sideways", "crm[0].direction", "'sideways' is not allowed", "both, send, receive"),
    ("crm/0/fields/0/direction", "both", None, None, None),  # equal to the section's: fine
    (
        "crm/0/fields",
        [{"planhat": "arr", "warehouse": "arr"}],
        "crm[0].fields[0].planhat",
        "derived from licenses",
        "direction: send",
    ),
    ("crm/0/tabel", "x", "crm[0].tabel", "unknown key", "did you mean 'table'"),
    ("crm/0/keys", DELETE, "crm[0].keys", "is missing", "add 'keys:"),
    ("crm/0/fields", [], "crm[0].fields", "maps no fields", "at least one"),
    (
        "usage/0/cadence",
        {"every_minutes": 15},
        "usage[0].cadence.every_minutes",
        "15 is not offered",
        "use 5, 10, 30 or 60",
    ),
    ("usage/0/cadence", {"daily_at": "25:99"}, "usage[0].cadence.daily_at", "not a time of day", '"06:30"'),
    (
        "usage/0/cadence",
        {"daily_at": "06:00", "timezone": "Mars/Olympus"},
        "usage[0].cadence.timezone",
        "unknown time zone",
        "IANA name",
    ),
    (
        "usage/0/cadence",
        {"every_minutes": 5, "daily_at": "06:00"},
        "usage[0].cadence",
        "exactly one of every_minutes or daily_at",
        "cadence: {every_minutes: 5}",
    ),
    ("usage/0/model", "license", "usage[0].model", "unknown model 'license'", "enduser, company"),
    ("usage/0/record_match", "email2", "usage[0].record_match", "not allowed", "externalId, sourceId, email, id"),
    ("usage/0/batch_size", 0, "usage[0].batch_size", "positive integer", "batch_size: 1000"),
    ("usage/0/partition_span", 10, "usage[0].partition_span", "smaller than batch_size", "at least 200000"),
    ("usage/0/fields", {"record": "email", "date": "ts"}, "usage[0].fields.action", "is missing", "action_column"),
    ("usage/0/lookback", -1, "usage[0].lookback", "zero or positive", "lookback: 1000"),
    ("usage/0/name", "Events!", "usage[0].name", "not a valid name", "lower-case letters"),
    (
        "okrs/0/key_results/0/end_date",
        "2025-01-01",
        "okrs[0].key_results[0].end_date",
        "is not after start_date",
        "end_date after",
    ),
    (
        "okrs/0/key_results/0/start_date",
        "soon",
        "okrs[0].key_results[0].start_date",
        "'soon' is not a date",
        "2026-01-31",
    ),
    ("okrs/0/key_results/0/target", DELETE, "okrs[0].key_results[0].target", "is missing", "target: 500"),
    (
        "connections/wh/type",
        "postgres",
        "connections.wh.type",
        "'postgres' is not allowed",
        "duckdb, bigquery, snowflake",
    ),
    (
        "connections/sf",
        {"type": "snowflake", "account": "a", "user": "u", "database": "d", "schema": "s", "password": "hunter2"},
        "connections.sf.password",
        "secrets are given only by environment variable",
        "{env: MY_ENV_VAR}",
    ),
    (
        "connections/sf",
        {
            "type": "snowflake",
            "account": "a",
            "user": "u",
            "database": "d",
            "schema": "s",
            "password": {"env": "PLANHAT_DEFINITELY_UNSET_VAR"},
        },
        "connections.sf.password",
        "PLANHAT_DEFINITELY_UNSET_VAR is not set",
        "export PLANHAT_DEFINITELY_UNSET_VAR",
    ),
    (
        "connections/sf",
        {"type": "snowflake", "account": "a", "user": "u", "database": "d", "schema": "s", "auth": "key_pair"},
        "connections.sf.private_key_path",
        "key_pair auth needs a private key",
        "private_key_path: {env:",
    ),
    (
        "connections/bq",
        {"type": "bigquery", "project": "p", "dataset": "d", "auth": "oauth"},
        "connections.bq.oauth_client_id",
        "is missing",
        "{env: MY_ENV_VAR}",
    ),
    ("store", {"path": "data/planhat.duckdb"}, "store.path", "single DuckDB file", "migrate-store data/planhat.duckdb"),
    (
        "store",
        {"catalog": "c.sqlite", "postgres": {"host": "h", "database": "d", "user": "u"}},
        "store.postgres",
        "names two catalogs",
        "keep either",
    ),
    ("store", {"postgres": {"host": "h", "database": "d", "user": "u"}}, "store.data_path", "is missing", "s3://"),
    ("store/retention_days", 0, "store.retention_days", "must be a positive integer", "retention_days: 30"),
]


@pytest.mark.parametrize(
    ("path", "value", "where", "problem", "fix"), CASES, ids=[f"{c[0]}={c[1]!r}"[:60] for c in CASES]
)
def test_every_mistake_names_file_section_field_and_fix(
    tmp_path: Path, path: str, value: Any, where: str | None, problem: str | None, fix: str | None
) -> None:
    file = tmp_path / "planhat.yaml"
    file.write_text(yaml.safe_dump(_mutate(path, value)))
    duckdb.connect(str(tmp_path / "wh.duckdb")).close()  # the warehouse file must exist (or say create: true)
    if where is None:
        load_config(file)
        return
    with pytest.raises(ConfigError) as info:
        load_config(file)
    err = info.value
    assert problem is not None and fix is not None  # a refused case names both
    assert err.path == str(file)
    assert err.where == where
    assert problem in err.problem
    assert fix in err.fix
    assert str(err).startswith(f"{file}: {where}: ")


def test_duplicate_section_names_are_refused(tmp_path: Path) -> None:
    data = _base()
    data["crm"].append(copy.deepcopy(data["crm"][0]))
    with pytest.raises(ConfigError, match=r"crm: name 'companies' is used twice"):
        parse_config(data, tmp_path / "c.yaml")


def test_missing_file_and_bad_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANHAT_PIPELINES_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"does not exist.*PLANHAT_PIPELINES_CONFIG"):
        load_config()
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_field_direction_cannot_widen_the_section(tmp_path: Path) -> None:
    data = _base()
    data["crm"][0]["direction"] = "receive"
    data["crm"][0]["fields"][0]["direction"] = "send"
    with pytest.raises(ConfigError) as info:
        parse_config(data, tmp_path / "c.yaml")
    assert info.value.where == "crm[0].fields[0].direction"
    assert "wider than the section's 'receive'" in info.value.problem
