"""A real CRM receive from a DuckDB warehouse table, for the "which wins" tests of the behaviours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.crm import sync_section
from planhat_pipelines_tests.behaviours.seed import seed
from planhat_pipelines_tests.builders import config_doc, crm_section, parse
from planhat_pipelines_tests.emulators.duckdb import DuckDBHarness


def receive(
    store: ModelStore,
    harness: DuckDBHarness,
    tmp_path: Path,
    model: str,
    rows: dict[str, list[Any]],
    fields: dict[str, str],
) -> None:
    """Receive ``rows`` (columns; ``key`` the record key, ``company_key`` the company's externalId) into ``model``.

    ``fields`` maps Planhat field -> warehouse column; ``companyId`` <- ``company_key`` is added.
    """
    table = f"crm_{model}"
    harness.create_table(table, pa.table(rows))
    mapping = [{"planhat": p, "warehouse": w} for p, w in {**fields, "companyId": "company_key"}.items()]
    section = crm_section(model, table, warehouse_key="key", model=model, fields=mapping)
    doc = config_doc(tmp_path, connections={"wh": harness.connection_config()}, crm=[section])
    (parsed,) = parse(doc, tmp_path).crm
    sync_section(parsed, store, harness.warehouse())


def company(store: ModelStore, key: str = "c") -> str:
    """Seed company ``key`` and return its native id."""
    seed(store, "company", [{"externalId": key}])
    return str(store.con.execute('SELECT id FROM company WHERE "externalId" = ?', [key]).fetchall()[0][0])
