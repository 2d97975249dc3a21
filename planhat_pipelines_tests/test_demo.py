"""`make demo` twice on the embedded warehouse: correct the first time, only the new rows the second."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from planhat_pipelines.config import load_config
from planhat_pipelines.demo.run import run_all, seed
from planhat_pipelines.store import ModelStore

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
        assert counts == {"company": 500, "enduser": 5000, "license": 900, "opportunity": 250}
        assert events == (100_000, 100_000)
        assert set(statuses) <= {"prospect", "coming", "customer", "canceled", "lost"} and "customer" in statuses
        assert okrs == 2

        seed(config, lines.append)
        run_all(config, instance, lines.append)
        with ModelStore(config.store) as store:
            crm_runs = [r for r in store.runs(limit=100) if r.domain == "crm"]
            latest = {r.section: r for r in sorted(crm_runs, key=lambda r: r.started_at)}
            writes = {s: (r.inserted, r.updated, r.sent) for s, r in latest.items()}
            assert all(w == (0, 0, 0) for w in writes.values()), writes
            events = store.con.execute('SELECT count(*), count(DISTINCT "key") FROM user_activities').fetchall()[0]
            source = 100_000 + 2_000
            assert events == (source, source)
            (usage_run,) = store.runs(section="product_events", limit=1)
            assert (usage_run.rows_read, usage_run.inserted) == (2_000, 2_000)
