"""``/explorer``: the Data Explorer — pick a model, columns and filters, group and aggregate, chart over time.

``/api/explorer`` answers the same data as JSON and ``/explorer.csv`` the whole table (every page) as CSV. The
parameters are read by :class:`ExplorerQuery` (``explorer_params.py`` lists them) and run by ``explorer_query.py``:
names only from the model catalog, values only as bound parameters. A bad parameter answers 400 with the form
and a message naming the parameter and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from planhat_pipelines.models import MODELS
from planhat_pipelines.web.pages.explorer_params import (
    AGG_FUNCTIONS,
    BUCKETS,
    CUSTOM_PREFIX,
    DEFAULT_LIMIT,
    TIME_TYPES,
    numeric_fields,
)
from planhat_pipelines.web.pages.explorer_query import (
    ExplorerError,
    ExplorerQuery,
    ExplorerResult,
    custom_fields,
    explore,
    export_csv,
)
from planhat_pipelines.web.render import error_response, read, respond, wants_json

#: The filter operators as the form names them.
OP_LABELS = (
    ("eq", "="),
    ("ne", "≠"),
    ("contains", "contains"),
    ("gt", ">"),
    ("gte", "≥"),
    ("lt", "<"),
    ("lte", "≤"),
    ("empty", "is empty"),
    ("notempty", "is not empty"),
)
#: Blank filter rows the form offers besides the ones in use (the page adds none without JavaScript).
BLANK_FILTER_ROWS = 2
TEMPLATE = "explorer.html"
FRAGMENT = "_explorer_results.html"


@dataclass(frozen=True)
class ExplorerForm:
    """What the form offers and holds, read leniently from the URL (so a bad parameter is shown, not lost)."""

    model: str
    models: tuple[tuple[str, str], ...]
    fields: tuple[str, ...]
    custom_fields: tuple[str, ...]
    numeric_fields: tuple[str, ...]
    time_fields: tuple[str, ...]
    columns: tuple[str, ...]
    filters: tuple[tuple[str, str, str], ...]
    group: str
    agg_function: str
    agg_field: str
    time: str
    bucket: str
    limit: str
    ops: tuple[tuple[str, str], ...] = OP_LABELS
    functions: tuple[str, ...] = ("count", *AGG_FUNCTIONS)
    buckets: tuple[str, ...] = BUCKETS

    @property
    def all_fields(self) -> tuple[str, ...]:
        """Standard fields, then custom ones: what a filter or a group can name."""
        return self.fields + self.custom_fields


def _split_filter(raw: str) -> tuple[str, str, str]:
    field, _, rest = raw.partition(":")
    op, _, value = rest.partition(":")
    return field, op, value


def form_of(params: QueryParams, custom: Sequence[str]) -> ExplorerForm:
    """The form as the URL fills it; ``custom`` are the model's custom field names (without ``custom.``)."""
    model = params.get("model", "")
    spec = MODELS.get(model) or MODELS["company"]
    rows = [_split_filter(raw) for raw in params.getlist("f") if raw]
    form_rows = zip(params.getlist("ff"), params.getlist("fo"), params.getlist("fv"), strict=False)
    rows += [row for row in form_rows if row[0]]
    function, _, field = params.get("agg", "count").partition(":")
    customs = tuple(f"{CUSTOM_PREFIX}{name}" for name in custom)
    return ExplorerForm(
        model=spec.slug,
        models=tuple((slug, m.name) for slug, m in MODELS.items()),
        fields=tuple(f.name for f in spec.all_fields),
        custom_fields=customs,
        numeric_fields=(*numeric_fields(spec), *customs),
        time_fields=tuple(f.name for f in spec.all_fields if f.type in TIME_TYPES),
        columns=tuple(params.getlist("col")),
        filters=(*rows, *[("", "eq", "")] * BLANK_FILTER_ROWS),
        group=params.get("group", ""),
        agg_function=function,
        agg_field=field or params.get("agg_field", ""),
        time=params.get("time", ""),
        bucket=params.get("bucket", "month"),
        limit=params.get("limit", str(DEFAULT_LIMIT)),
    )


def page(request: Request) -> Response:
    """The Data Explorer (``/explorer``) or its JSON (``/api/explorer``); a bad parameter answers 400."""
    params = request.query_params
    try:
        query = ExplorerQuery.from_params(params)
        result: ExplorerResult = read(request, lambda store, _config: explore(store, query))
    except ExplorerError as exc:
        if wants_json(request):
            return respond(request, TEMPLATE, {"error": str(exc)}, status_code=400)
        model = params.get("model", "") if params.get("model") in MODELS else "company"
        custom = read(request, lambda store, _config: custom_fields(store.con, model))
        data = {"error": str(exc), "explorer": None, "form": form_of(params, custom)}
        return respond(request, TEMPLATE, data, fragment=FRAGMENT, status_code=400)
    if wants_json(request):
        return respond(request, TEMPLATE, {"explorer": result})
    shown = {"error": None, "explorer": result, "form": form_of(params, result.custom_fields)}
    return respond(request, TEMPLATE, shown, fragment=FRAGMENT)


def csv_export(request: Request) -> Response:
    """``/explorer.csv``: the query's whole table (not just a page, at most 100,000 rows) as a CSV download."""
    try:
        query = ExplorerQuery.from_params(request.query_params)
        body = read(request, lambda store, _config: export_csv(store, query))
    except ExplorerError as exc:
        return error_response(request, exc, 400)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename=explorer-{query.model}.csv"},
    )


ROUTES = [Route("/explorer", page), Route("/api/explorer", page), Route("/explorer.csv", csv_export)]
