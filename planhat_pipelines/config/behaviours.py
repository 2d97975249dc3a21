"""``behaviours:``: Planhat's model behaviours, each switchable (all on by default, as in Planhat).

- ``churn_licenses``: a Churn record sets the licenses it names (all of the company's running licenses when it
  names none) to renewal status ``lost``.
- ``won_deal_license``: an Opportunity in a won status creates one License for its company, linked back to it.
- ``done_task_conversation``: a Task in a done status creates one Conversation (type ``task``) linked to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from planhat_pipelines.config.base import FileModel, Positive, fail
from planhat_pipelines.models import MODELS


@dataclass(frozen=True)
class ChurnBehaviour:
    """Churn -> the licenses it names (or all of the company's running ones) get renewal status ``lost``."""

    enabled: bool = True


@dataclass(frozen=True)
class WonDealBehaviour:
    """Closed/Won Opportunity -> one License.

    Attributes:
        enabled: Whether the behaviour runs.
        won_statuses: Opportunity statuses that mean won (compared trimmed and case-insensitively).
        fields: License field <- Opportunity field, for the created license.
        defaults: License field -> a constant, for fields ``fields`` does not set.
        term_months: The created license's period: ``toDate = fromDate + term_months - 1 day``.
        key_prefix: The created license's ``externalId`` is this prefix + the opportunity's externalId (else id),
            so a warehouse section that sends a license with that key updates the same record.
    """

    enabled: bool = True
    won_statuses: tuple[str, ...] = ("won", "closed won", "closed/won")
    fields: Mapping[str, str] = field(
        default_factory=lambda: {"arr": "arr", "mrr": "mrr", "fromDate": "closeDate", "product": "title"}
    )
    defaults: Mapping[str, Any] = field(default_factory=dict)
    term_months: int = 12
    key_prefix: str = "opp:"


@dataclass(frozen=True)
class DoneTaskBehaviour:
    """Done Task -> one Conversation of type ``task``.

    Attributes:
        enabled: Whether the behaviour runs.
        done_statuses: Task statuses that mean done (compared trimmed and case-insensitively).
        conversation_type: The created conversation's ``type``.
        key_prefix: The created conversation's ``externalId`` is this prefix + the task's externalId (else id).
    """

    enabled: bool = True
    done_statuses: tuple[str, ...] = ("done", "completed")
    conversation_type: str = "task"
    key_prefix: str = "task:"


@dataclass(frozen=True)
class BehavioursConfig:
    """Every behaviour's settings."""

    churn_licenses: ChurnBehaviour = ChurnBehaviour()
    won_deal_license: WonDealBehaviour = WonDealBehaviour()
    done_task_conversation: DoneTaskBehaviour = DoneTaskBehaviour()


#: License fields the won-deal behaviour sets itself: a mapping or a default may not set them.
WON_DEAL_OWN_FIELDS = ("id", "sourceId", "externalId", "companyId", "opportunityId")


def won_deal_field_problems(fields: Mapping[str, str], defaults: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """What is wrong with a won-deal field mapping, as ``(key, problem, fix)``; ``key`` is below the behaviour.

    A ``fields`` key and a ``defaults`` key must be a standard License field the behaviour does not set itself
    (:data:`WON_DEAL_OWN_FIELDS`); a ``fields`` value must be a field of the Opportunity.
    """
    license_, opportunity = MODELS["license"], MODELS["opportunity"]
    settable = [f.name for f in license_.all_fields if f.name not in WON_DEAL_OWN_FIELDS]
    opp_names = [f.name for f in opportunity.all_fields]
    problems: list[tuple[str, str, str]] = []

    def license_field(where: str, name: str) -> None:
        if name in WON_DEAL_OWN_FIELDS:
            problems.append(
                (
                    where,
                    f"License.{name} is set by the behaviour itself",
                    f"remove it; map one of: {', '.join(settable)}",
                )
            )
        elif license_.field(name) is None:
            close = get_close_matches(name, settable, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append((where, f"unknown License field '{name}'", f"{hint}use one of: {', '.join(settable)}"))

    for name, source in fields.items():
        license_field(f"fields.{name}", name)
        if opportunity.field(source) is None:
            close = get_close_matches(source, opp_names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(
                (f"fields.{name}", f"unknown Opportunity field '{source}'", f"{hint}use one of: {', '.join(opp_names)}")
            )
    for name in defaults:
        license_field(f"defaults.{name}", name)
    return problems


# --- the file ----------------------------------------------------------------------------------------
def _statuses(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        fail("is empty", "list at least one status, e.g. [won]")
    return tuple(s.strip().lower() for s in value)


Statuses = Annotated[
    tuple[str, ...], BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v), AfterValidator(_statuses)
]


class ChurnBehaviourFile(FileModel):
    enabled: bool = True

    def build(self) -> ChurnBehaviour:
        return ChurnBehaviour(self.enabled)


class WonDealBehaviourFile(FileModel):
    enabled: bool = True
    won_statuses: Statuses = WonDealBehaviour.won_statuses
    fields: dict[str, str] = Field(default_factory=lambda: dict(WonDealBehaviour().fields))
    defaults: dict[str, Any] = Field(default_factory=dict)
    term_months: Positive = 12
    key_prefix: str = "opp:"

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for key, problem, fix in won_deal_field_problems(value, {}):
            fail(problem, fix, key.removeprefix("fields."))
        return value

    @field_validator("defaults")
    @classmethod
    def _known_defaults(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, problem, fix in won_deal_field_problems({}, value):
            fail(problem, fix, key.removeprefix("defaults."))
        return value

    def build(self) -> WonDealBehaviour:
        return WonDealBehaviour(
            self.enabled, self.won_statuses, dict(self.fields), dict(self.defaults), self.term_months, self.key_prefix
        )


class DoneTaskBehaviourFile(FileModel):
    enabled: bool = True
    done_statuses: Statuses = DoneTaskBehaviour.done_statuses
    conversation_type: str = "task"
    key_prefix: str = "task:"

    def build(self) -> DoneTaskBehaviour:
        return DoneTaskBehaviour(self.enabled, self.done_statuses, self.conversation_type, self.key_prefix)


class BehavioursFile(FileModel):
    churn_licenses: ChurnBehaviourFile = ChurnBehaviourFile()
    won_deal_license: WonDealBehaviourFile = WonDealBehaviourFile()
    done_task_conversation: DoneTaskBehaviourFile = DoneTaskBehaviourFile()

    def build(self) -> BehavioursConfig:
        return BehavioursConfig(
            self.churn_licenses.build(), self.won_deal_license.build(), self.done_task_conversation.build()
        )
