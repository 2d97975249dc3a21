"""The declarative catalog of Planhat models."""

from planhat_pipelines.models.catalog import (
    MODELS,
    FieldSpec,
    FieldType,
    ModelSpec,
    Relation,
    get_model,
)

__all__ = ["MODELS", "FieldSpec", "FieldType", "ModelSpec", "Relation", "get_model"]
