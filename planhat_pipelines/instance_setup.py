"""Pool limits that live in the Dagster instance's storage, not in dagster.yaml.

Dagster 1.13 reads only a *default* pool limit from dagster.yaml (``concurrency.pools.default_limit``),
which would limit every pool. The model store needs exactly one writer, so its pool gets an explicit
limit of 1 here and every other pool stays unlimited. Idempotent: run it on every start
(``python -m planhat_pipelines.instance_setup`` with ``DAGSTER_HOME`` set), the same as
``dagster instance concurrency set planhat_store 1``.
"""

from __future__ import annotations

import dagster as dg

from planhat_pipelines.defs.resources import STORE_POOL
from planhat_pipelines.errors import PlanhatPipelinesError

#: Pool -> limit. DuckDB allows one writer process, so the store's pool runs one step at a time.
POOL_LIMITS: dict[str, int] = {STORE_POOL: 1}


def apply_pool_limits(instance: dg.DagsterInstance) -> list[str]:
    """Set every limit in :data:`POOL_LIMITS` on ``instance``; one line per pool saying what changed.

    Raises:
        PlanhatPipelinesError: the instance's storage cannot hold pool limits.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        raise PlanhatPipelinesError(
            f"Dagster instance {instance.root_directory}: its storage does not support pool limits, so the "
            f"'{STORE_POOL}' pool cannot be limited to one writer. Fix: run `dagster instance migrate` "
            "(or use the default SQLite/Postgres storage)"
        )
    lines = []
    for pool, limit in POOL_LIMITS.items():
        before = storage.get_concurrency_info(pool)
        explicit = before.slot_count > 0 or not before.using_default_limit
        if explicit and before.limit == limit:
            lines.append(f"pool {pool}: limit {limit} (unchanged)")
            continue
        storage.set_concurrency_slots(pool, limit)
        was = before.limit if explicit else "unset"
        lines.append(f"pool {pool}: limit {limit} (was {was})")
    return lines


def main() -> None:
    """Apply the pool limits to the instance named by ``$DAGSTER_HOME``."""
    with dg.DagsterInstance.get() as instance:
        for line in apply_pool_limits(instance):
            print(line)


if __name__ == "__main__":
    main()
