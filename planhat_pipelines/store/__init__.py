"""The model store (a DuckLake) and where it lives."""

from planhat_pipelines.store.location import StoreLocation
from planhat_pipelines.store.store import ModelStore, RunRecord, UpsertCounts

__all__ = ["ModelStore", "RunRecord", "StoreLocation", "UpsertCounts"]
