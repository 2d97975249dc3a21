"""The SVG charts: well-formed markup with the classes and data the pages rely on, readable axes, escaped text."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta

import pytest
from markupsafe import Markup

from planhat_pipelines.web.charts import MAX_CIRCLES, Mark, Series, bar_chart, format_number, line_chart

START = date(2026, 3, 2)


def days(values: list[float | None], start: date = START) -> list[tuple[date | datetime, float | None]]:
    """One point per day from ``start``."""
    return [(start + timedelta(days=i), v) for i, v in enumerate(values)]


def parse(chart: Markup) -> ET.Element:
    """The chart as XML: parsing fails unless the SVG is well-formed."""
    return ET.fromstring(str(chart))


def group(root: ET.Element, name: str) -> ET.Element:
    found = root.find(f".//g[@class='{name}']")
    assert found is not None, f"no <g class='{name}'>"
    return found


def labels(root: ET.Element, name: str) -> list[str]:
    """The texts of the group with class ``name`` (an axis, the legend)."""
    return [text.text or "" for text in group(root, name).iter("text")]


def moves(path: ET.Element) -> list[list[tuple[float, float]]]:
    """A path's ``d`` as its runs (one per ``M``) of (x, y) pairs."""
    runs = [run.strip() for run in path.get("d", "").split("M") if run.strip()]
    return [[(float(x), float(y)) for x, y in (pair.split(",") for pair in run.split(" L "))] for run in runs]


def test_the_svg_element_carries_the_contract_attributes_and_a_title() -> None:
    root = parse(line_chart([Series("ARR", days([1, 2, 3]))], title="Total ARR", width=500, height=200))
    assert root.tag == "svg"
    assert root.attrib["class"] == "chart"
    assert root.attrib["role"] == "img"
    assert root.attrib["viewBox"] == "0 0 500 200"
    assert root.attrib["width"] == "100%"
    assert root.attrib["aria-label"] == "Total ARR"
    assert root[0].tag == "title" and root[0].text == "Total ARR"
    assert "style=" not in str(line_chart([Series("ARR", days([1, 2, 3]))], title="Total ARR"))


def test_each_series_is_one_path_with_a_circle_per_value() -> None:
    root = parse(line_chart([Series("ARR", days([10, 20, 30])), Series("MRR", days([1, 2]))], title="Revenue"))
    paths = root.findall(".//path")
    assert [p.get("class") for p in paths] == ["series series-0", "series series-1"]
    circles = root.findall(".//circle")
    assert all(c.get("class") == "point" for c in circles)
    assert [(c.get("data-date"), c.get("data-value")) for c in circles] == [
        ("2026-03-02", "10"),
        ("2026-03-03", "20"),
        ("2026-03-04", "30"),
        ("2026-03-02", "1"),
        ("2026-03-03", "2"),
    ]


def test_series_0_to_5_have_default_strokes_and_later_series_reuse_the_classes() -> None:
    root = parse(line_chart([Series(f"s{i}", days([i + 1])) for i in range(8)], title="Many"))
    lines = [g for g in root.iter("g") if (g.get("class") or "").startswith("series-")]
    assert [g.get("class") for g in lines] == [f"series-{i % 6}" for i in range(8)]
    strokes = [g.get("stroke") for g in lines]
    assert len(set(strokes[:6])) == 6 and strokes[6:] == strokes[:2]


def test_higher_values_draw_higher_and_later_dates_further_right() -> None:
    root = parse(line_chart([Series("ARR", days([5, 50, 20]))], title="ARR"))
    [[first, second, third]] = moves(root.findall(".//path")[0])
    assert first[0] < second[0] < third[0]
    assert second[1] < third[1] < first[1]  # SVG y grows downwards


def test_a_gap_splits_the_line_into_a_new_move_and_has_no_point() -> None:
    root = parse(line_chart([Series("ARR", days([1, 2, None, 4, 5]))], title="ARR"))
    runs = moves(root.findall(".//path")[0])
    assert [len(run) for run in runs] == [2, 2]
    assert [c.get("data-date") for c in root.findall(".//circle")] == [
        "2026-03-02",
        "2026-03-03",
        "2026-03-05",
        "2026-03-06",
    ]


def test_a_step_line_holds_each_value_until_the_next_date() -> None:
    root = parse(line_chart([Series("ARR", days([10, 30, 20]))], title="ARR", step=True))
    [run] = moves(root.findall(".//path")[0])
    straight = moves(parse(line_chart([Series("ARR", days([10, 30, 20]))], title="ARR")).findall(".//path")[0])[0]
    (x0, y0), (x1, y1), (x2, y2) = straight
    assert run == [(x0, y0), (x1, y0), (x1, y1), (x2, y1), (x2, y2)]


