"""The Data Explorer: its query on a small store of known companies, and its routes on the demo store."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

from planhat_pipelines.store import ModelStore
from planhat_pipelines.web.pages.explorer_query import (
    ExplorerError,
    ExplorerQuery,
    ExplorerResult,
    custom_fields,
    explore,
    export_csv,
)

#: (id, name, status, owner, arr, renewalDate, custom)
COMPANIES = [
    ("c1", "Acme", "customer", "ann", "1000.5", "2026-01-15", {"tier": "gold", "seats": 10, "region": "eu"}),
    ("c2", "Beta", "customer", "bob", "2000", "2026-01-20", {"tier": "silver", "seats": 9}),
    ("c3", "Gamma", "prospect", "ann", None, "2026-02-03", {"tier": "gold", "seats": "many"}),
    ("c4", "Delta", "canceled", None, "500", "2026-03-01", {"tier": "bronze", "seats": 100, "it's": "quoted"}),
    ("c5", "Epsilon", "lost", "bob", "300", "2026-04-02", None),
    ("c6", "Zeta", "customer", "cy", "50", "2026-03-10", {"tier": "silver", "seats": 1}),
]
INJECTION = "x' OR 1=1 --"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelStore]:
    """A store holding :data:`COMPANIES` (and nothing else)."""
    store = ModelStore(tmp_path_factory.mktemp("explorer") / "s.sqlite")
    rows = [(*row[:6], None if row[6] is None else json.dumps(row[6])) for row in COMPANIES]
    store.atomic(
        lambda: store.con.executemany(
            'INSERT INTO company (id, name, status, owner, arr, "renewalDate", custom) '
            "VALUES (?, ?, ?, ?, CAST(? AS DECIMAL(38,6)), CAST(? AS DATE), CAST(? AS JSON))",
            rows,
        )
    )
    yield store
    store.close()


def run(store: ModelStore, **params: str | list[str]) -> ExplorerResult:
    query = ExplorerQuery.from_params({k: v if isinstance(v, list) else [v] for k, v in params.items()})
    return explore(store, query)


def names(result: ExplorerResult) -> set[str]:
    return {row[result.headers.index("name")] for row in result.rows}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("status:eq:customer", {"Acme", "Beta", "Zeta"}),
        ("status:ne:customer", {"Gamma", "Delta", "Epsilon"}),
        ("owner:ne:ann", {"Beta", "Delta", "Epsilon", "Zeta"}),  # a missing owner is not ann
        ("name:contains:TA", {"Beta", "Delta", "Zeta"}),
        ("arr:gt:1000", {"Acme", "Beta"}),
        ("arr:gte:2000", {"Beta"}),
        ("arr:lt:500", {"Epsilon", "Zeta"}),
        ("arr:lte:500", {"Delta", "Epsilon", "Zeta"}),
        ("arr:empty", {"Gamma"}),
        ("owner:empty", {"Delta"}),
        ("owner:notempty", {"Acme", "Beta", "Gamma", "Epsilon", "Zeta"}),
        ("renewalDate:lt:2026-02-01", {"Acme", "Beta"}),
        ("custom.tier:eq:gold", {"Acme", "Gamma"}),
        ("custom.seats:gt:9.5", {"Acme", "Delta"}),  # as numbers: "10" > "9.5" though not as text
        ("custom.region:empty", {"Beta", "Gamma", "Delta", "Epsilon", "Zeta"}),
        ("custom.tier:contains:ILV", {"Beta", "Zeta"}),
    ],
)
def test_each_filter_operator_selects_its_records(small: ModelStore, flt: str, expected: set[str]) -> None:
    result = run(small, col=["name", "arr"], f=flt)
    assert names(result) == expected
    assert result.total == len(expected)


def test_filters_combine_and_come_from_the_form_rows_too(small: ModelStore) -> None:
    result = run(small, col="name", f="status:eq:customer", ff=["arr", ""], fo=["gte", "eq"], fv=["100", ""])
    assert names(result) == {"Acme", "Beta"}
    assert result.query.params() == [
        ("model", "company"),
        ("col", "name"),
        ("f", "status:eq:customer"),
        ("f", "arr:gte:100"),
    ]


def test_group_and_sum_largest_first(small: ModelStore) -> None:
    result = run(small, group="status", agg="sum:arr")
    assert result.headers == ("status", "sum(arr)")
    assert result.rows == (
        ("customer", Decimal("3050.5")),
        ("canceled", Decimal("500")),
        ("lost", Decimal("300")),
        ("prospect", None),
    )
    assert result.total == 4
    by_name = run(small, group="status", agg="sum", agg_field="arr", sort="status", desc="1")
    assert [row[0] for row in by_name.rows] == ["prospect", "lost", "customer", "canceled"]


def test_group_by_a_custom_field_and_average_a_custom_number(small: ModelStore) -> None:
    result = run(small, group="custom.tier", agg="avg:custom.seats", sort="custom.tier")
    # Gamma's seats ("many") is not a number: left out of gold's average, not an error.
    assert result.rows == (("bronze", 100.0), ("gold", 10.0), ("silver", 5.0), (None, None))


def test_series_per_bucket(small: ModelStore) -> None:
    month = run(small, time="renewalDate", bucket="month")
    assert [(s.name, list(s.points)) for s in month.series] == [
        (
            "count",
            [(date(2026, 1, 1), 2.0), (date(2026, 2, 1), 1.0), (date(2026, 3, 1), 2.0), (date(2026, 4, 1), 1.0)],
        )
    ]
    week = run(small, time="renewalDate", bucket="week", f="renewalDate:lt:2026-02-01", agg="sum:arr")
    # Weeks start on Monday: the 15th (Thursday) falls in the week of the 12th, the 20th in the week of the 19th.
    assert list(week.series[0].points) == [(date(2026, 1, 12), 1000.5), (date(2026, 1, 19), 2000.0)]
    day = run(small, time="renewalDate", bucket="day")
    assert len(day.series[0].points) == 6


def test_grouped_series_draws_the_top_five_groups(small: ModelStore) -> None:
    result = run(small, group="name", agg="sum:arr", time="renewalDate", bucket="month")
    # Gamma's ARR is unknown: the smallest aggregate, the sixth group, not drawn.
    assert [s.name for s in result.series] == ["Acme", "Beta", "Delta", "Epsilon", "Zeta"]
    assert list(result.series[2].points) == [(date(2026, 3, 1), 500.0)]
    statuses = run(small, group="status", time="renewalDate", bucket="month")
    customer = next(s for s in statuses.series if s.name == "customer")
    assert list(customer.points) == [(date(2026, 1, 1), 2.0), (date(2026, 3, 1), 1.0)]


def test_custom_fields_are_discovered_and_read(small: ModelStore) -> None:
    assert custom_fields(small.con, "company") == ["it's", "region", "seats", "tier"]
    result = run(small, col=["name", "custom.it's", "custom.seats"], f="custom.it's:notempty")
    assert result.rows == (("Delta", "quoted", "100"),)


def test_pages_fetch_only_their_rows(small: ModelStore) -> None:
    second = run(small, col="name", sort="name", limit="2", page="2")
    assert second.rows == (("Delta",), ("Epsilon",))
    assert (second.total, second.pages) == (6, 3)
    assert run(small, col="name", sort="name", limit="2", page="4").rows == ()
    by_seats = run(small, col=["name", "custom.seats"], sort="custom.seats", desc="1", limit="3")
    assert [row[0] for row in by_seats.rows] == ["Delta", "Acme", "Beta"]  # 100, 10, 9: numbers, not text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"col": "nmae"}, "col=nmae: company has no field 'nmae' (did you mean 'name'?)"),
        ({"group": "stauts"}, "group=stauts: company has no field 'stauts' (did you mean 'status'?)"),
        ({"f": "status:like:x"}, "f=status:like:x: no such filter operator 'like'"),
        ({"model": "compnay"}, "model=compnay: no such model (did you mean 'company'?)"),
        ({"agg": "sum:name"}, "agg=sum:name: name is not a number field"),
        ({"agg": "median:arr"}, "agg=median:arr: no such aggregate 'median'"),
        ({"time": "name"}, "time=name: company has no date field 'name'"),
        ({"bucket": "year", "time": "renewalDate"}, "bucket=year: no such bucket"),
        ({"limit": "501"}, "limit=501: not a whole number from 1 to 500"),
        ({"page": "two"}, "page=two: not a whole number 1 or more"),
        ({"group": "status", "sort": "name"}, "sort=name: a grouped table sorts by its group or its aggregate"),
        ({"ff": ["name"], "fo": ["eq", "eq"], "fv": ["x"]}, "ff/fo/fv: 1 filter fields, 2 operators and 1 values"),
    ],
)
def test_bad_parameters_name_themselves_and_the_fix(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ExplorerError, match=re.escape(message)) as raised:
        ExplorerQuery.from_params({k: v if isinstance(v, list) else [v] for k, v in params.items()})
    assert raised.value.fix


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"f": "arr:gt:lots"}, "f=arr:gt:lots: 'lots' is not a value of arr (DECIMAL(38,6)). Fix: give a number"),
        ({"f": "renewalDate:gte:soon"}, "f=renewalDate:gte:soon: 'soon' is not a value of renewalDate (DATE)"),
        ({"col": "custom.teir"}, "custom.teir: no company record has a custom field 'teir' (did you mean 'tier'?)"),
    ],
)
def test_values_and_custom_fields_are_checked_against_the_store(
    small: ModelStore, params: dict[str, str], message: str
) -> None:
    with pytest.raises(ExplorerError, match=re.escape(message)):
        run(small, **params)


def test_injection_as_a_value_matches_nothing_and_as_a_name_is_refused(small: ModelStore) -> None:
    for flt in (f"name:eq:{INJECTION}", f"custom.tier:eq:{INJECTION}", "name:contains:' OR '1'='1"):
        assert run(small, f=flt).total == 0, flt
    assert run(small, f=f"name:ne:{INJECTION}").total == 6
    for params in (
        {"col": "name; DROP TABLE company"},
        {"col": 'custom.x") FROM company; --'},
        {"group": 'status" --'},
        {"f": '"name" = name --:eq:x'},
        {"sort": "name DESC; DELETE FROM company"},
    ):
        with pytest.raises(ExplorerError):
            run(small, **params)
    with pytest.raises(ExplorerError, match="not a value of arr"):
        run(small, f=f"arr:gt:{INJECTION}")
    assert small.count("company") == len(COMPANIES)
    assert small.con.execute("SELECT count(*) FROM company WHERE name = 'Acme'").fetchall() == [(1,)]


def test_csv_export_holds_every_page(small: ModelStore) -> None:
    query = ExplorerQuery.from_params({"col": ["name", "arr", "custom.tier"], "limit": ["2"], "sort": ["name"]})
    rows = list(csv.reader(io.StringIO(export_csv(small, query).decode())))
    assert rows[0] == ["name", "arr", "custom.tier"]
    assert [r[0] for r in rows[1:]] == ["Acme", "Beta", "Delta", "Epsilon", "Gamma", "Zeta"]
    assert rows[1][1:] == ["1000.500000", "gold"]


# --- routes, on the demo store -------------------------------------------------------------------

GROUPED = "/explorer?model=company&group=status&agg=sum:arr"


def cells(html: str) -> list[tuple[str, str]]:
    """(first cell's text, second cell's data-value) of each row of the explorer table."""
    body = html.split('id="explorer-table"', 1)[1].split("</table>", 1)[0].split("<tbody>", 1)[1]
    return re.findall(r'<tr><td[^>]*>([^<]*)</td><td class="num" data-value="([^"]*)"', body)


def test_page_and_json_agree(client: TestClient) -> None:
    page = client.get(GROUPED)
    data = client.get(GROUPED.replace("/explorer", "/api/explorer")).json()["explorer"]
    assert page.status_code == 200
    assert "<form" in page.text and 'id="explorer-table"' in page.text
    assert data["headers"] == ["status", "sum(arr)"]
    assert len(data["rows"]) == data["total"] >= 2
    shown = cells(page.text)
    assert [status for status, _ in shown] == [row[0] for row in data["rows"]]
    assert [float(value) for _, value in shown] == pytest.approx([row[1] for row in data["rows"]])
    total = client.get("/api/explorer?model=company").json()["explorer"]["total"]
    assert total == 500


def test_csv_export_parses_with_its_header_and_every_row(client: TestClient) -> None:
    params = "model=company&col=name&col=arr&col=status&f=arr:gt:0&limit=5"
    answer = client.get(f"/explorer.csv?{params}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == "attachment; filename=explorer-company.csv"
    rows = list(csv.reader(io.StringIO(answer.text)))
    total = client.get(f"/api/explorer?{params}").json()["explorer"]["total"]
    assert rows[0] == ["name", "arr", "status"]
    assert len(rows) - 1 == total > 5  # the whole result, not the page of five
    assert all(float(r[1]) > 0 for r in rows[1:])
    page = client.get(f"/explorer?{params}").text
    link = "/explorer.csv?model=company&amp;col=name&amp;col=arr&amp;col=status&amp;f=arr%3Agt%3A0&amp;limit=5"
    assert f'href="{link}"' in page


def test_htmx_request_gets_only_the_results(client: TestClient) -> None:
    fragment = client.get(GROUPED, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "<form" not in fragment.text
    assert cells(fragment.text) == cells(client.get(GROUPED).text)


def test_time_chart_draws_a_line_per_top_group(client: TestClient) -> None:
    page = client.get("/explorer?model=company&group=status&time=renewalDate&bucket=month")
    assert page.status_code == 200
    assert '<path class="series' in page.text
    data = client.get("/api/explorer?model=company&group=status&time=renewalDate&bucket=month").json()
    assert 1 <= len(data["explorer"]["series"]) <= 5


def test_bad_parameter_answers_400_with_the_message(client: TestClient) -> None:
    page = client.get("/explorer?model=company&col=nmae")
    assert page.status_code == 400
    assert "col=nmae: company has no field &#39;nmae&#39; (did you mean &#39;name&#39;?)" in page.text
    assert "<form" in page.text  # the form stays, to fix the parameter in
    fragment = client.get("/explorer?f=arr:gt:lots", headers={"HX-Request": "true"})
    assert fragment.status_code == 400 and "<form" not in fragment.text
    assert "&#39;lots&#39; is not a value of arr" in fragment.text
    data = client.get("/api/explorer?model=nope")
    assert data.status_code == 400
    assert data.json()["error"].startswith("model=nope: no such model")
    assert client.get("/explorer.csv?col=nmae").status_code == 400


def test_injected_value_reaches_no_sql(client: TestClient) -> None:
    answer = client.get("/api/explorer", params={"model": "company", "f": f"name:eq:{INJECTION}"})
    assert answer.status_code == 200
    assert answer.json()["explorer"]["total"] == 0
    refused = client.get("/api/explorer", params={"model": "company", "col": "name; DROP TABLE company"})
    assert refused.status_code == 400
    assert client.get("/api/explorer?model=company").json()["explorer"]["total"] == 500
