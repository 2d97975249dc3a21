"""What the adapters' write and change-tracking calls return (re-exported by ``base``)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class MergeResult:
    """What a merge wrote."""

    inserted: int
    updated: int


@dataclass(frozen=True)
class ChangeSet:
    """Rows changed since a point, as a change-tracking warehouse reports them.

    Attributes:
        rows: Changed rows (inserts and updates), selected columns only.
        deleted_keys: Keys of deleted rows.
        until: The point to pass as ``since`` next time.
    """

    rows: pa.Table
    deleted_keys: pa.Array
    until: str


@dataclass(frozen=True)
class ChangesUnavailable:
    """Why a partial read is not possible, so the caller falls back to a full read."""

    reason: str
