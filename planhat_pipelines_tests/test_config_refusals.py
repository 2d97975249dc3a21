"""The config refuses what it cannot mean, through the CLI as a user types it.

Each case is a small edit of one valid YAML file; the CLI must exit 2 with one line on stderr naming
the file, the dotted location and the fix, and never a traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from planhat_pipelines.config import DuckDBSettings, load_config
from planhat_pipelines.demo.generate import DemoSize, seed_demo
from planhat_pipelines.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv" / "bin" / "planhat-pipelines"
SNOWFLAKE_PASSWORD_ENV = "PLANHAT_REFUSALS_TEST_PASSWORD"

BASE = """\
store:
  catalog: store.sqlite
connections:
  hw:
    type: duckdb
    path: wh.duckdb
crm:
  - name: companies
    model: company
    connection: hw
    table: crm_companies
    direction: both
    keys: {planhat: externalId, warehouse: company_key}
    fields:
      - {planhat: name, warehouse: name}
usage:
  - name: events
    kind: activities
    model: enduser
    connection: hw
    table: events
    key: event_id
    record_match: email
    fields: {record: email, action: action, date: ts}
    cadence: {every_minutes: 10}
okrs:
  - name: grow
    key_results:
      - name: leads
        connection: hw
        query: SELECT 1
        target: 10
        start_date: 2026-01-01
        end_date: 2026-12-31
"""

SNOWFLAKE = f"""\
  sf:
    type: snowflake
    account: a
    user: u
    database: d
    schema: s
    password: {{env: {SNOWFLAKE_PASSWORD_ENV}}}
