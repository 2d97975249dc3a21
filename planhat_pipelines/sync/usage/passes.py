"""The passes of a usage run, in the order :func:`~planhat_pipelines.sync.usage.run_usage` runs them.

Retry open rejects, re-read the lookback window, load each range, reject invalid keys. Each pass reads
through :meth:`Pass.run <planhat_pipelines.sync.usage.batch.Pass.run>`, so every batch commits on its own.
"""

from __future__ import annotations

from planhat_pipelines.sync.ranges import KeyRangeSpan
from planhat_pipelines.sync.usage.batch import Pass
from planhat_pipelines.warehouses.base import KeyRange

#: Keys of open rejects read per warehouse query when they are retried (a bound on the query's size).
RETRY_KEYS_PER_READ = 1_000


def retry_rejects(one: Pass) -> None:
    """Read again exactly the keys of open, retryable rejects (e.g. an end user that did not exist yet).

    Rows already loaded are skipped, so this is idempotent; a reject whose row now passes is marked resolved,
    one still failing is recorded again by this run. Keys are read :data:`RETRY_KEYS_PER_READ` at a time.
    """
    keys = one.store.retryable_reject_keys(one.section.name)
    for start in range(0, len(keys), RETRY_KEYS_PER_READ):
        chunk = tuple(keys[start : start + RETRY_KEYS_PER_READ])
        one.run(KeyRange(one.section.key, keys=chunk), "retry")


def reread_lookback(one: Pass) -> None:
    """Re-read the ``lookback`` keys below the section's loaded-through cursor, whatever ranges they fall in.

    Rows already loaded are skipped by the anti-join; a late row is inserted. Cursors do not move: every key
    read is at or below the loaded-through cursor already.
    """
    loaded = one.loaded_through()
    if not one.section.lookback or loaded is None:
        return
    window = KeyRange(one.section.key, after=max(loaded - one.section.lookback, -1), through=loaded)
    one.run(window, "lookback")


def load_span(one: Pass, span: KeyRangeSpan, *, reread: bool) -> None:
    """Load the range ``[start, end]`` after its cursor (the whole range when ``reread``); record its counts."""
    scope = span.partition_key
    cursor = one.cursor(scope)
    after = span.start - 1
    if cursor is not None and not reread:
        after = max(after, cursor)
    before = one.result.counts()
    one.run(KeyRange(one.section.key, after=after, through=span.end), "range", cursor_scope=scope)
    one.result.ranges.append(scope)
    one.result.per_range[scope] = one.result.counts() - before


def reject_invalid_keys(one: Pass) -> None:
    """Rows whose key is not valid belong to no range: each run reads them (one filtered scan) and rejects them.

    They are permanent rejects. One whose row left the source or changed (it is then recorded anew) is resolved.
    """
    one.run(KeyRange(one.section.key, invalid_keys=True), "invalid keys")
    if one.open_rejects():
        one.result.resolved_rejects += one.store.resolve_rejects(one.section.name, one.run_id, permanent=True)
