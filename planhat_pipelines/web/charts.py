"""Inline SVG charts for the server-rendered pages: axes, units and dates readable without hovering or JavaScript.

Class names and ``data-*`` attributes are a contract of the stylesheet and the pages' tests. Colours come from the
``series-<i>`` classes; the presentation attributes only keep an SVG readable without the app's CSS.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from markupsafe import Markup, escape

#: The stylesheet's series-0..5 colours, repeated as attributes for an SVG shown without it.
COLOURS = ("#2f6fde", "#f08c00", "#2f9e44", "#9c36b5", "#e03131", "#1098ad")
#: Most circles per series: a longer series gets one on its last point and every Nth before it, keeping pages small.
MAX_CIRCLES = 120
_EPOCH = datetime(1970, 1, 1)
_HOUR, _DAY = 3600, 86400
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: Date tick steps, tried in order: 5 minutes to 12 hours, 1, 2 and 4 days, 1 and 2 weeks (in seconds), then months.
_STEPS = tuple(60 * m for m in (5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 5760, 10080, 20160))
#: Width of one character at 11px: margins and label fitting are estimates, since the server cannot measure text.
_CHAR = 6.5
_Point = tuple[float, float, date]  # seconds since 1970 (wall clock), value, the date as given
_Scale = Callable[[float], float]
_EMPTY = Markup('<p class="chart-empty">No data for {} in this range</p>')


@dataclass(frozen=True)
class Series:
    """A line's legend ``name`` and ``(date or datetime, value)`` points sorted by date; a None value is a gap."""

    name: str
    points: Sequence[tuple[date | datetime, float | None]]


@dataclass(frozen=True)
class Mark:
    """A dashed vertical line with a label, e.g. "expected" or "manual check-in"."""

    at: date | datetime
    label: str