"""


def _edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def _after(anchor: str, extra: str) -> str:
    return _edit(anchor, anchor + extra)


# (id, YAML text, where, words of the problem, words of the fix)
REFUSALS = [
    (
        "same_name_in_crm_and_usage",
        _edit("  - name: events", "  - name: companies"),
        "usage[0].name",
        "'companies' is also the name of crm[0]",
        "give every section a unique name",
    ),
    (
        "duplicate_connection",
        _edit("crm:\n", "  hw:\n    type: duckdb\n    path: other.duckdb\ncrm:\n"),
        "connections.hw",
        "appears twice (lines 4 and 7)",
        "keep one 'hw:'",
    ),
    (
        "duplicate_top_level_key",
        BASE + "store:\n  path: other.duckdb\n",
        "store",
        "appears twice (lines 1 and 35)",
        "keep one 'store:'",
    ),
    (
        "duplicate_key_in_flow_mapping",
        _edit("warehouse: company_key}", "warehouse: company_key, planhat: sourceId}"),
        "crm[0].keys.planhat",
        "appears twice (lines 13 and 13)",
        "keep one 'planhat:'",
    ),
    (
        "duplicate_key_in_list_item",
        _edit("{planhat: name, warehouse: name}", "{planhat: name, warehouse: name, warehouse: title}"),
        "crm[0].fields[0].warehouse",
        "appears twice",
        "keep one 'warehouse:'",
    ),
    (
        "feb_30",
        _edit("start_date: 2026-01-01", "start_date: 2026-02-30"),
        "okrs[0].key_results[0].start_date",
        "'2026-02-30' is not a date (day is out of range for month)",
        "start_date: 2026-01-31",
    ),
    (
        "month_13",
        _edit("end_date: 2026-12-31", "end_date: 2026-13-45"),
        "okrs[0].key_results[0].end_date",
        "'2026-13-45' is not a date (month must be in 1..12)",
        "end_date: 2026-01-31",
    ),
    (
        "quoted_feb_30",
        _edit("start_date: 2026-01-01", 'start_date: "2026-02-30"'),
        "okrs[0].key_results[0].start_date",
        "'2026-02-30' is not a date (day is out of range for month)",
        "start_date: 2026-01-31",
    ),
    (
        "key_rotation_feb_30",
        _after("    path: wh.duckdb\n", "    health: {key_rotation_date: 2026-02-30}\n"),
        "connections.hw.health.key_rotation_date",
        "'2026-02-30' is not a date",
        "key_rotation_date: 2026-01-31",
    ),
    (
        "misspelled_required_field_key",
        _edit("{planhat: name, warehouse: name}", "{planhat: name, warehose: name}"),
        "crm[0].fields[0].warehose",
        "unknown key",
        "did you mean 'warehouse'?",
    ),
    (
        "misspelled_table",
        _edit("    table: crm_companies", "    tabel: crm_companies"),
        "crm[0].tabel",
        "unknown key",
        "did you mean 'table'?",
    ),
    (
        "misspelled_type",
        _edit("    type: duckdb", "    tpye: duckdb"),
        "connections.hw.tpye",
        "unknown key",
        "did you mean 'type'?",
    ),
    (
        "misspelled_store_catalog",
        _edit("  catalog: store.sqlite", "  catlog: store.sqlite"),
        "store.catlog",
        "unknown key",
        "did you mean 'catalog'?",
    ),
    (
        "misspelled_usage_role",
        _edit("{record: email, action: action, date: ts}", "{record: email, acton: action, date: ts}"),
        "usage[0].fields.acton",
        "unknown key",
        "did you mean 'action'?",
    ),
    (
        "zero_timeout",
        _after("        query: SELECT 1\n", "        timeout_seconds: 0\n"),
        "okrs[0].key_results[0].timeout_seconds",
        "must be a positive number, got 0",
        "timeout_seconds: 60",
    ),
    (
        "negative_timeout",
        _after("        query: SELECT 1\n", "        timeout_seconds: -5\n"),
        "okrs[0].key_results[0].timeout_seconds",
        "must be a positive number, got -5",
        "timeout_seconds: 60",
    ),
    (
        "infinite_timeout",
        _after("        query: SELECT 1\n", "        timeout_seconds: .inf\n"),
        "okrs[0].key_results[0].timeout_seconds",
        "must be a positive number, got inf",
        "timeout_seconds: 60",
    ),
    (
        "zero_max_bytes_billed",
        _after("        query: SELECT 1\n", "        max_bytes_billed: 0\n"),
        "okrs[0].key_results[0].max_bytes_billed",
        "must be a positive integer, got 0",
        "max_bytes_billed:",
    ),
    (
        "nan_target",
        _edit("        target: 10", "        target: .nan"),
        "okrs[0].key_results[0].target",
        "must be a finite number, got nan",
        "target: 500",
    ),
    (
        "negative_batch_size",
        _after("    cadence: {every_minutes: 10}\n", "    batch_size: -1\n"),
        "usage[0].batch_size",
        "must be a positive integer, got -1",
        "batch_size: 1000",
    ),
    (
        "zero_partition_span",
        _after("    cadence: {every_minutes: 10}\n", "    partition_span: 0\n"),
        "usage[0].partition_span",
        "must be a positive integer, got 0",
        "partition_span: 1000",
    ),
    (
        "zero_health_interval",
        _after("    path: wh.duckdb\n", "    health: {every_minutes: 0}\n"),
        "connections.hw.health.every_minutes",
        "must be a positive integer, got 0",
        "every_minutes: 1000",
    ),
    (
        "negative_warn_days",
        _after("    path: wh.duckdb\n", "    health: {warn_days: -1}\n"),
        "connections.hw.health.warn_days",
        "must be a positive integer, got -1",
        "warn_days: 1000",
    ),
    (
        "zero_port",
        _after("    path: wh.duckdb\n", SNOWFLAKE + "    port: 0\n"),
        "connections.sf.port",
        "0 is not a port number",
        "between 1 and 65535",
    ),
    (
        "port_too_high",
        _after("    path: wh.duckdb\n", SNOWFLAKE + "    port: 99999\n"),
        "connections.sf.port",
        "99999 is not a port number",
        "between 1 and 65535",
    ),
    (
        "tab_indent",
        "store:\n\tpath: x\n",
        "file",
        "is not valid YAML (while scanning for the next token: found character '\\t' that cannot start any token "
        "at line 2, column 1)",
        "fix the YAML syntax",
    ),
    ("unclosed_list", "store: [unclosed\n", "file", "is not valid YAML (while parsing a flow sequence", "YAML syntax"),
    ("empty_file", "", "file", "is empty", "examples/complete.yaml"),
    ("only_comments", "# nothing yet\n", "file", "is empty", "examples/complete.yaml"),
    ("top_level_list", "- store: {catalog: x}\n", "top level", "must be a mapping", "store:"),
    ("top_level_scalar", "hello\n", "top level", "must be a mapping", "store:"),
]


def _cli(config: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, SNOWFLAKE_PASSWORD_ENV: "x"}
    env.pop("PLANHAT_PIPELINES_CONFIG", None)
    return subprocess.run(
        [str(CLI), "--config", str(config), *(args or ("summary",))],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A config folder whose DuckDB warehouse file exists (so only the edit under test is wrong)."""
    duckdb.connect(str(tmp_path / "wh.duckdb")).close()
    return tmp_path


def test_the_base_document_is_valid(folder: Path) -> None:
    file = folder / "planhat.yaml"
    file.write_text(BASE)
    config = load_config(file)
    assert [s.name for s in config.crm] == ["companies"] and config.key_results[0].timeout_seconds == 60.0


