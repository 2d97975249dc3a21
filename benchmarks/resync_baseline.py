"""A no-change CRM re-sync, this checkout against a baseline commit, measured in the same run.

Issue 19 asks that a re-sync that finds nothing new stay as cheap as before it (the change log, the drift check,
the delete handling all sit on that path). This script checks the baseline commit out into a git worktree under
``benchmarks/.work/``, and for each version in turn (alternating, ``--repeats`` times) runs, in a fresh
interpreter whose ``sys.path`` starts at that version's code: a first sync of ``--companies`` companies from one
shared DuckDB warehouse into a store of that version's own, then the timed no-change re-sync. It prints the
medians of wall and CPU seconds and the ratio now / baseline.

    .venv/bin/python benchmarks/resync_baseline.py --baseline 2bad1ba --companies 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "resync_baseline"

#: Runs inside the version under test: ``argv`` = warehouse path, store dir; prints the re-sync's seconds as JSON.
_CASE = r"""
import json, sys, time
from pathlib import Path
from planhat_pipelines.config import parse_config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines.warehouses.factory import open_warehouse

warehouse_path, store_dir = sys.argv[1], Path(sys.argv[2])
doc = {
    "store": {"catalog": str(store_dir / "store.sqlite")},
    "connections": {"wh": {"type": "duckdb", "path": warehouse_path}},
    "crm": [{
        "name": "companies", "model": "company", "connection": "wh", "table": "crm_companies",
        "direction": "receive", "keys": {"planhat": "externalId", "warehouse": "company_key"},
        "fields": [{"planhat": "name", "warehouse": "name"}, {"planhat": "phase", "warehouse": "phase"},
                   {"planhat": "custom", "warehouse": "attributes"}],
    }],
}
config = parse_config(doc, store_dir / "config.yaml")
section = config.crm[0]
with ModelStore(config.store) as store, open_warehouse(config.connection("wh")) as wh:
    first = sync_section(section, store, wh)
    assert first.inserted > 0
with ModelStore(config.store) as store, open_warehouse(config.connection("wh")) as wh:
    wall, cpu = time.perf_counter(), time.process_time()
    again = sync_section(section, store, wh)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert again.inserted == again.updated == 0, again
print(json.dumps({"wall": wall, "cpu": cpu}))
"""


def _warehouse(path: Path, companies: int) -> None:
    import duckdb

    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE OR REPLACE TABLE crm_companies AS SELECT 'C-' || i AS company_key, 'Company ' || i AS name, "
            "CASE i % 3 WHEN 0 THEN 'onboarding' WHEN 1 THEN 'live' ELSE 'renewal' END AS phase, "
            "CAST(json_object('tier', CASE WHEN i % 2 = 0 THEN 'gold' ELSE 'silver' END, 'seats', i % 50) AS JSON) "
            f"AS attributes FROM range({companies}) t(i)"
        )


def _baseline_tree(rev: str) -> Path:
    tree = WORK / f"baseline-{rev}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True)
    return tree


def _run(code_root: Path, warehouse: Path, store_dir: Path) -> dict[str, float]:
    shutil.rmtree(store_dir, ignore_errors=True)
    store_dir.mkdir(parents=True)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(code_root)!r})\n{_CASE}",
            str(warehouse),
            str(store_dir),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="2bad1ba", help="the commit to compare with (default: before issue 19)")
    parser.add_argument("--companies", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    warehouse = WORK / "warehouse.duckdb"
    _warehouse(warehouse, args.companies)
    versions = {"baseline": _baseline_tree(args.baseline), "now": ROOT}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in versions}
    for _ in range(args.repeats):
        for name, code_root in versions.items():
            runs[name].append(_run(code_root, warehouse, WORK / f"store-{name}"))
    print(f"no-change re-sync of {args.companies:,} companies, median of {args.repeats} (baseline {args.baseline}):")
    for measure in ("wall", "cpu"):
        base = statistics.median(r[measure] for r in runs["baseline"])
        now = statistics.median(r[measure] for r in runs["now"])
        print(f"  {measure:<4} s: baseline {base:.3f}  now {now:.3f}  ratio {now / base:.2f}")


if __name__ == "__main__":
    main()
