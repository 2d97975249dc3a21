"""How a sync failure reaches Dagster: terminal errors fail once with the project's message, transient ones retry.

A typed project error that a retry cannot fix (a missing table or column, a view as a send target, a bad key
column, refused credentials) becomes a :class:`dagster.Failure` whose description is the project's one-line
message and whose metadata holds the fix, with ``allow_retries=False``: the UI shows the message first, the
step's retry policy does not retry it, and (with ``run_retries.retry_on_asset_or_op_failure: false`` in
``dagster.yaml``) neither does the daemon. Anything transient (a dropped connection, a busy store, a 5xx) is
re-raised unchanged, so :data:`SYNC_RETRY_POLICY` retries the step in the same run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from planhat_pipelines.errors import ConfigError, PlanhatPipelinesError

#: Transient failures are retried in the run: after 10 s, then 20 s. Safe: every sync is exactly-once.
SYNC_RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)


def terminal_failure(exc: PlanhatPipelinesError, where: str) -> dg.Failure:
    """The :class:`dagster.Failure` for a terminal project error: message first, the fix as metadata."""
    problem = f"{exc.path}: {exc.where}: {exc.problem}" if isinstance(exc, ConfigError) else exc.problem
    fix = exc.fix
    return dg.Failure(
        description=f"{where}: {problem}" + (f". Fix: {fix}" if fix else ""),
        metadata={"error": dg.MetadataValue.text(problem), "fix": dg.MetadataValue.text(fix or "(none given)")},
        allow_retries=False,
    )


@contextmanager
def sync_failures(where: str) -> Iterator[None]:
    """Turn terminal project errors raised inside into :func:`terminal_failure`; let transient ones through."""
    try:
        yield
    except PlanhatPipelinesError as exc:
        if exc.transient:
            raise
        raise terminal_failure(exc, where) from exc