@pytest.mark.parametrize(("text", "where", "problem", "fix"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_the_cli_refuses_with_one_line_naming_file_location_and_fix(
    folder: Path, text: str, where: str, problem: str, fix: str
) -> None:
    file = folder / "planhat.yaml"
    file.write_text(text)
    result = _cli(file)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(f"error: {file}: {where}: "), line
    problem_text, _, fix_text = line.removeprefix(f"error: {file}: {where}: ").partition(". Fix: ")
    assert problem in problem_text, line
    assert fix in fix_text, line


def test_a_mistyped_duckdb_path_fails_at_load_naming_the_resolved_file(folder: Path) -> None:
    file = folder / "planhat.yaml"
    file.write_text(_edit("    path: wh.duckdb", "    path: wh_typo.duckdb"))
    missing = folder / "wh_typo.duckdb"
    result = _cli(file, cwd=folder.parent)  # the path is relative to the config's folder, not the cwd
    assert "Traceback" not in result.stderr
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {file}: connections.hw.path: "), line
    assert f"'wh_typo.duckdb' resolves to {missing}, which does not exist" in line
    assert "relative to the config file's folder" in line
    assert "Fix: correct the path" in line and "create: true" in line
    assert not missing.exists()  # loading never creates the file a typo names
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert info.value.where == "connections.hw.path"


def test_create_true_accepts_a_missing_duckdb_file_without_creating_it(tmp_path: Path) -> None:
    file = tmp_path / "planhat.yaml"
    file.write_text(_after("    path: wh.duckdb\n", "    create: true\n"))
    config = load_config(file)
    assert config.connection("hw").settings.path == tmp_path / "wh.duckdb"  # type: ignore[union-attr]
    assert not (tmp_path / "wh.duckdb").exists()
    assert not (tmp_path / "store.sqlite").exists()


def test_the_store_path_need_not_exist(folder: Path) -> None:
    file = folder / "planhat.yaml"
    file.write_text(_edit("  catalog: store.sqlite", "  catalog: new/dir/store.sqlite"))
    assert load_config(file).store.catalog == folder / "new" / "dir" / "store.sqlite"


def test_the_demo_config_loads_on_a_fresh_clone_before_the_seed(tmp_path: Path) -> None:
    # A fresh clone: the demo config beside no .data folder at all. `make demo` loads the config
    # first and seeds the warehouse it names afterwards, so loading must not need the file.
    file = tmp_path / "planhat_pipelines.yaml"
    shutil.copy(ROOT / "planhat_pipelines.yaml", file)
    warehouse = tmp_path / ".data" / "warehouse.duckdb"
    config = load_config(file)
    settings = config.connection("embedded").settings
    assert isinstance(settings, DuckDBSettings) and settings.path == warehouse and settings.create
    assert not warehouse.exists()
    seed_demo(settings.path, DemoSize(companies=5, users=10, licenses=5, events=20, metrics=10))
    assert load_config(file).connection("embedded").settings == settings


def test_yaml_merge_keys_are_not_duplicates(folder: Path) -> None:
    file = folder / "planhat.yaml"
    file.write_text(
        _edit(
            "  hw:\n    type: duckdb\n    path: wh.duckdb\n",
            "  hw: &base\n    type: duckdb\n    path: wh.duckdb\n  hw2:\n    <<: *base\n    crm_automation: true\n",
        )
    )
    config = load_config(file)
    assert config.connection("hw2").crm_automation and config.connection("hw2").type == "duckdb"


def test_a_missing_required_key_next_to_a_valid_similar_one_is_still_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # oauth_client_secret is a real key, close to the missing oauth_client_id: it must not be called unknown.
    monkeypatch.setenv("PLANHAT_REFUSALS_SECRET", "x")
    data = yaml.safe_load(BASE)
    data["connections"]["bq"] = {
        "type": "bigquery",
        "project": "p",
        "dataset": "d",
        "auth": "oauth",
        "oauth_client_secret": {"env": "PLANHAT_REFUSALS_SECRET"},
    }
    duckdb.connect(str(tmp_path / "wh.duckdb")).close()
    file = tmp_path / "planhat.yaml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert info.value.where == "connections.bq.oauth_client_id"
    assert info.value.problem == "is missing"


def test_a_date_written_with_a_time_keeps_its_day(folder: Path) -> None:
    file = folder / "planhat.yaml"
    file.write_text(_edit("start_date: 2026-01-01", "start_date: 2026-01-01 10:30:00"))
    kr = load_config(file).key_results[0]
    assert type(kr.start_date) is date and kr.start_date == date(2026, 1, 1)
