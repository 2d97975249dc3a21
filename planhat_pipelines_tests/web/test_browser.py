"""The web app in a real browser: headless chromium against the app served by uvicorn over the demo store.

What only a browser shows: htmx swaps a fragment without reloading the page, the SVG charts are in the page with
their points, the stylesheet colours the OKR bars by status, no JavaScript error reaches the console and nothing
is loaded from another host. Each page's screenshot lands in ``.screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pyarrow as pa
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from planhat_pipelines.config import Config
from planhat_pipelines.store import ModelStore
from planhat_pipelines.web.app import create_app
from planhat_pipelines_tests.builders import crm_section, duckdb_connection, write_config
from planhat_pipelines_tests.web.browser import (
    assert_not_reloaded,
    check_page,
    chromium,
    get_json,
    live_server,
    mark_window,
    open_page,
    path_points,
    screenshot,
    wait_for,
)

#: The colour class of an OKR progress bar for each ``data-status`` (``okrs.status.Status`` values).
STATUS_CLASS = {"on_track": "on-track", "behind": "behind", "at_risk": "at-risk"}
#: The small store's rejected rows: (key, reason). Three keys contain "C-", three reasons "is not a".
REJECTS = [
    ("C-100", "field arr: 'abc' is not a number"),
    ("C-200", "field email: 'nope' is not an email address"),
    ("D-300", "duplicate key: column 'id' holds 'D-300' in 2 rows"),
    ("C-400", "missing key (id)"),
    ("E-500", "field renewalDate: '31/02' is not a date"),
]


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    """One headless chromium for the module's pages."""
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def site(demo_config: Config) -> Iterator[str]:
    """The base URL of the app over the demo store, served by uvicorn."""
    with live_server(create_app(demo_config)) as url:
        yield url


@pytest.fixture(scope="module")
def rejects_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app over a small store of its own holding REJECTS (the demo records none; copying it is costly)."""
    folder = tmp_path_factory.mktemp("browser_rejects")
    config = write_config(
        folder,
        connections={"wh": duckdb_connection(folder / "wh.duckdb", create=True)},
        crm=[crm_section("companies")],
    )
    store = ModelStore(config.store)
    try:
        run = store.start_run("companies", "crm")
        keys, reasons = zip(*REJECTS, strict=True)
        store.record_rejects("companies", run, pa.table({"key": keys, "reason": reasons}), resolve_others=True)
        store.finish_run(run, "success", rows_read=20, inserted=15, rejected=len(REJECTS))
    finally:
        store.close()
    with live_server(create_app(config)) as url:
        yield url


def _busiest_company(site: str) -> dict[str, str]:
    """The company with the latest activity (its profile has usage to chart)."""
    rows = get_json(f"{site}/api/companies?sort=lastActivity&desc=1")["table"]["rows"]
    assert rows and rows[0]["last_activity"], "the demo store holds no company with usage"
    return dict(rows[0])


def _texts(driver: WebDriver, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def _drawn(chart: WebElement, where: str) -> tuple[list[str], list[tuple[str, float]]]:
    """A line chart's path ``d`` values and its circles' (date, value), after checking it has a size on screen."""
    svg = chart.find_element(By.CSS_SELECTOR, "svg.chart")
    assert svg.size["width"] > 100 and svg.size["height"] > 50, f"{where}: the chart has no size on screen"
    paths = [p.get_attribute("d") or "" for p in svg.find_elements(By.CSS_SELECTOR, "path.series")]
    circles = [
        (c.get_attribute("data-date") or "", float(c.get_attribute("data-value") or "nan"))
        for c in svg.find_elements(By.CSS_SELECTOR, "circle.point")
    ]
    assert paths and circles, f"{where}: no path.series or circle.point drawn"
    return paths, circles


def _points(*series: list[list[Any]]) -> list[tuple[str, float]]:
    """The (date, value) points of JSON series, as the chart's circles carry them (gaps have no circle)."""
    return sorted((str(at), float(v)) for s in series for at, v in s if v is not None)


def _rows_containing(driver: WebDriver, text: str) -> list[str]:
    """The companies table's rows once there are some and each contains ``text`` (any case); else none."""
    rows = _texts(driver, "#companies-table tr.company")
    return rows if rows and all(text.casefold() in row.casefold() for row in rows) else []