@pytest.mark.parametrize(
    ("points", "pattern"),
    [
        pytest.param(days([1.0] * 31), r"[A-Z][a-z]{2} \d{1,2}", id="a month: Mar 5"),
        pytest.param(days([1.0] * 200), r"[A-Z][a-z]{2} \d{1,2}", id="half a year: Mar 5"),
        pytest.param(days([1.0] * 1100), r"[A-Z][a-z]{2} \d{4}", id="three years: Mar 2026"),
        pytest.param(
            [(datetime(2026, 3, 5, 8) + timedelta(minutes=20 * i), 1.0) for i in range(30)],
            r"([A-Z][a-z]{2} \d{1,2} )?\d{2}:\d{2}",
            id="ten hours: times",
        ),
        pytest.param(
            [(datetime(2026, 3, 5, 20) + timedelta(hours=i), 1.0) for i in range(10)],
            r"([A-Z][a-z]{2} \d{1,2} )?\d{2}:\d{2}",
            id="across midnight: times",
        ),
    ],
)
@pytest.mark.parametrize("width", [640, 320])
def test_the_x_axis_has_2_to_6_date_labels_in_the_span_s_format(
    points: list[tuple[date | datetime, float | None]], pattern: str, width: int
) -> None:
    found = labels(parse(line_chart([Series("s", points)], title="t", width=width)), "axis x-axis")
    assert 2 <= len(found) <= 6, found
    assert all(re.fullmatch(pattern, label) for label in found), found
    assert len(found) == len(set(found)), found


def test_times_show_the_date_on_the_first_tick_and_at_midnight() -> None:
    points: list[tuple[date | datetime, float | None]] = [
        (datetime(2026, 3, 5, 18) + timedelta(hours=i), 1.0) for i in range(13)
    ]
    found = labels(parse(line_chart([Series("s", points)], title="t")), "axis x-axis")
    assert found[0].startswith("Mar 5 ")
    assert "Mar 6 00:00" in found


def test_dates_a_day_apart_read_as_dates_not_times() -> None:
    found = labels(parse(line_chart([Series("s", days([1, 2]))], title="t")), "axis x-axis")
    assert found == ["Mar 2", "Mar 3"]


def test_the_y_axis_has_round_ticks_from_zero_with_the_unit() -> None:
    root = parse(line_chart([Series("ARR", days([400, 1234]))], title="ARR", unit="$"))
    assert labels(root, "axis y-axis") == ["$0", "$500", "$1k", "$1.5k"]


@pytest.mark.parametrize("values", [[0.3, 0.9], [7, 7], [1, 99], [12, 3_400_000], [0, 0.001], [1e-15, 3e-15]])
def test_the_y_axis_has_3_to_5_ticks_spanning_the_values(values: list[float]) -> None:
    found = labels(parse(line_chart([Series("s", days(list(values)))], title="t")), "axis y-axis")
    assert 3 <= len(found) <= 5, found
    assert found[0] == "0"
    assert len(set(found)) == len(found), found


def test_negative_values_take_the_axis_below_zero() -> None:
    root = parse(line_chart([Series("net", days([-30, 10, 50]))], title="Net change", unit="users"))
    found = labels(root, "axis y-axis")
    assert found == ["-50 users", "0 users", "50 users"]
    circles = root.findall(".//circle")
    assert float(circles[0].get("cy", "nan")) > float(circles[1].get("cy", "nan"))


def test_the_legend_names_each_series_when_there_are_two_or_more() -> None:
    two = parse(line_chart([Series("ARR", days([1, 2])), Series("MRR", days([3, 4]))], title="t"))
    assert labels(two, "legend") == ["ARR", "MRR"]
    one = parse(line_chart([Series("ARR", days([1, 2]))], title="t"))
    assert one.find(".//g[@class='legend']") is None


def test_marks_inside_the_range_are_dashed_lines_with_labels_and_others_are_left_out() -> None:
    marks = [
        Mark(date(2026, 3, 4), "expected"),
        Mark(datetime(2026, 3, 5, 12), "manual check-in"),
        Mark(date(2026, 6, 1), "after the range"),
    ]
    root = parse(line_chart([Series("s", days([1, 2, 3, 4, 5]))], title="t", marks=marks))
    drawn = root.findall(".//g[@class='mark']")
    assert [m.find("text").text for m in drawn] == ["expected", "manual check-in"]  # type: ignore[union-attr]
    lines = [m.find("line") for m in drawn]
    assert all(line is not None and line.get("stroke-dasharray") for line in lines)
    xs = [float(line.get("x1", "nan")) for line in lines if line is not None]
    circles = {c.get("data-date"): float(c.get("cx", "nan")) for c in root.findall(".//circle")}
    assert xs[0] == circles["2026-03-04"]
    assert circles["2026-03-05"] < xs[1] < circles["2026-03-06"]


