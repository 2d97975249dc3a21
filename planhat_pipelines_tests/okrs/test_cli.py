"""The ``okrs`` and ``checkin`` subcommands, run through the real ``planhat-pipelines`` entry point."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from planhat_pipelines.cli import main
from planhat_pipelines.config import Config
from planhat_pipelines.errors import OkrQueryError
from planhat_pipelines.okrs.cli import summary_text
from planhat_pipelines.okrs.current import history
from planhat_pipelines.okrs.refresh import check_in, refresh_key_result
from planhat_pipelines.store import ModelStore
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness
from planhat_pipelines_tests.okrs.conftest import MakeConfig, key_result_data, one_key_result

MIDYEAR = datetime(2026, 7, 2, 9, 30)


@pytest.fixture
def config(make_config: MakeConfig, duckdb_harness: DuckDBHarness) -> Config:
    return make_config(
        duckdb_harness.connection_config(),
        [
            {
                "name": "grow",
                "title": "Grow the pipeline",
                "key_results": [
                    key_result_data("leads", title="Converted leads", query="SELECT 300"),
                    key_result_data("churn", query="SELECT 'x'", start_value=10, target=4, direction="decrease"),
                ],
            },
            {
                "name": "health",
                "key_results": [key_result_data("nps", query="SELECT 1234.5", target=None, direction="kpi")],
            },
        ],
    )


def test_checkin_records_and_reports(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config.path), "checkin", "leads", "250"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Checked in 250 for leads: progress 37.5 % (expected ")
    assert "It stands until the next successful refresh." in out
    with ModelStore(config.store) as store:
        [row] = history(store, "leads")
    assert (row.source, row.value, row.progress) == ("checkin", 250.0, 0.375)


def test_checkin_of_an_unknown_key_result_names_the_choices(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config.path), "checkin", "leeds", "1"]) == 2
    err = capsys.readouterr().err
    assert "okrs: has no key result 'leeds'" in err
    assert "Fix: use one of the key results' names (leads, churn, nps)" in err


def test_okrs_prints_an_aligned_table(
    config: Config, duckdb_harness: DuckDBHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = duckdb_harness.warehouse("wh")
    with ModelStore(config.store) as store:
        refresh_key_result(store, warehouse, one_key_result(config, "leads"), MIDYEAR)
        refresh_key_result(store, warehouse, one_key_result(config, "nps"), MIDYEAR)
        with pytest.raises(OkrQueryError):
            refresh_key_result(store, warehouse, one_key_result(config, "churn"), MIDYEAR)
    text = summary_text(config, MIDYEAR)
    lines = text.splitlines()
    header = lines[0]
    assert header.split()[:3] == ["Objective", "/", "key"]
    assert set(lines[1]) <= {"-", " "}
    grow = next(line for line in lines if line.startswith("Grow the pipeline"))
    leads = next(line for line in lines if line.startswith("  leads (Converted leads)"))
    churn = next(line for line in lines if line.startswith("  churn"))
    nps = next(line for line in lines if line.startswith("  nps"))
    assert "On track" in grow
    # Right-aligned numbers end under their header; text columns start under theirs.
    value_end = header.index("Value") + len("Value")
    assert leads[:value_end].endswith("300") and nps[:value_end].endswith("1,234.50")
    assert leads[header.index("Status") :].startswith("On track")
    assert leads[header.index("Source") :].startswith("query")
    assert "50.0 %" in leads and "100 -> 500" in leads
    assert nps[header.index("Status") :].startswith("KPI")
    assert churn[header.index("Status") :].startswith("error")
    failure = lines[lines.index(churn) + 1]
    assert failure.startswith("    ! refresh failed at 2026-07-02 09:30 UTC: key result 'churn'")
    assert "returned a string value" in failure

    assert main(["--config", str(config.path), "okrs"]) == 0
    assert "Grow the pipeline" in capsys.readouterr().out


def test_okrs_without_objectives(make_config: MakeConfig, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(None, [])
    assert main(["--config", str(config.path), "okrs"]) == 0
    assert "No OKRs are configured" in capsys.readouterr().out


def test_checkin_manual_then_refresh_keeps_the_value_and_okr_mode_switches_back(
    config: Config, duckdb_harness: DuckDBHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    leads = one_key_result(config, "leads")  # its query returns 300
    assert main(["--config", str(config.path), "checkin", "leads", "250", "--manual"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Checked in 250 for leads: progress 37.5 % (expected ")
    assert "(leads is in manual mode). It stands until leads is switched back to automatic" in out
    assert "planhat-pipelines okr-mode leads automatic" in out

    warehouse = duckdb_harness.warehouse("wh")
    with ModelStore(config.store) as store:
        assert refresh_key_result(store, warehouse, leads, datetime.now(UTC)).skipped_manual
        assert [(r.source, r.value) for r in history(store, "leads")] == [("checkin", 250.0)]
    table = summary_text(config)
    header = table.splitlines()[0]
    row = next(line for line in table.splitlines() if line.startswith("  leads"))
    assert row[header.index("Source") :].startswith("checkin (manual)")
    assert row[: header.index("Value") + len("Value")].endswith("250")

    assert main(["--config", str(config.path), "okr-mode", "leads", "manual"]) == 0
    assert capsys.readouterr().out == "leads is already manual: nothing changed.\n"
    assert main(["--config", str(config.path), "okr-mode", "leads", "automatic"]) == 0
    assert "leads is now automatic: the next successful refresh's value becomes current" in capsys.readouterr().out
    with ModelStore(config.store) as store:
        result = refresh_key_result(store, warehouse, leads, datetime.now(UTC))
    assert not result.skipped_manual and result.row is not None and result.row.value == 300.0
    row = next(line for line in summary_text(config).splitlines() if line.startswith("  leads"))
    assert row[header.index("Source") :].startswith("query ")
    assert "(manual)" not in row


def test_okr_mode_manual_then_a_plain_checkin_stands(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config.path), "okr-mode", "churn", "manual"]) == 0
    assert capsys.readouterr().out.startswith("churn is now manual: the hourly refresh skips it")
    assert main(["--config", str(config.path), "checkin", "churn", "8"]) == 0
    assert "It stands until churn is switched back to automatic" in capsys.readouterr().out
    with ModelStore(config.store, read_only=True) as store:
        assert store.okr_modes() == {"churn": "manual"}


def test_okr_mode_refuses_unknown_modes_and_key_results(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--config", str(config.path), "okr-mode", "leads", "hand"])
    assert info.value.code == 2
    assert "argument mode: invalid choice: 'hand'" in capsys.readouterr().err
    assert main(["--config", str(config.path), "okr-mode", "leeds", "manual"]) == 2
    assert "okrs: has no key result 'leeds'" in capsys.readouterr().err


def test_objective_line_shows_weighted_progress(config: Config) -> None:
    with ModelStore(config.store) as store:
        check_in(store, one_key_result(config, "leads"), 300, MIDYEAR)  # 0.5
        check_in(store, one_key_result(config, "churn"), 4, MIDYEAR)  # 1.0
        check_in(store, one_key_result(config, "nps"), 50, MIDYEAR)  # a KPI: left out
    lines = summary_text(config, MIDYEAR).splitlines()
    header = lines[0]
    grow = next(line for line in lines if line.startswith("Grow the pipeline"))
    health = next(line for line in lines if line.startswith("health"))
    progress_end = header.index("Progress") + len("Progress")
    assert grow[:progress_end].endswith("75.0 %")
    assert grow[header.index("Status") :].startswith("On track")
    assert health[:progress_end].endswith("-")  # only a KPI: no progress
