"""Usage sync: User Activities and Custom Metrics pulled one way by an incrementing numeric key.

Exactly-once, by construction:

- The store's primary key for usage rows is ``(section, key)``; rows insert with an anti-join on it, so
  re-reading a key (a retry, a re-run, the lookback) never duplicates it.
- Each range (partition) is read in key order, in batches. One store transaction holds a batch's
  rows, its rejects, the range's cursor (``sync_cursors``: section, range key -> last key loaded) and the
  run's counts so far (``sync_runs``). A crash before COMMIT leaves nothing of the batch; after COMMIT the
  cursor and the sync log cover exactly what landed.
- A retry resumes after the range's cursor, so it neither skips nor repeats work. ``lookback: N`` re-reads
  the N keys below the section's loaded-through cursor on every run, whatever ranges they fall in, so a row
  committed late with a lower key is still loaded (once: the anti-join skips what is there).

Keys. A valid key is a whole number ``0 <= key < 10**32`` (see :class:`~planhat_pipelines.warehouses.base.KeyRange`);
a text key column is read through a safe cast. Rows whose key is not valid (null, negative, fractional,
non-finite, longer than 32 digits, text that is not digits, floats from 2**53 on) belong to no range: one
filtered scan per run reads them and rejects them as *permanent* rejects (no retry can fix them; a changed
row is a new reject and the old record is resolved).

Row validation happens in DuckDB SQL over the whole batch: invalid keys, keys that occur twice in the
source, missing or unknown record references (emails compared lower-cased and trimmed; other references
exactly), unconvertible dates, and values that are not finite numbers are rejected with a reason and the
offending value into ``rejected_rows``, one record per source row. Open rejects that are not permanent are
retried every run by reading exactly their keys, in batches of :data:`RETRY_KEYS_PER_READ`.

Modules: :mod:`.engine` (the entry points: :func:`check_source`, :func:`pending_ranges`, :func:`load_range`,
:func:`run_usage`), :mod:`.passes` (retry, lookback, ranges, invalid keys), :mod:`.batch` (one pass's reads and
per-batch commits), :mod:`.validation` (the validation SQL), :mod:`.result` (counts and progress).
"""

from planhat_pipelines.sync.usage.batch import loaded_through
from planhat_pipelines.sync.usage.engine import check_source, load_range, pending_ranges, run_usage
from planhat_pipelines.sync.usage.passes import RETRY_KEYS_PER_READ
from planhat_pipelines.sync.usage.result import ProgressFn, RangeCounts, UsageProgress, UsageResult

__all__ = [
    "RETRY_KEYS_PER_READ",
    "ProgressFn",
    "RangeCounts",
    "UsageProgress",
    "UsageResult",
    "check_source",
    "load_range",
    "loaded_through",
    "pending_ranges",
    "run_usage",
]