def test_every_text_is_escaped() -> None:
    chart = str(
        line_chart(
            [Series("<script>", days([1, 2])), Series("R&D", days([2, 3]))],
            title='ARR "all" <b>',
            marks=[Mark(START, "<i>check</i>")],
        )
    )
    assert "<script>" not in chart and "&lt;script&gt;" in chart
    assert "<b>" not in chart and "<i>" not in chart
    root = ET.fromstring(chart)
    assert labels(root, "legend") == ["<script>", "R&D"]
    assert root.attrib["aria-label"] == 'ARR "all" <b>'
    bars = str(bar_chart([("<script>", 1)], title="<x>"))
    assert "<script>" not in bars and ET.fromstring(bars).find(".//rect").get("data-label") == "<script>"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "series",
    [pytest.param([], id="no series"), pytest.param([Series("s", days([None, None]))], id="every value None")],
)
def test_no_data_gives_the_empty_message(series: list[Series]) -> None:
    assert line_chart(series, title="ARR <all>") == Markup(
        '<p class="chart-empty">No data for ARR &lt;all&gt; in this range</p>'
    )
    assert isinstance(line_chart(series, title="t"), Markup)


@pytest.mark.parametrize(
    "point",
    [pytest.param((START, 42.0), id="a date"), pytest.param((datetime(2026, 3, 5, 10, 30), 42.0), id="a datetime")],
)
def test_one_point_still_draws(point: tuple[date | datetime, float | None]) -> None:
    chart = str(line_chart([Series("s", [point])], title="t"))
    assert "nan" not in chart and "inf" not in chart
    root = ET.fromstring(chart)
    [circle] = root.findall(".//circle")
    assert circle.get("data-value") == "42"
    assert len(moves(root.findall(".//path")[0])) == 1
    assert len(labels(root, "axis x-axis")) >= 2
    assert labels(root, "axis y-axis") == ["0", "20", "40", "60"]


@pytest.mark.parametrize("value", [7.0, 0.0, -3.0])
def test_equal_values_draw_a_flat_line(value: float) -> None:
    chart = str(line_chart([Series("s", days([value] * 4))], title="t"))
    assert "nan" not in chart and "inf" not in chart
    root = ET.fromstring(chart)
    [run] = moves(root.findall(".//path")[0])
    assert len({y for _, y in run}) == 1
    assert 3 <= len(labels(root, "axis y-axis")) <= 5


def test_a_long_series_draws_at_most_120_circles_ending_at_the_last_point() -> None:
    values: list[float | None] = [float(i) for i in range(500)]
    root = parse(line_chart([Series("s", days(values, date(2024, 1, 1)))], title="t"))
    circles = root.findall(".//circle")
    assert len(circles) <= MAX_CIRCLES == 120
    assert circles[-1].get("data-date") == (date(2024, 1, 1) + timedelta(days=499)).isoformat()
    assert circles[-1].get("data-value") == "499"
    assert all(c.get("data-date") and c.get("data-value") for c in circles)
    steps = {int(b.get("data-value", "0")) - int(a.get("data-value", "0")) for a, b in itertools.pairwise(circles)}
    assert steps == {5} and len(circles) == 100  # every 5th of the 500 points
    assert {c.get("r") for c in circles} == {"1.5"}  # small dots on a dense line
    assert len(moves(root.findall(".//path")[0])[0]) == 500  # the line keeps every point


def test_a_series_of_exactly_120_points_gets_every_circle() -> None:
    root = parse(line_chart([Series("s", days([1.0] * 120))], title="t"))
    assert len(root.findall(".//circle")) == 120
    short = parse(line_chart([Series("s", days([1.0] * 60))], title="t"))
    assert {c.get("r") for c in short.findall(".//circle")} == {"2.5"}


def test_dates_and_datetimes_mix_in_one_chart() -> None:
    points: list[tuple[date | datetime, float | None]] = [(START, 1.0), (datetime(2026, 3, 3, 12), 2.0)]
    root = parse(line_chart([Series("s", points), Series("t", days([3, 4]))], title="t"))
    assert [c.get("data-date") for c in root.findall(".//circle")] == [
        "2026-03-02",
        "2026-03-03",
        "2026-03-02",
        "2026-03-03",
    ]


