"""Planhat's model behaviours in Dagster: one asset per behaviour, downstream of the sections it reads.

Thin: each asset calls one function of :mod:`planhat_pipelines.behaviours` and reports its counts. An asset
exists only when the behaviour is enabled (``behaviours:`` in the config) and a CRM section receives the model it
starts from, so the lineage graph shows exactly what runs. Each runs in the ``crm_*`` jobs after the sections it
reads, when those sections land (``WHEN_UPSTREAM_LANDS``, evaluated by ``customer_numbers_automation_sensor``)
and in ``customer_numbers_refresh``.

No ``from __future__ import annotations`` here: Dagster inspects the asset function's ``context`` annotation at
definition time and needs the real class, not a string.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg

from planhat_pipelines.behaviours import BehaviourResult, apply_churns, convert_done_tasks, convert_won_deals
from planhat_pipelines.config import Config
from planhat_pipelines.defs.automation import WHEN_UPSTREAM_LANDS
from planhat_pipelines.defs.naming import BEHAVIOURS_GROUP, behaviour_asset_key, crm_asset_key
from planhat_pipelines.defs.resources import StoreResource
from planhat_pipelines.store import ModelStore


@dataclass(frozen=True)
class _Behaviour:
    """What the factory needs to know of one behaviour."""

    name: str
    starts_from: str  # the model whose records trigger it
    reads: tuple[str, ...]  # every model it reads or writes (their receiving sections run first)
    description: str
    run: Callable[[ModelStore, Config, datetime], BehaviourResult]


def _today(now: datetime) -> date:
    return now.astimezone(UTC).date()


BEHAVIOURS = (
    _Behaviour(
        "churn_licenses",
        "churn",
        ("churn", "license", "company"),
        "A Churn record sets the licenses it names (all of the company's licenses running on the churn date when it "
        "names none) to renewal status `lost`; the company's status moves to canceled, then lost when the periods "
        "end. Idempotent: a license already lost is left alone.",
        lambda store, config, now: apply_churns(store, config.behaviours.churn_licenses, _today(now)),
    ),
    _Behaviour(
        "won_deal_license",
        "opportunity",
        ("opportunity", "license", "company"),
        "An Opportunity in a won status creates one License for its company (fields mapped by "
        "`behaviours.won_deal_license.fields`), linked back by `opportunityId`, never twice. A license the "
        "warehouse sends with the same key (key_prefix + the opportunity's key) wins: it is never duplicated or "
        "overwritten.",
        lambda store, config, now: convert_won_deals(store, config.behaviours.won_deal_license, _today(now)),
    ),
    _Behaviour(
        "done_task_conversation",
        "task",
        ("task", "conversation", "company"),
        "A Task in a done status creates one Conversation (type task: subject, date, company, end users) linked "
        "by `taskId`, never twice. A conversation the warehouse sends with the same key (key_prefix + the task's "
        "key) wins.",
        lambda store, config, now: convert_done_tasks(store, config.behaviours.done_task_conversation, now),
    ),
)


def _enabled(config: Config, name: str) -> bool:
    return bool(getattr(config.behaviours, name).enabled)


def _receiving_sections(config: Config, models: tuple[str, ...]) -> list[dg.AssetKey]:
    return [crm_asset_key(s) for s in config.crm if s.model.slug in models and s.direction.receives]


def build_behaviour_asset(config: Config, behaviour: _Behaviour) -> dg.AssetsDefinition:
    """``behaviours/<name>``: runs the behaviour in one store transaction and reports its counts."""

    @dg.asset(
        key=behaviour_asset_key(behaviour.name),
        group_name=BEHAVIOURS_GROUP,
        kinds={"duckdb"},
        deps=_receiving_sections(config, behaviour.reads),
        pool=f"planhat_behaviour_{behaviour.name}",
        automation_condition=WHEN_UPSTREAM_LANDS,
        description=behaviour.description,
        tags={"domain": "behaviours"},
    )
    def _behaviour(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        with store.open() as model_store:
            result = behaviour.run(model_store, config, datetime.now(UTC))
        context.log.info(f"{behaviour.name}: {result.metadata()}")
        return dg.MaterializeResult(metadata=dict(result.metadata()))

    return _behaviour


def active_behaviours(config: Config) -> list[_Behaviour]:
    """The behaviours that run: enabled, and some CRM section receives the model each starts from."""
    return [b for b in BEHAVIOURS if _enabled(config, b.name) and _receiving_sections(config, (b.starts_from,))]


def behaviour_keys(config: Config, *, reading: list[dg.AssetKey] | None = None) -> list[dg.AssetKey]:
    """The asset keys of the behaviours that run; with ``reading``, only those downstream of one of those keys."""
    return [
        behaviour_asset_key(b.name)
        for b in active_behaviours(config)
        if reading is None or set(_receiving_sections(config, b.reads)) & set(reading)
    ]


def build_behaviour_assets(config: Config) -> list[dg.AssetsDefinition]:
    """An asset per behaviour that runs (see :func:`active_behaviours`)."""
    return [build_behaviour_asset(config, b) for b in active_behaviours(config)]
