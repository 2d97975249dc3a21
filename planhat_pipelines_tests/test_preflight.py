"""``planhat-pipelines check`` against real warehouses: a real DuckDB file, and one connection each on
the BigQuery emulator and fakesnow (through the shared ``harness`` fixture).

Configs are written to YAML and loaded with the real loader; tables and views are created through
each warehouse's own client.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from planhat_pipelines import preflight
from planhat_pipelines.config import Config
from planhat_pipelines.errors import WarehouseError
from planhat_pipelines_tests.builders import (
    OMIT,
    crm_section,
    duckdb_connection,
    key_result,
    objective,
    usage_section,
    write_config,
)
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness
from planhat_pipelines_tests.harness import WarehouseHarness


def _write(tmp_path: Path, connection: dict[str, Any], **sections: Any) -> Config:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write_config(tmp_path, name="planhat_pipelines.yaml", connections={"wh": connection}, **sections)


def _check(config: Config) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = preflight.main_check(config, lines.append)
    return code, lines


def _line(lines: list[str], item: str) -> str:
    (found,) = [line for line in lines if line[5:].split(":")[0] == item]
    return found


def _crm(name: str, table: str, **extra: Any) -> dict[str, Any]:
    return crm_section(name, table, warehouse_key="company_key", **extra)


def _usage(name: str, table: str, fields: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    fields = {"record": "email", "action": "action", "date": "ts"} if fields is None else fields
    return usage_section(name, table, fields=fields, **extra)


def _okr(name: str, query: str) -> dict[str, Any]:
    return key_result(name, query=query, target=100, start_value=OMIT, direction=OMIT)


@pytest.fixture
def warehouse(duckdb_harness: DuckDBHarness) -> DuckDBHarness:
    """A DuckDB warehouse with CRM tables, a view, a send target and usage tables."""
    h = duckdb_harness
    h.create_table(
        "crm_companies",
        pa.table(
            {
                "company_key": ["c1", "c2"],
                "name": ["Acme", "Globex"],
                "attrs": ['{"tier": "gold"}', '{"tier": "silver"}'],
                "arr": pa.array([1200.5, 300.0], pa.float64()),
                "signed_on": pa.array([None, None], pa.date32()),
                "numeric_key": pa.array([1, 2], pa.int64()),
            }
        ),
        json_columns=["attrs"],
    )
    h.create_table(
        "company_export",
        pa.table({"company_key": pa.array([], pa.string()), "name": pa.array([], pa.string())}),
    )
    h.create_view("v_companies", "SELECT company_key, name FROM crm_companies")
    h.create_table(
        "events",
        pa.table(
            {
                "event_id": pa.array([1, 2, 3], pa.int64()),
                "email": ["a@x.io", "b@x.io", "a@x.io"],
                "action": ["login", "view", "login"],
                "ts": pa.array(["2026-01-01 10:00:00"] * 3, pa.string()),
            }
        ),
    )
    h.create_table(
        "events_text_key",
        pa.table(
            {
                "event_id": ["1", "2"],
                "email": ["a@x.io", "b@x.io"],
                "action": ["login", "view"],
                "ts": ["2026-01-01 10:00:00"] * 2,
            }
        ),
    )
    return h


GOOD_CRM = [
    _crm(
        "companies",
        "crm_companies",
        fields=[
            {"planhat": "name", "warehouse": "name"},
            {"planhat": "custom", "warehouse": "attrs"},
            {"planhat": "custom.tier", "warehouse": "attrs", "path": "tier"},
        ],
    ),
    _crm("company_export", "company_export", direction="send"),
    _crm("from_view", "v_companies"),  # a view is fine to receive from
]


def test_a_good_config_passes_with_one_ok_line_per_item(tmp_path: Path, warehouse: DuckDBHarness) -> None:
    config = _write(
        tmp_path,
        warehouse.connection_config(),
        crm=GOOD_CRM,
        usage=[_usage("events", "events")],
        okrs=[objective(_okr("logins", "SELECT count(*) FROM events WHERE action = 'login'"))],
    )
    code, lines = _check(config)
    assert code == 0, lines
    assert lines == [
        "ok   connection wh",
        "ok   crm/companies: table 'crm_companies', 3 field(s)",
        "ok   crm/company_export: table 'company_export', 1 field(s)",
        "ok   crm/from_view: view 'v_companies', 1 field(s)",
        "ok   usage/events: table 'events'",
        "ok   okrs/logins: returned 2",
        "all 6 checks passed",
    ]


def test_each_problem_gets_its_line_with_the_fix_and_exit_1(tmp_path: Path, warehouse: DuckDBHarness) -> None:
    config = _write(
        tmp_path,
        warehouse.connection_config(),
        crm=[
            _crm("missing_table", "crm_companys"),
            _crm("missing_column", "crm_companies", fields=[{"planhat": "name", "warehouse": "nmae"}]),
            _crm("send_to_view", "v_companies", direction="both"),
            _crm("numeric_key", "crm_companies", keys={"planhat": "externalId", "warehouse": "numeric_key"}),
            _crm(
                "wrong_type", "crm_companies", direction="send", fields=[{"planhat": "arr", "warehouse": "signed_on"}]
            ),
        ],
        usage=[
            _usage("text_key", "events_text_key"),
            _usage("no_action", "events", fields={"record": "email", "action": "act", "date": "ts"}),
        ],
        okrs=[
            objective(
                _okr("writes", "DELETE FROM events"),
                _okr("two_columns", "SELECT count(*), max(event_id) FROM events"),
            )
        ],
    )
    code, lines = _check(config)
    assert code == 1, lines
    assert _line(lines, "connection wh") == "ok   connection wh"
    assert _line(lines, "crm/missing_table") == (
        "FAIL crm/missing_table: connection 'wh', table 'crm_companys': does not exist. "
        "Fix: create it, or fix the table name in the section"
    )
    assert _line(lines, "crm/missing_column") == (
        "FAIL crm/missing_column: table 'crm_companies' has no column 'nmae'. Fix: map existing columns "
        "(it has: company_key, name, attrs, arr, signed_on, numeric_key) or add the column"
    )
    assert _line(lines, "crm/send_to_view") == (
        "FAIL crm/send_to_view: view 'v_companies' is read-only, so direction 'both' cannot send to it. "
        "Fix: point the section at a table, or set its direction to 'receive'"
    )
    numeric = _line(lines, "crm/numeric_key")
    assert numeric.startswith("FAIL crm/numeric_key: key column 'numeric_key' of table 'crm_companies' is BIGINT, ")
    assert "but keys must be text. Fix: cast it in a view" in numeric
    assert _line(lines, "crm/wrong_type") == (
        "FAIL crm/wrong_type: column 'signed_on' of table 'crm_companies' is DATE, which cannot hold Company.arr "
        f"({config.crm[4].model.field('arr').type.value}). "  # type: ignore[union-attr]
        "Fix: map a column of kind decimal, float, integer, text, or cast it in a view"
    )
    assert _line(lines, "usage/text_key") == (
        "ok   usage/text_key: table 'events_text_key', key 'event_id' is text (VARCHAR): values will be cast"
    )
    assert _line(lines, "usage/no_action").startswith(
        "FAIL usage/no_action: table 'events' has no column 'act'. Fix: map existing columns"
    )
    writes = _line(lines, "okrs/writes")
    assert writes.startswith("FAIL okrs/writes: key result 'writes'") and "DELETE" in writes and "Fix:" in writes
    two = _line(lines, "okrs/two_columns")
    assert "returned 2 columns instead of one" in two and "Fix: select only the number" in two
    assert lines[-1] == "8 of 10 checks failed: fix them, then run `planhat-pipelines check` again"


def test_a_failing_connection_fails_its_items_with_the_clients_error(tmp_path: Path, warehouse: DuckDBHarness) -> None:
    config = _write(tmp_path, warehouse.connection_config(), crm=[_crm("companies", "crm_companies")])
    # Break the file after loading (a file replaced by junk): the probe fails with DuckDB's own words.
    warehouse.path.write_bytes(b"this is not a duckdb database" * 100)
    code, lines = _check(config)
    assert code == 1
    assert lines[0].startswith("FAIL connection wh: ") and "Fix: " in lines[0], lines
    assert lines[1] == ("FAIL crm/companies: connection 'wh' failed. Fix: fix the connection first (see its line)")


def test_a_create_true_warehouse_that_is_not_there_yet_is_reported_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "later.duckdb"
    config = _write(tmp_path, duckdb_connection(missing, create=True), crm=[_crm("c", "crm_companies")])
    code, lines = _check(config)
    assert code == 1
    assert lines[0] == f"ok   connection wh: the warehouse file {missing} does not exist yet (create: true)"
    assert lines[1].startswith(f"FAIL crm/c: connection 'wh': the warehouse file {missing} does not exist yet. Fix:")
    assert not missing.exists()


def test_check_is_a_subcommand_whose_handler_loads_the_config(tmp_path: Path, warehouse: DuckDBHarness) -> None:
    config = _write(tmp_path, warehouse.connection_config(), crm=[_crm("missing", "nope")])
    parser = argparse.ArgumentParser(prog="planhat-pipelines")
    parser.add_argument("--config")
    preflight.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["--config", str(config.path), "check"])
    assert args.handler(args) == 1


# --- every warehouse kind ----------------------------------------------------------------------------------
def test_against_each_warehouse_a_missing_table_is_reported_in_its_own_words(
    harness: WarehouseHarness, tmp_path: Path
) -> None:
    harness.create_table(
        "crm_companies",
        pa.table({"company_key": ["c1"], "name": ["Acme"]}),
    )
    harness.create_table(
        "events",
        pa.table(
            {
                "event_id": pa.array([1, 2], pa.int64()),
                "email": ["a@x.io", "b@x.io"],
                "action": ["login", "view"],
                "ts": ["2026-01-01 10:00:00"] * 2,
            }
        ),
    )
    config = _write(
        tmp_path,
        harness.connection_config(),
        crm=[_crm("companies", "crm_companies"), _crm("missing", "no_such_table")],
        usage=[_usage("events", "events")],
        okrs=[objective(_okr("events_total", "SELECT count(*) FROM events"))],
    )
    code, lines = _check(config)
    assert code == 1, lines
    assert _line(lines, "connection wh") == "ok   connection wh"
    assert _line(lines, "crm/companies").startswith("ok   crm/companies: table ")
    assert _line(lines, "usage/events").startswith("ok   usage/events: table ")
    assert _line(lines, "okrs/events_total") == "ok   okrs/events_total: returned 2"
    # The adapter's own message for that table, as a sync would raise it.
    with harness.warehouse() as wh, pytest.raises(WarehouseError) as info:
        wh.describe("no_such_table")
    problem, _, fix = str(info.value).partition(". Fix: ")
    missing = _line(lines, "crm/missing")
    assert missing.startswith(f"FAIL crm/missing: {problem}"), missing
    assert missing.endswith(f". Fix: {fix}"), missing
    if info.value.__cause__ is not None:  # BigQuery: Google's own "Not found" follows the adapter's words
        assert "Not found" in missing, missing


def test_check_through_the_cli_as_a_user_types_it(tmp_path: Path, duckdb_harness: DuckDBHarness) -> None:
    """`planhat-pipelines check` in a subprocess: exit 0 on a good config, 1 with one FAIL line per problem."""
    duckdb_harness.create_table("accounts", pa.table({"company_key": ["a"], "name": ["Acme"]}))
    duckdb_harness.close()
    good = _write(tmp_path / "good", duckdb_harness.connection_config(), crm=[_crm("companies", "accounts")])
    bad = _write(tmp_path / "bad", duckdb_harness.connection_config(), crm=[_crm("companies", "acounts")])
    cli = Path(sys.executable).with_name("planhat-pipelines")
    ok = subprocess.run([str(cli), "--config", str(good.path), "check"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert any(line.startswith("ok   crm/companies") for line in ok.stdout.splitlines())
    failed = subprocess.run([str(cli), "--config", str(bad.path), "check"], capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    (line,) = [x for x in failed.stdout.splitlines() if x.startswith("FAIL")]
    assert "crm/companies" in line and "'acounts'" in line and "does not exist" in line and "Fix:" in line
    assert "Traceback" not in failed.stdout + failed.stderr