def test_portfolio_shows_totals_badge_and_charts(driver: WebDriver, site: str) -> None:
    data = get_json(f"{site}/api/portfolio")["portfolio"]
    open_page(driver, f"{site}/")
    check_page(driver, site)
    assert driver.find_element(By.ID, "total-arr").text == f"{data['arr']:,.0f}"
    badge = driver.find_element(By.ID, "sync-badge")
    failing = len(data["sync_health"]["failing"])
    assert badge.is_displayed()
    assert (badge.text, badge.get_attribute("class")) == (
        ("Syncs healthy", "badge ok") if not failing else (f"{failing} failing", "badge failing")
    )
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart")) == 3
    bars = [
        (b.get_attribute("data-label"), float(b.get_attribute("data-value") or "nan"))
        for b in driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    ]
    assert bars == [
        *((s, float(n)) for s, n in data["by_status"].items()),
        *((b, float(n)) for b, n in data["health_bands"]),
    ]
    arr = driver.find_element(By.XPATH, "//h2[text()='Total ARR over time']/..")
    paths, circles = _drawn(arr, "total ARR chart")
    assert sum(path_points(d) for d in paths) >= len(data["arr_history"])
    assert sorted(circles) == _points(data["arr_history"])
    screenshot(driver, "portfolio")
    badge.click()  # the badge links the syncs page
    wait_for(driver, lambda d: d.current_url == f"{site}/syncs", "the sync badge to open /syncs")
    open_page(driver, driver.current_url)
    check_page(driver, site)


def test_companies_search_swaps_table_then_opens_profile(driver: WebDriver, site: str) -> None:
    company = _busiest_company(site)
    name = company["name"]
    part = name[1:]  # part of the name, starting mid-word
    open_page(driver, f"{site}/companies")
    total = driver.find_element(By.ID, "companies-count").text
    marker = mark_window(driver)
    driver.find_element(By.ID, "search").send_keys(part)
    rows = wait_for(driver, lambda d: _rows_containing(d, part), f"#companies to hold only rows matching {part!r}")
    assert_not_reloaded(driver, marker)
    assert driver.find_element(By.ID, "companies-count").text != total
    assert parse_qs(urlsplit(driver.current_url).query).get("q") == [part]  # hx-push-url keeps the search
    assert any(row.startswith(name) for row in rows)
    check_page(driver, site)
    screenshot(driver, "companies")
    driver.find_element(By.LINK_TEXT, name).click()
    wait_for(driver, lambda d: d.current_url == f"{site}/companies/{quote(company['key'])}", f"the profile of {name!r}")
    open_page(driver, driver.current_url)
    assert driver.find_element(By.ID, "company-name").text.startswith(name)
    check_page(driver, site)


def test_profile_charts_draw_and_range_picker_swaps_usage(driver: WebDriver, site: str) -> None:
    company = _busiest_company(site)
    url = f"{site}/companies/{quote(company['key'])}"
    data = get_json(f"{site}/api/companies/{quote(company['key'])}")["profile"]
    open_page(driver, url)
    check_page(driver, site)
    charts = {
        "arr-chart": [data["revenue"]["arr"], data["revenue"]["mrr"]],
        "health-chart": [data["health"]["history"]],
        "usage-chart": [data["usage"]["activities"]],
    }
    for chart_id, series in charts.items():
        paths, circles = _drawn(driver.find_element(By.ID, chart_id), f"#{chart_id}")
        assert len(paths) == len(series), chart_id
        for d, points in zip(paths, series, strict=True):
            # A series of n points draws at least min(n, 2) of them: a line, or a lone dot for a single day.
            assert path_points(d) >= min(2, len(_points(points))), (chart_id, d)
        assert sorted(circles) == _points(*series), chart_id
    # The usage has a day per point, so its path is a line; the demo's ARR and health have one day each.
    assert path_points(_drawn(driver.find_element(By.ID, "usage-chart"), "#usage-chart")[0][0]) >= 2

    def span(circles: list[tuple[str, float]]) -> int:
        days = [date.fromisoformat(at) for at, _ in circles]
        return (max(days) - min(days)).days

    before = span(_drawn(driver.find_element(By.ID, "usage-chart"), "#usage-chart")[1])
    assert before > 30, f"the default range shows {before} days of usage"
    marker = mark_window(driver)
    driver.find_element(By.CSS_SELECTOR, "nav.range-picker").find_element(By.LINK_TEXT, "30 days").click()
    wait_for(
        driver,
        lambda d: _texts(d, "nav.range-picker a.active") == ["30 days"],
        "the range picker to swap in the 30-day usage",
    )
    assert_not_reloaded(driver, marker)
    assert parse_qs(urlsplit(driver.current_url).query) == {"range": ["30"]}  # hx-push-url
    thirty = get_json(f"{site}/api/companies/{quote(company['key'])}?range=30")["profile"]["usage"]
    after = _drawn(driver.find_element(By.ID, "usage-chart"), "#usage-chart after the swap")[1]
    assert sorted(after) == _points(thirty["activities"])
    assert span(after) <= 30
    check_page(driver, site)
    screenshot(driver, "profile")


