"""When a usage section's cadence is due: the last tick at or before now, in the section's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from planhat_pipelines.defs.cadence import last_due
from planhat_pipelines_tests.sync.test_usage import _section


@pytest.mark.parametrize(
    ("cadence", "now", "due"),
    [
        ({"every_minutes": 5}, "2026-11-23T10:07:30+00:00", "2026-11-23T10:05:00+00:00"),
        ({"every_minutes": 10}, "2026-11-23T10:07:30+00:00", "2026-11-23T10:00:00+00:00"),
        ({"every_minutes": 30}, "2026-11-23T10:47:00+00:00", "2026-11-23T10:30:00+00:00"),
        ({"every_minutes": 60}, "2026-11-23T10:47:00+00:00", "2026-11-23T10:00:00+00:00"),
        (
            {"daily_at": "06:30", "timezone": "Europe/Stockholm"},
            "2026-11-23T05:31:00+00:00",
            "2026-11-23T05:30:00+00:00",
        ),
        (
            {"daily_at": "06:30", "timezone": "Europe/Stockholm"},
            "2026-11-23T05:29:00+00:00",
            "2026-11-22T05:30:00+00:00",
        ),
    ],
)
def test_each_cadence_gives_the_right_tick(tmp_path: Path, cadence: dict[str, Any], now: str, due: str) -> None:
    section = _section(tmp_path, cadence=cadence)
    got = last_due(section.cadence, datetime.fromisoformat(now))
    assert got.astimezone(UTC) == datetime.fromisoformat(due)
