"""The model store: migrations keep data, upsert counts, transactions, derived company fields."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.models import MODELS, FieldSpec, FieldType, ModelSpec
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.schema import migrate


def test_every_model_has_a_table_with_identity_and_custom_columns(store: ModelStore) -> None:
    for slug, model in MODELS.items():
        cols = {
            r[0]
            for r in store.con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [slug]
            ).fetchall()
        }
        assert {"id", "sourceId", "externalId", "custom"} <= cols
        assert {f.name for f in model.fields} <= cols


def test_migration_adds_a_new_standard_field_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with ModelStore(path) as store:
        store.upsert_arrow(
            "asset",
            pa.table({"externalId": ["a1"], "name": ["Cluster"], "custom": [json.dumps({"region": "eu"})]}),
            "externalId",
        )
    asset = MODELS["asset"]
    grown = ModelSpec(
        asset.slug, asset.name, (*asset.fields, FieldSpec("serialNumber", FieldType.TEXT)), relations=asset.relations
    )
    with ModelStore(path) as store:
        con = store.con
        applied = migrate(con, {"asset": grown})
        assert applied == ['ALTER TABLE "asset" ADD COLUMN "serialNumber" VARCHAR']
        assert con.execute('SELECT name, custom, "serialNumber" FROM asset').fetchall() == [
            ("Cluster", '{"region":"eu"}', None)
        ]
        assert migrate(con, {"asset": grown}) == []  # idempotent


def test_upsert_reports_inserted_updated_unchanged(store: ModelStore) -> None:
    first = store.upsert_arrow("company", pa.table({"externalId": ["a", "b"], "name": ["A", "B"]}), "externalId")
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    second = store.upsert_arrow(
        "company", pa.table({"externalId": ["a", "b", "c"], "name": ["A", "B2", "C"]}), "externalId"
    )
    assert (second.inserted, second.updated, second.unchanged) == (1, 1, 1)
    assert store.count("company") == 3


def test_null_does_not_wipe_unless_asked(store: ModelStore) -> None:
    store.upsert_arrow("company", pa.table({"externalId": ["a"], "name": ["A"], "phase": ["onboarding"]}), "externalId")
    kept = store.upsert_arrow(
        "company", pa.table({"externalId": ["a"], "name": ["A"], "phase": pa.array([None], pa.string())}), "externalId"
    )
    assert kept.unchanged == 1
    wiped = store.upsert_arrow(
        "company",
        pa.table({"externalId": ["a"], "phase": pa.array([None], pa.string())}),
        "externalId",
        null_overwrites=True,
    )
    assert wiped.updated == 1
    assert store.con.execute("SELECT name, phase FROM company").fetchall() == [("A", None)]


def test_custom_fields_merge_as_json(store: ModelStore) -> None:
    store.upsert_arrow(
        "company", pa.table({"externalId": ["a"], "custom": [json.dumps({"tier": "gold"})]}), "externalId"
    )
    store.upsert_arrow("company", pa.table({"externalId": ["a"], "custom": [json.dumps({"seats": 9})]}), "externalId")
    again = store.upsert_arrow(
        "company", pa.table({"externalId": ["a"], "custom": [json.dumps({"seats": 9})]}), "externalId"
    )
    assert again.unchanged == 1
    (custom,) = store.con.execute("SELECT custom FROM company").fetchall()[0]
    assert json.loads(custom) == {"tier": "gold", "seats": 9}


def test_native_ids_look_like_planhat_ids_and_are_stable(store: ModelStore) -> None:
    store.upsert_arrow("company", pa.table({"externalId": ["a"], "name": ["A"]}), "externalId")
    (first,) = store.con.execute("SELECT id FROM company").fetchall()[0]
    store.upsert_arrow("company", pa.table({"externalId": ["a"], "name": ["A2"]}), "externalId")
    (second,) = store.con.execute("SELECT id FROM company").fetchall()[0]
    assert first == second and len(first) == 24 and int(first, 16) >= 0


def test_data_and_cursor_commit_together_or_not_at_all(store: ModelStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.upsert_arrow("company", pa.table({"externalId": ["a"]}), "externalId")
        store.set_cursor("companies", "", "2026-01-01")
        raise RuntimeError("crash between data and commit")
    assert store.count("company") == 0
    assert store.get_cursor("companies") is None
    with store.transaction():
        store.upsert_arrow("company", pa.table({"externalId": ["a"]}), "externalId")
        store.set_cursor("companies", "", "2026-01-01")
    assert (store.count("company"), store.get_cursor("companies")) == (1, "2026-01-01")


def test_issue_links_to_many_companies(store: ModelStore) -> None:
    store.upsert_arrow(
        "issue", pa.table({"externalId": ["i1"], "companyIds": [json.dumps(["c1", "c2"])]}), "externalId"
    )
    rows = store.con.execute('SELECT "companyId" FROM issue_company ORDER BY 1').fetchall()
    assert rows == [("c1",), ("c2",)]


TODAY = date(2026, 6, 1)


def _company_with(store: ModelStore, licenses: list[dict[str, object]]) -> tuple[object, ...]:
    store.upsert_arrow("company", pa.table({"externalId": ["c"]}), "externalId")
    (cid,) = store.con.execute("SELECT id FROM company").fetchall()[0]
    if licenses:
        rows = [
            {
                "externalId": f"l{i}",
                "companyId": cid,
                "fromDate": None,
                "toDate": None,
                "mrr": None,
                "arr": None,
                "autoRenews": None,
                "renewalStatus": None,
                **lic,
            }
            for i, lic in enumerate(licenses)
        ]
        schema = pa.schema(
            [
                ("externalId", pa.string()),
                ("companyId", pa.string()),
                ("fromDate", pa.date32()),
                ("toDate", pa.date32()),
                ("mrr", pa.float64()),
                ("arr", pa.float64()),
                ("autoRenews", pa.bool_()),
                ("renewalStatus", pa.string()),
            ]
        )
        store.upsert_arrow("license", pa.Table.from_pylist(rows, schema), "externalId")
    store.refresh_company_fields(TODAY)
    return tuple(
        store.con.execute(
            'SELECT mrr, arr, "renewalDate", "customerFrom", "customerTo", status FROM company'
        ).fetchall()[0]
    )


D = date


@pytest.mark.parametrize(
    ("licenses", "expected"),
    [
        ([], (0.0, 0.0, None, None, None, "prospect")),
        (
            [{"fromDate": D(2026, 1, 1), "toDate": D(2026, 12, 31), "mrr": 100.0}],
            (100.0, 1200.0, D(2026, 12, 31), D(2026, 1, 1), None, "customer"),
        ),
        (
            [{"fromDate": D(2026, 1, 1), "toDate": None, "arr": 2400.0}],
            (200.0, 2400.0, None, D(2026, 1, 1), None, "customer"),
        ),
        (
            [{"fromDate": D(2026, 9, 1), "toDate": D(2027, 8, 31), "mrr": 50.0}],
            (0.0, 0.0, None, D(2026, 9, 1), None, "coming"),
        ),
        # Ended without renewal and never marked lost: lost too. Canceled means churned but still running
        # (see test_company_status.py); once every period has ended the company is lost either way.
        (
            [{"fromDate": D(2024, 1, 1), "toDate": D(2025, 1, 1), "mrr": 50.0}],
            (0.0, 0.0, None, D(2024, 1, 1), D(2025, 1, 1), "lost"),
        ),
        (
            [{"fromDate": D(2024, 1, 1), "toDate": D(2025, 1, 1), "mrr": 50.0, "renewalStatus": "lost"}],
            (0.0, 0.0, None, D(2024, 1, 1), D(2025, 1, 1), "lost"),
        ),
        (
            [{"fromDate": D(2024, 1, 1), "toDate": D(2025, 1, 1), "mrr": 50.0, "autoRenews": True}],
            (50.0, 600.0, None, D(2024, 1, 1), None, "customer"),
        ),
        (
            [
                {"fromDate": D(2025, 1, 1), "toDate": D(2026, 7, 1), "mrr": 10.0},
                {"fromDate": D(2026, 3, 1), "toDate": D(2027, 3, 1), "mrr": 30.0},
                {"fromDate": D(2023, 1, 1), "toDate": D(2024, 1, 1), "mrr": 999.0},
            ],
            (40.0, 480.0, D(2026, 7, 1), D(2023, 1, 1), None, "customer"),
        ),
        # Ends today: still active today.
        (
            [{"fromDate": D(2025, 6, 1), "toDate": TODAY, "mrr": 10.0}],
            (10.0, 120.0, TODAY, D(2025, 6, 1), None, "customer"),
        ),
    ],
    ids=[
        "prospect",
        "active",
        "open-ended-arr-only",
        "coming",
        "ended-without-renewal-is-lost-not-canceled",
        "lost",
        "auto-renews",
        "mixed",
        "ends-today",
    ],
)
def test_company_fields_derive_from_licenses(
    store: ModelStore, licenses: list[dict[str, object]], expected: tuple[object, ...]
) -> None:
    assert _company_with(store, licenses) == expected


def test_derived_refresh_is_a_no_op_the_second_time(store: ModelStore) -> None:
    _company_with(store, [{"fromDate": D(2026, 1, 1), "toDate": D(2026, 12, 31), "mrr": 100.0}])
    assert store.refresh_company_fields(TODAY) == 0


def test_sync_log_round_trip(store: ModelStore) -> None:
    run = store.start_run("companies", "crm", cursor_before="a")
    store.finish_run(run, "failed", rows_read=5, rejected=2, error="boom")
    (record,) = store.runs(section="companies")
    assert (record.status, record.rows_read, record.rejected, record.error) == ("failed", 5, 2, "boom")
    assert store.runs(status="success") == []


def test_rejects_are_kept_and_resolved(store: ModelStore) -> None:
    rejects = pa.table({"key": ["k1", "k2"], "reason": ["null key", "duplicate"]})
    store.record_rejects("s", "run1", rejects, resolve_others=True)
    assert len(store.open_rejects("s")) == 2
    resolved = store.record_rejects(
        "s", "run2", pa.table({"key": ["k2"], "reason": ["duplicate"]}), resolve_others=True
    )
    assert resolved == 1
    assert store.open_rejects("s") == [("s", "k2", "duplicate", "run2")]


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the store file (as a sensor or a run does), for ``seconds``."""
    script = (
        f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep({seconds})"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_open_waits_while_another_process_briefly_holds_the_store(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"  # a DuckDB-file catalog: one process at a time
    ModelStore(path).close()
    holder = _hold(path, 1.0)
    try:
        with ModelStore(path, lock_timeout=20) as store:
            assert store.count("company") == 0
    finally:
        holder.wait(timeout=30)


def test_open_fails_clearly_when_the_store_stays_locked(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"  # a DuckDB-file catalog: one process at a time
    ModelStore(path).close()
    holder = _hold(path, 30.0)
    try:
        with pytest.raises(PlanhatPipelinesError, match=r"another process holds it.*SQLite catalog"):
            ModelStore(path, lock_timeout=0.5)
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_each_refresh_writes_the_days_row_of_the_company_series_once_per_day(store: ModelStore) -> None:
    _company_with(store, [{"fromDate": D(2026, 1, 1), "toDate": D(2026, 12, 31), "arr": 1200.0}])
    store.con.execute(
        'INSERT INTO user_activities (section, "key", model, "companyId", "date") '
        "SELECT 'events', range, 'enduser', (SELECT id FROM company), TIMESTAMP '2026-05-20' FROM range(7)"
    )
    store.refresh_company_fields(TODAY)
    store.refresh_company_fields(TODAY)  # the same day again: the row is overwritten, not added
    store.con.execute("UPDATE license SET \"toDate\" = DATE '2026-06-15'")
    store.refresh_company_fields(D(2026, 6, 20))  # a later day: its own row (the license has ended)
    rows = store.con.execute(
        'SELECT "day", arr, mrr, status, "activeLicenses", "activities30d" FROM company_daily ORDER BY "day"'
    ).fetchall()
    assert rows == [
        (TODAY, Decimal("1200.000000"), Decimal("100.000000"), "customer", 1, 7),
        # Ended without renewal: lost (canceled is only for a churned license still running).
        (D(2026, 6, 20), Decimal("0.000000"), Decimal("0.000000"), "lost", 0, 0),
    ]


def test_the_company_series_counts_active_licenses_by_the_status_rules(store: ModelStore) -> None:
    # A lost license never auto-renews: past its toDate it is not active, in the series as in the status.
    _company_with(
        store,
        [
            {"fromDate": D(2025, 1, 1), "toDate": D(2026, 1, 1), "mrr": 10.0, "autoRenews": True},
            {
                "fromDate": D(2025, 1, 1),
                "toDate": D(2026, 1, 1),
                "mrr": 20.0,
                "autoRenews": True,
                "renewalStatus": "lost",
            },
        ],
    )
    store.refresh_company_fields(TODAY)
    row = store.con.execute('SELECT mrr, "activeLicenses" FROM company_daily').fetchall()[0]
    assert row == (Decimal("10.000000"), 1)