def format_number(value: float, unit: str = "") -> str:
    """The number, short enough for a tick label, with its unit.

    Args:
        value: The number: 1234 -> "1.2k", 3_400_000 -> "3.4M", 0.5 -> "0.5".
        unit: "$" goes first ("$1.2k", "-$5"), "%" right after ("12%"), any other unit after a space ("12 users").

    Raises:
        ValueError: The value is NaN or infinite.
    """
    if not math.isfinite(value):
        raise ValueError(f"format_number: {value!r} is not a finite number. Fix: leave it out (a gap) first")
    a = abs(float(value))
    text = f"{a:.0f}" if a >= 100 else f"{a:.1f}" if a >= 10 else f"{a:.2f}" if a >= 1 else f"{a:.2g}"
    text = text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text
    # Thresholds use the rounded value, so 999.6 reads "1k" and 999,960 reads "1M", never "1000" or "1000k".
    for divisor, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "B"), (1e12, "T")):
        if a >= divisor * 0.9995 and (round(a / divisor, 1) < 1000 or suffix == "T"):
            text = f"{round(a / divisor, 1):.1f}".removesuffix(".0") + suffix
            break
    sign = "-" if value < 0 and text != "0" else ""
    return {"$": f"{sign}${text}", "%": f"{sign}{text}%", "": sign + text}.get(unit, f"{sign}{text} {unit}")


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "",
    marks: Sequence[Mark] = (),
    width: int = 640,
    height: int = 220,
    step: bool = False,
) -> Markup:
    """An ``<svg>`` line chart over dates (a ``<p class="chart-empty">`` when no series has a value).

    Args:
        series: The lines; colours follow their order (series-0..5, then again).
        title: The chart's accessible name; the empty-chart message names it too.
        unit: The values' unit, for the y ticks (see :func:`format_number`).
        marks: Dashed vertical lines with labels; those outside the data's date range are left out.
        width: The viewBox width (the SVG scales to its container).
        height: The viewBox height.
        step: Draw each value flat until the next point (ARR and MRR histories change in steps).

    Raises:
        ValueError: Points out of date order, a non-finite value or a non-date, or a size too small to draw.
    """
    lines = [_points(title, s) for s in series]
    known = [p for line in lines for p in line if p is not None]
    if not known:
        return _EMPTY.format(title)
    has_time = any(isinstance(at, datetime) for s in series for at, _ in s.points)
    t0, t1 = min(p[0] for p in known), max(p[0] for p in known)
    if t0 == t1:  # one date: centre it in a small window rather than divide by a zero span
        t0, t1 = (t0 - _HOUR, t1 + _HOUR) if has_time else (t0 - _DAY, t1 + _DAY)
    legend, legend_bottom = _legend([s.name for s in series], width) if len(series) > 1 else ("", 0)
    top, right, bottom = legend_bottom + 14, width - 14, height - 24
    left, y, y_axis = _value_axis([p[1] for p in known], unit, top, right, bottom)
    x = _linear(t0, t1, left, right)
    ticks = _date_ticks(t0, t1, max(2, min(6, int((right - left) // 80))), has_time)
    labels = [(x(t), _date_label(t, t1 - t0, has_time, i == 0)) for i, t in enumerate(ticks)]
    parts = [legend, y_axis, _x_axis(labels, left, right, bottom)]
    shown = [(x(t), m.label) for m in marks if t0 <= (t := _seconds(m.at, title, f"mark '{m.label}'")) <= t1]
    for i, (px, label) in enumerate(shown):
        anchor, dx = ("end", -4) if px > (left + right) / 2 else ("start", 4)
        parts.append(
            f'<g class="mark"><line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{bottom}" stroke="#616e7c" '
            f'stroke-dasharray="4 3"/><text x="{px + dx:.1f}" y="{top + 10 + 12 * (i % 2)}" '
            f'text-anchor="{anchor}" fill="#616e7c">{escape(label)}</text></g>'
        )
    return _svg(title, width, height, [*parts, *(_line(k, line, x, y, step) for k, line in enumerate(lines))])


def bar_chart(
    bars: Sequence[tuple[str, float]], *, title: str, unit: str = "", width: int = 640, height: int = 220
) -> Markup:
    """An ``<svg>`` bar chart, labels under the bars and values above (``<p class="chart-empty">`` for no bars).

    Args:
        bars: ``(label, value)`` in drawing order; long labels are cut under the bar (``data-label`` keeps them).
        title: The chart's accessible name; the empty-chart message names it too.
        unit: The values' unit, for the ticks and the values (see :func:`format_number`).
        width: The viewBox width (the SVG scales to its container).
        height: The viewBox height.

    Raises:
        ValueError: A non-finite value, or a size too small to draw.
    """
    if bad := [label for label, value in bars if not math.isfinite(value)]:
        raise ValueError(f"bar_chart '{title}': bars {bad} have no finite value. Fix: pass finite numbers")
    if not bars:
        return _EMPTY.format(title)
    right, bottom = width - 14, height - 24
    left, y, y_axis = _value_axis([float(v) for _, v in bars], unit, 24, right, bottom)
    slot = (right - left) / len(bars)
    fits = max(int(slot / _CHAR), 2)  # characters under a bar; longer labels end in an ellipsis
    centres = [(left + slot * (i + 0.5), s if len(s) <= fits else s[: fits - 1] + "…") for i, (s, _) in enumerate(bars)]
    parts = [y_axis, _x_axis(centres, left, right, bottom)]
    for (cx, _), (label, value) in zip(centres, bars, strict=True):
        high, low = sorted((y(0), y(float(value))))
        parts.append(
            f'<rect class="bar" data-label="{escape(label)}" data-value="{_num(float(value))}" '
            f'x="{cx - slot * 0.35:.1f}" y="{high:.1f}" width="{slot * 0.7:.1f}" height="{low - high:.1f}" '
            f'fill="{COLOURS[0]}"/><text class="bar-value" x="{cx:.1f}" y="{high - 4:.1f}" '
            f'text-anchor="middle">{escape(format_number(value, unit))}</text>'
        )
    return _svg(title, width, height, parts)


def _num(value: float) -> str:  # data-* values: exact (repr), without a needless ".0"
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _seconds(at: object, title: str = "", where: str = "") -> float:
    if not isinstance(at, date):
        raise ValueError(f"line_chart '{title}': {where} has {at!r} as its date. Fix: pass a date or datetime")
    if isinstance(at, datetime):  # an aware one plots at its own wall-clock time: pages convert zones first
        return (at.replace(tzinfo=None) - _EPOCH).total_seconds()
    return float((at - _EPOCH.date()).days * _DAY)


def _points(title: str, series: Series) -> list[_Point | None]:
    """The series' points as seconds and floats (None for a gap), checked for order, dates and finite values."""
    found: list[_Point | None] = []
    last = -math.inf
    for i, (at, value) in enumerate(series.points):
        t = _seconds(at, title, where := f"series '{series.name}' point {i}")
        if t < last:
            raise ValueError(f"line_chart '{title}': {where} ({at}) is out of date order. Fix: sort the points by date")
        last = t
        if value is not None and not math.isfinite(value):
            raise ValueError(f"line_chart '{title}': {where} ({at}) has the value {value!r}. Fix: pass None for a gap")
        found.append(None if value is None else (t, float(value), at))
    return found


def _value_axis(values: list[float], unit: str, top: float, right: float, bottom: float) -> tuple[float, _Scale, str]:
    """The y axis: 3-5 round ticks from 0 (lower for negative values), its left edge, scale and markup."""
    low, high = min(*values, 0.0), max(*values, 0.0)
    high = high if high > low else 1.0  # all zero: still a unit of height to draw in
    exponent = math.floor(math.log10(high - low)) - 1
    # A step of 5 * 10**(exponent + 1) already spans the range in 4, so the search always ends.
    for e, mantissa in itertools.product(range(exponent, exponent + 3), (1, 2, 5)):
        size = mantissa * 10.0**e
        first, last = math.floor(low / size), math.ceil(high / size)
        if last - first <= 4:
            break
    ticks = [round(k * size, max(0, -e)) for k in range(first, last + 1)]  # 0.3, not 0.30000000000000004
    labels = [format_number(t, unit) for t in ticks]
    left = 10 + _CHAR * max(map(len, labels))
    y = _linear(ticks[0], ticks[-1], bottom, top)
    rows = "".join(
        f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e4e7eb"/>'
        f'<text x="{left - 6:.1f}" y="{y(t) + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        for t, label in zip(ticks, labels, strict=True)
    )
    return left, y, f'<g class="axis y-axis">{rows}</g>'


def _linear(d0: float, d1: float, r0: float, r1: float) -> _Scale:
    return lambda v: r0 + (v - d0) / (d1 - d0) * (r1 - r0)


def _date_ticks(t0: float, t1: float, most: int, has_time: bool) -> list[float]:
    """Up to ``most`` round dates in [t0, t1] (hours, days, Mondays, month or year starts); else the two ends."""
    for step in _STEPS:
        if (step < _DAY and not has_time) or (t1 - t0) / step >= most + 1:
            continue
        offset = 4 * _DAY if step % (7 * _DAY) == 0 else 0  # 1970-01-01 was a Thursday; weeks start on Monday
        ticks = [float(t) for t in range(math.ceil((t0 - offset) / step) * step + offset, math.floor(t1) + 1, step)]
        if len(ticks) <= most:
            return ticks if len(ticks) >= 2 else [t0, t1]
    start = _EPOCH + timedelta(seconds=t0)
    first = start.year * 12 + start.month - 1 + (start != datetime(start.year, start.month, 1))
    for months in (1, 2, 3, 6, 12, 24, 60, 120, 240, 600, 1200):
        starts = (datetime(k // 12, k % 12 + 1, 1) for k in itertools.count(-(-first // months) * months, months))
        ticks = list(itertools.islice(itertools.takewhile(lambda t: t <= t1, map(_seconds, starts)), most + 1))
        if len(ticks) <= most:
            return ticks if len(ticks) >= 2 else [t0, t1]
    return [t0, t1]


def _date_label(t: float, span: float, has_time: bool, first: bool) -> str:
    """ "Mar 5"; "Mar 2026" over a year; times under two days (with the date on the first tick and at midnight)."""
    at = _EPOCH + timedelta(seconds=round(t))
    day = f"{_MONTHS[at.month - 1]} {at.day}"
    if has_time and span < 2 * _DAY:
        clock = f"{at:%H:%M}"
        return f"{day} {clock}" if first or clock == "00:00" else clock
    return f"{_MONTHS[at.month - 1]} {at.year}" if span > 365 * _DAY else day


def _svg(title: str, width: int, height: int, parts: list[str]) -> Markup:
    if width < 200 or height < 120:
        raise ValueError(f"chart '{title}': {width}x{height} is too small. Fix: pass width >= 200, height >= 120")
    name = escape(title)
    return Markup(
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" aria-label="{name}">'
        f'<title>{name}</title><g font-family="sans-serif" font-size="11">{"".join(parts)}</g></svg>'
    )


def _legend(names: list[str], width: int) -> tuple[str, int]:
    """The legend's items in rows at the top, and the last row's baseline."""
    items, x, baseline = [], 0.0, 11
    for k, name in enumerate(names):
        if x and x + 34 + _CHAR * len(name) > width:
            x, baseline = 0.0, baseline + 15
        items.append(
            f'<line class="swatch series-{k % 6}" x1="{x:.1f}" x2="{x + 16:.1f}" y1="{baseline - 4}" '
            f'y2="{baseline - 4}" stroke="{COLOURS[k % 6]}" stroke-width="3"/>'
            f'<text x="{x + 20:.1f}" y="{baseline}">{escape(name)}</text>'
        )
        x += 34 + _CHAR * len(name)
    return f'<g class="legend">{"".join(items)}</g>', baseline


def _x_axis(ticks: list[tuple[float, str]], left: float, right: float, bottom: float) -> str:
    parts = [f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{bottom}" y2="{bottom}" stroke="#bcccdc"/>']
    for px, label in ticks:
        half = len(label) * _CHAR / 2  # labels at the edges align inwards instead of running off the chart
        anchor = "start" if px - half < left - 8 else "end" if px + half > right + 12 else "middle"
        parts.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="#bcccdc"/>'
            f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="{anchor}">{escape(label)}</text>'
        )
    return f'<g class="axis x-axis">{"".join(parts)}</g>'


def _line(k: int, line: list[_Point | None], x: _Scale, y: _Scale, step: bool) -> str:
    """One series: its path (a gap starts a new ``M``) and circles on at most MAX_CIRCLES of its points."""
    moves = []
    for _, run in itertools.groupby(line, key=lambda p: p is None):
        xy = [(x(p[0]), y(p[1])) for p in run if p is not None]
        if step:  # each value holds until the next point's date
            xy = xy[:1] + [c for (_, y0), (x1, y1) in itertools.pairwise(xy) for c in ((x1, y0), (x1, y1))]
        if xy:
            moves.append("M " + " L ".join(f"{a:.1f},{b:.1f}" for a, b in xy))
    shown = [p for p in line if p is not None]
    every = max(1, math.ceil(len(shown) / MAX_CIRCLES))
    circles = "".join(
        f'<circle class="point" data-date="{at:%Y-%m-%d}" data-value="{_num(v)}" cx="{x(t):.1f}" cy="{y(v):.1f}" '
        f'r="{2.5 if len(shown) <= 60 else 1.5}"/>'  # dense series: small dots, so the line stays visible
        for t, v, at in shown[::-1][::every][::-1]
    )
    # The group's fill colours the circles, so the stylesheet's .series-<i> rule reaches them too.
    return (
        f'<g class="series-{k % 6}" fill="{COLOURS[k % 6]}" stroke="{COLOURS[k % 6]}"><path class="series '
        f'series-{k % 6}" d="{" ".join(moves)}" fill="none" stroke-width="2"/>{circles}</g>'
    )
