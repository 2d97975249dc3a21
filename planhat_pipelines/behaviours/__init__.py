"""Planhat's model behaviours on the model store: churn -> lost licenses, won deal -> license, done task ->
conversation.

The pure core (no Dagster): each behaviour is one set-based pass in one store transaction and returns a
:class:`BehaviourResult`; ``planhat_pipelines/defs/behaviours.py`` wraps them in assets.
"""

from __future__ import annotations

from planhat_pipelines.behaviours.churn import apply_churns
from planhat_pipelines.behaviours.done_task import convert_done_tasks
from planhat_pipelines.behaviours.result import BehaviourResult
from planhat_pipelines.behaviours.won_deal import convert_won_deals

__all__ = ["BehaviourResult", "apply_churns", "convert_done_tasks", "convert_won_deals"]
