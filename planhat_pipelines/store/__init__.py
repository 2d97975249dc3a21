"""The DuckDB model store."""

from planhat_pipelines.store.store import ModelStore, RunRecord, UpsertCounts

__all__ = ["ModelStore", "RunRecord", "UpsertCounts"]
