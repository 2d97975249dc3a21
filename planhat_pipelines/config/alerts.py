"""``alerts:``: where alerts go and when a section's rejected rows alert."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationInfo, field_validator

from planhat_pipelines.config.base import EnvRef, FileModel, env_ref, fail


@dataclass(frozen=True)
class AlertsConfig:
    """Where alerts go (log by default, or a webhook) and when a section's rejects alert.

    Attributes:
        webhook_url: The incoming-webhook URL, a secret (its path carries the token): only ever
            ``{env: NAME}``, read when an alert is sent.
        rejected_share_threshold: A sync that rejects more than this share of the rows it read alerts.
    """

    webhook_url: EnvRef | None = None
    rejected_share_threshold: float = 0.05


class AlertsFile(FileModel):
    rejected_share_threshold: float = 0.05
    webhook_url: EnvRef | None = None

    @field_validator("rejected_share_threshold")
    @classmethod
    def _a_share(cls, threshold: float) -> float:
        if not 0 <= threshold <= 1:
            fail(f"{threshold} is not a share", "write a number between 0 and 1, e.g. 0.05")
        return threshold

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _a_secret_url(cls, value: Any, info: ValidationInfo) -> EnvRef:
        if isinstance(value, str):
            # Not env_ref's generic message: name the variable to use, and never echo the URL (it is the secret).
            fail(
                "is written in plain text, but the URL is a secret (its path carries the webhook's token)",
                "write webhook_url: {env: PLANHAT_ALERTS_WEBHOOK} and export the URL",
            )
        return env_ref(value, info)

    def build(self) -> AlertsConfig:
        return AlertsConfig(webhook_url=self.webhook_url, rejected_share_threshold=self.rejected_share_threshold)
