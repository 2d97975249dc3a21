"""`make demo`: seed the embedded warehouse and run every asset the config declares through Dagster."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from planhat_pipelines.config import Config, DuckDBSettings
from planhat_pipelines.definitions import build_definitions
from planhat_pipelines.defs.naming import CUSTOMER_NUMBERS_JOB, full_sync_run_config
from planhat_pipelines.defs.usage import RANGE_END_TAG, RANGE_START_TAG, usage_partitions
from planhat_pipelines.demo.generate import seed_demo
from planhat_pipelines.progress import is_progress_line
from planhat_pipelines.store import ModelStore
from planhat_pipelines.sync.usage import pending_ranges
from planhat_pipelines.warehouses.factory import open_warehouse

_ROOT = Path(__file__).resolve().parents[2]


#: The shipped demo configs: the only ones demo data is written for without ``--demo``.
DEMO_CONFIGS = (
    _ROOT / "planhat_pipelines.yaml",
    _ROOT / "examples" / "demo_bigquery.yaml",
    _ROOT / "examples" / "demo_snowflake.yaml",
)


def is_demo_config(path: str | Path) -> bool:
    """Whether ``path`` is one of :data:`DEMO_CONFIGS` (the file itself, not a copy: a copy is someone's own)."""
    resolved = Path(path).resolve()
    return any(resolved == demo.resolve() for demo in DEMO_CONFIGS)


def seed(config: Config, echo: Callable[[str], None] = print, *, only_missing: bool = False) -> None:
    """Seed every DuckDB connection of a demo config with demo data (appending ~2 % new usage rows).

    Args:
        config: A demo config (the caller checks: see :func:`is_demo_config`).
        echo: Where progress lines go.
        only_missing: Only create warehouse files that do not exist yet; leave existing ones as they are.
    """
    for connection in config.connections.values():
        if isinstance(connection.settings, DuckDBSettings):
            if only_missing and Path(connection.settings.path).exists():
                echo(
                    f"{connection.name}: demo warehouse {connection.settings.path} exists, not seeded again "
                    "(`make demo` grows it)"
                )
                continue
            result = seed_demo(connection.settings.path)
            echo(
                f"seeded {connection.name} ({connection.settings.path}): +{result.events_added:,} events "
                f"(total {result.events_total:,}), +{result.metrics_added:,} metrics (total {result.metrics_total:,})"
            )


#: Keep the demo's terminal readable: Dagster's step-by-step DEBUG lines stay in the run logs (and the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _execute(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    progress: Callable[[str], None] | None,
    *,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run ``job`` in this process, handing the progress lines its assets log to ``progress`` as they happen.

    The lines reach the run's event log through ``context.log``; a listener on the instance for this run's
    id sees each one when it is stored, so nothing about the assets or the loggers changes for the CLI.
    """
    run_id = str(uuid.uuid4())
    if progress is not None:
        report = progress

        def forward(entry: dg.EventLogEntry) -> None:
            if entry.dagster_event is None and is_progress_line(entry.user_message):
                report(entry.user_message)

        instance.add_event_listener(run_id, forward)
    return job.execute_in_process(
        instance=instance, run_id=run_id, raise_on_error=False, run_config=run_config, tags=tags
    )


def run_all(
    config: Config,
    instance: dg.DagsterInstance,
    echo: Callable[[str], None] = print,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Run the CRM full sync (with the behaviours), every usage section's pending ranges, the customer numbers
    (behaviours, calculated metrics, health score) and the OKR refresh, in Dagster.

    Args:
        config: The demo config.
        instance: The Dagster instance the runs are recorded in.
        echo: Where the one line per run goes.
        progress: Where the syncs' progress lines go as they are logged (a :class:`ProgressPrinter`'s
            ``update``); None to leave them in the runs' logs only.
    """
    defs = build_definitions(config)
    if config.crm:
        full = full_sync_run_config(config.crm)
        result = _execute(defs.resolve_job_def("crm_full_sync"), instance, progress, run_config={**QUIET, **full})
        echo(f"crm_full_sync: {'success' if result.success else 'FAILED'} (run {result.run_id})")
    for section in config.usage:
        with ModelStore(config.store) as store, open_warehouse(config.connection(section.connection)) as wh:
            spans, max_key = pending_ranges(section, store, wh)
        if not spans:
            echo(f"usage/{section.name}: nothing new (max key {max_key})")
            continue
        keys = [s.partition_key for s in spans]
        partitions = usage_partitions(section)
        existing = set(instance.get_dynamic_partitions(partitions.name or ""))
        instance.add_dynamic_partitions(partitions.name or "", [k for k in keys if k not in existing])
        job = defs.resolve_job_def(f"usage_{section.name}_job")
        tags = {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}
        result = _execute(job, instance, progress, run_config=QUIET, tags=tags)
        echo(
            f"usage/{section.name}: {len(keys)} range(s) up to key {max_key}: "
            f"{'success' if result.success else 'FAILED'} (run {result.run_id})"
        )
    if CUSTOMER_NUMBERS_JOB in {job.name for job in defs.resolve_all_job_defs()}:
        job = defs.resolve_job_def(CUSTOMER_NUMBERS_JOB)
        result = _execute(job, instance, progress, run_config=QUIET)
        echo(f"{CUSTOMER_NUMBERS_JOB}: {'success' if result.success else 'FAILED'} (run {result.run_id})")
    if config.key_results:
        result = _execute(defs.resolve_job_def("okrs_refresh"), instance, progress, run_config=QUIET)
        echo(f"okrs_refresh: {'success' if result.success else 'FAILED'} (run {result.run_id})")