def test_explorer_groups_in_the_page(driver: WebDriver, site: str) -> None:
    query = "model=company&group=status&agg=sum:arr"
    data = get_json(f"{site}/api/explorer?{query}")["explorer"]
    open_page(driver, f"{site}/explorer?{query}")
    check_page(driver, site)
    assert [h.rstrip(" ▲▼") for h in _texts(driver, "#explorer-table thead th")] == data[
        "headers"
    ]  # less the sort arrow
    cells = [
        (
            row.find_element(By.CSS_SELECTOR, "td").text,
            float(row.find_element(By.CSS_SELECTOR, "td.num").get_attribute("data-value") or "nan"),
        )
        for row in driver.find_elements(By.CSS_SELECTOR, "#explorer-table tbody tr")
    ]
    assert cells == [(group, float(value)) for group, value in data["rows"]]
    screenshot(driver, "explorer")


def test_okr_bars_are_coloured_by_status(driver: WebDriver, site: str) -> None:
    open_page(driver, f"{site}/okrs")
    check_page(driver, site)
    bars = driver.find_elements(By.CSS_SELECTOR, ".progress .bar[data-status]")
    assert bars, "no progress bar with a data-status on /okrs (the demo has two key results with values)"
    colours: dict[str, set[str]] = {}
    for bar in bars:
        status = bar.get_attribute("data-status") or ""
        assert status in STATUS_CLASS, f"a bar's data-status {status!r} is none of {sorted(STATUS_CLASS)}"
        classes = (bar.get_attribute("class") or "").split()
        assert STATUS_CLASS[status] in classes, f"a {status} bar has classes {classes}"
        assert bar.size["width"] > 0, f"a {status} bar has no width"
        colours.setdefault(status, set()).add(bar.value_of_css_property("background-color"))
    # The stylesheet must paint each status one colour, and different statuses differently.
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({c for cs in colours.values() for c in cs}) == len(colours), colours
    screenshot(driver, "okrs")


@pytest.mark.parametrize(
    ("field", "text", "column"), [("key", "C-", "key"), ("reason", "is not a", "reason")], ids=["key", "reason"]
)
def test_syncs_rejects_search_filters_in_place(
    driver: WebDriver, rejects_site: str, field: str, text: str, column: str
) -> None:
    open_page(driver, f"{rejects_site}/syncs")
    check_page(driver, rejects_site)
    assert sorted(_texts(driver, "#rejects-table tr.reject td.key")) == sorted(k for k, _ in REJECTS)
    matching = sorted(k for k, reason in REJECTS if text in (k if column == "key" else reason))
    assert 0 < len(matching) < len(REJECTS)
    marker = mark_window(driver)
    driver.find_element(By.CSS_SELECTOR, f"input[name={field}]").send_keys(text)
    wait_for(
        driver,
        lambda d: sorted(_texts(d, "#rejects-table tr.reject td.key")) == matching,
        f"typing {text!r} into the {field} search to leave only the rejects {matching} in #rejects",
    )
    assert_not_reloaded(driver, marker)
    check_page(driver, rejects_site)
    screenshot(driver, "syncs")


def test_screenshots_folder_is_ignored_by_git() -> None:
    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text().splitlines()
    assert ".screenshots/" in ignored
