"""When a usage section's sensor is due: the scheduling side of a section's ``cadence:``."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from planhat_pipelines.config import Cadence


def last_due(cadence: Cadence, now: datetime) -> datetime:
    """The latest scheduled tick of ``cadence`` at or before ``now`` (aware datetime), in its time zone."""
    local = now.astimezone(ZoneInfo(cadence.timezone))
    if cadence.every_minutes is not None:
        minutes = (local.hour * 60 + local.minute) // cadence.every_minutes * cadence.every_minutes
        return local.replace(hour=minutes // 60, minute=minutes % 60, second=0, microsecond=0)
    assert cadence.daily_at is not None
    due = local.replace(hour=cadence.daily_at.hour, minute=cadence.daily_at.minute, second=0, microsecond=0)
    return due if due <= local else due - timedelta(days=1)