def test_bars_have_their_label_under_and_their_value_above() -> None:
    root = parse(bar_chart([("customer", 1234), ("prospect", 56)], title="Companies by status", unit="$"))
    rects = root.findall(".//rect")
    assert [(r.get("class"), r.get("data-label"), r.get("data-value")) for r in rects] == [
        ("bar", "customer", "1234"),
        ("bar", "prospect", "56"),
    ]
    assert float(rects[0].get("height", "0")) > float(rects[1].get("height", "0")) > 0
    values = {t.text: float(t.get("y", "nan")) for t in root.iter("text") if t.get("class") == "bar-value"}
    assert values["$1.2k"] < float(rects[0].get("y", "nan"))
    assert values["$56"] < float(rects[1].get("y", "nan"))
    under = {t.text: float(t.get("y", "nan")) for t in group(root, "axis x-axis").iter("text")}
    assert under["customer"] > float(rects[0].get("y", "0")) + float(rects[0].get("height", "0"))
    assert labels(root, "axis y-axis")[0] == "$0"


def test_a_negative_bar_hangs_below_zero() -> None:
    root = parse(bar_chart([("won", 20), ("lost", -10)], title="Net"))
    won, lost = root.findall(".//rect")
    zero = float(won.get("y", "nan")) + float(won.get("height", "nan"))
    assert float(lost.get("y", "nan")) == pytest.approx(zero, abs=0.1)
    assert labels(root, "axis y-axis")[0].startswith("-")


def test_a_long_bar_label_is_cut_under_the_bar_but_kept_in_data_label() -> None:
    long = "a status with a very long name indeed"
    root = parse(bar_chart([(long, 1), *((f"s{i}", i) for i in range(9))], title="t"))
    under = labels(root, "axis x-axis")
    assert under[0].endswith("…") and long.startswith(under[0][:-1])
    assert root.findall(".//rect")[0].get("data-label") == long


def test_bars_with_equal_or_zero_values_still_draw() -> None:
    for bars in ([("a", 0.0), ("b", 0.0)], [("a", 3.0), ("b", 3.0)], [("only", 5.0)]):
        chart = str(bar_chart(bars, title="t"))
        assert "nan" not in chart
        assert len(ET.fromstring(chart).findall(".//rect")) == len(bars)


def test_no_bars_give_the_empty_message() -> None:
    assert bar_chart([], title="Health & status") == Markup(
        '<p class="chart-empty">No data for Health &amp; status in this range</p>'
    )


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (1234, "", "1.2k"),
        (3_400_000, "", "3.4M"),
        (0.5, "", "0.5"),
        (0, "", "0"),
        (1000, "", "1k"),
        (999.6, "", "1k"),
        (999_960, "", "1M"),
        (2_500_000_000, "", "2.5B"),
        (12.345, "", "12.3"),
        (123.4, "", "123"),
        (1.25, "", "1.25"),
        (0.001234, "", "0.0012"),
        (-1234, "", "-1.2k"),
        (-0.0, "", "0"),
        (1234, "$", "$1.2k"),
        (-5, "$", "-$5"),
        (12, "%", "12%"),
        (12, "users", "12 users"),
        (1_500_000, "companies", "1.5M companies"),
    ],
)
def test_format_number(value: float, unit: str, text: str) -> None:
    assert format_number(value, unit) == text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: line_chart([Series("ARR", [(date(2026, 3, 2), 1.0), (date(2026, 3, 1), 2.0)])], title="t"),
            "series 'ARR' point 1 (2026-03-01) is out of date order. Fix: sort the points by date",
            id="unsorted",
        ),
        pytest.param(
            lambda: line_chart([Series("ARR", days([1.0, math.nan]))], title="t"),
            "series 'ARR' point 1 (2026-03-03) has the value nan. Fix: pass None for a gap",
            id="nan",
        ),
        pytest.param(
            lambda: line_chart([Series("ARR", [("2026-03-01", 1.0)])], title="t"),  # type: ignore[list-item]
            "series 'ARR' point 0 has '2026-03-01' as its date. Fix: pass a date or datetime",
            id="a string date",
        ),
        pytest.param(
            lambda: line_chart([Series("ARR", days([1.0]))], title="t", marks=[Mark(None, "x")]),  # type: ignore[arg-type]
            "mark 'x' has None as its date",
            id="a mark without a date",
        ),
        pytest.param(
            lambda: line_chart([Series("ARR", days([1.0]))], title="t", width=100),
            "100x220 is too small. Fix: pass width >= 200, height >= 120",
            id="too narrow",
        ),
        pytest.param(
            lambda: bar_chart([("a", 1.0), ("b", math.inf)], title="t"),
            "bar_chart 't': bars ['b'] have no finite value",
            id="an infinite bar",
        ),
        pytest.param(lambda: format_number(math.nan), "nan is not a finite number", id="format nan"),
    ],
)
def test_bad_input_is_refused_naming_where_and_the_fix(make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match=re.escape(message)):
        make()
