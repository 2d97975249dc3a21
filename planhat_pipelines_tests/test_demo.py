"""`make demo` twice on the embedded warehouse: correct the first time, only the new rows the second, and the
customer numbers built on them (behaviours, calculated metrics, health score) the same both times."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from planhat_pipelines.config import load_config
from planhat_pipelines.defs.naming import behaviour_asset_key
from planhat_pipelines.demo.run import run_all, seed
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.customer_numbers import CustomerNumbers

ROOT = Path(__file__).resolve().parents[1]


def test_demo_twice_no_duplicates_and_only_new_rows(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "planhat_pipelines.yaml").read_text())
    raw["store"]["catalog"] = str(tmp_path / "planhat.sqlite")
    raw["connections"]["embedded"]["path"] = str(tmp_path / "warehouse.duckdb")
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        seed(config, lines.append)
        run_all(config, instance, lines.append)
        assert not [line for line in lines if "FAILED" in line], lines
        with ModelStore(config.store) as store:
            counts = {m: store.count(m) for m in ("company", "enduser", "license", "opportunity")}
            events = store.con.execute('SELECT count(*), count(DISTINCT "key") FROM user_activities').fetchall()[0]
            statuses = dict(store.con.execute("SELECT status, count(*) FROM company GROUP BY 1").fetchall())
            okrs = store.con.execute("SELECT count(*) FROM okr_values WHERE error IS NULL").fetchall()[0][0]
            numbers = store.customer_numbers()
            won = store.con.execute(
                "SELECT count(*) FROM opportunity WHERE status = 'won' AND \"companyId\" IS NOT NULL"
            ).fetchall()[0][0]
        # Every won deal became one license, linked back to it.
        assert counts == {"company": 500, "enduser": 5000, "license": 900 + won, "opportunity": 250}
        assert numbers.licenses_from_won_deals == won > 0
        assert events == (100_000, 100_000)
        assert set(statuses) <= {"prospect", "coming", "customer", "canceled", "lost"} and "customer" in statuses
        assert {"canceled", "lost"} <= set(statuses)  # the demo's churns: recent ones still run, old ones ended
        assert numbers.conversations_from_tasks > 0 and numbers.churned_licenses > 0
        assert all(n > 0 for n, _ in numbers.metric_totals.values()), numbers.metric_totals
        scored, _, lowest, highest = numbers.health
        assert scored == 500 and lowest is not None and highest is not None and lowest < highest
        assert okrs == 2

        seed(config, lines.append)
        run_all(config, instance, lines.append)
        with ModelStore(config.store) as store:
            crm_runs = [r for r in store.runs(limit=100) if r.domain == "crm"]
            latest = {r.section: r for r in sorted(crm_runs, key=lambda r: r.started_at)}
            writes = {s: (r.inserted, r.updated, r.sent) for s, r in latest.items()}
            # The full sync writes the warehouse's renewal status over the licenses a churn set lost, and the churn
            # behaviour sets them back in the same run (the churn wins): those are the only writes.
            # Run 2 materialized the churn behaviour twice: in crm_full_sync and in customer_numbers_refresh.
            records = instance.fetch_materializations(behaviour_asset_key("churn_licenses"), limit=2).records
            reset = sum(
                int(str(r.asset_materialization.metadata["changed"].value))
                for r in records
                if r.asset_materialization is not None
            )
            assert reset > 0
            assert writes.pop("licenses") == (0, reset, 0)
            assert all(w == (0, 0, 0) for w in writes.values()), writes
            assert _stable(store.customer_numbers()) == _stable(numbers)
            events = store.con.execute('SELECT count(*), count(DISTINCT "key") FROM user_activities').fetchall()[0]
            source = 100_000 + 2_000
            assert events == (source, source)
            (usage_run,) = store.runs(section="product_events", limit=1)
            assert (usage_run.rows_read, usage_run.inserted) == (2_000, 2_000)


def _stable(numbers: CustomerNumbers) -> tuple[object, ...]:
    """What a second demo must leave as it was: statuses, ARR, behaviour counts, and every company scored.

    Usage-based numbers move with the ~2 % new usage rows (that is what they measure), so only their presence is
    compared.
    """
    return (
        numbers.statuses,
        numbers.arr,
        numbers.churned_licenses,
        numbers.licenses_from_won_deals,
        numbers.conversations_from_tasks,
        sorted(numbers.metric_totals),
        numbers.health[0],
    )
