"""How pages write numbers, money and dates (Jinja filters; the JSON twins keep the raw values)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal


def money(value: Decimal | float | int | None) -> str:
    """Whole currency units with thousands separators ('—' for none): ARR and MRR read at a glance."""
    if value is None:
        return "—"
    return f"{float(value):,.0f}"


def number(value: Decimal | float | int | None, digits: int = 0) -> str:
    """A count or a measure with thousands separators ('—' for none)."""
    if value is None:
        return "—"
    return f"{float(value):,.{digits}f}"


def day(value: date | datetime | None) -> str:
    """A date as 2026-03-05 (a timestamp as 2026-03-05 14:02), '—' for none."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def percent(value: float | None) -> str:
    """A fraction as a whole percentage ('—' for none)."""
    if value is None:
        return "—"
    return f"{value * 100:.0f} %"


FILTERS = {"money": money, "number": number, "day": day, "percent": percent}
