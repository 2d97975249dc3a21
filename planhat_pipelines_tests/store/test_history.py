"""`planhat-pipelines history`: which sync changed which fields of one record, from DuckLake's snapshots."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from planhat_pipelines.cli import main
from planhat_pipelines.config import load_config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines_tests.builders import crm_section, write_config_file
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness


def test_history_names_the_sync_and_the_fields_each_commit_changed(
    duckdb_harness: DuckDBHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    duckdb_harness.create_table("crm_companies", pa.table({"id": ["c1", "c2"], "name": ["Acme", "Beta"]}))
    path = write_config_file(tmp_path, connections={"wh": duckdb_harness.connection_config()}, crm=[crm_section()])
    config = load_config(path)
    (section,) = config.crm
    with ModelStore(config.store) as store, duckdb_harness.warehouse() as wh:
        sync_section(section, store, wh)
        duckdb_harness.execute("UPDATE crm_companies SET name = 'Acme Inc' WHERE id = 'c1'")
        sync_section(section, store, wh)
        sync_section(section, store, wh)  # nothing changed: no history entry
        runs = {r.run_id for r in store.runs(section="companies")}
        changes = store.record_history("company", "c1")
    assert [c.kind for c in changes] == ["inserted", "updated"]
    inserted, updated = changes
    assert (inserted.section, updated.section) == ("companies", "companies")
    assert {inserted.run_id, updated.run_id} <= runs and inserted.run_id != updated.run_id
    assert [(f.name, f.before, f.after) for f in updated.fields] == [("name", "Acme", "Acme Inc")]
    assert ("externalId", None, "c1") in [(f.name, f.before, f.after) for f in inserted.fields]
    # By its native id too, and from the command line (read-only).
    with ModelStore(config.store, read_only=True) as store:
        assert store.record_history("company", inserted.record_id) == changes
    assert main(["--config", str(path), "history", "company", "c1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"inserted {inserted.record_id} by companies (sync run {inserted.run_id})")
    assert "    name: 'Acme' -> 'Acme Inc'" in out


def test_history_refuses_an_unknown_model_or_key_with_the_fix(store: ModelStore) -> None:
    with pytest.raises(PlanhatPipelinesError, match=r"'compnay' is not a model\. Fix: use one of .*company"):
        store.record_history("compnay", "c1")
    with pytest.raises(PlanhatPipelinesError, match=r"no Company record has the key 'zz'.*Fix: give its id"):
        store.record_history("company", "zz")
