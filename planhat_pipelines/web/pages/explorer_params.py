"""The Data Explorer's parameters: a query parsed from the URL, every name in it checked against the model catalog.

Model and field names must be in :data:`MODELS` (``custom.<name>`` for a custom field), operators, aggregates and
buckets come from fixed lists; ``explorer_query.py`` turns the checked query into SQL with bound values.

Parameters: ``model`` (a model slug, default company), ``col`` (repeated: the table's columns), ``f`` (repeated
``<field>:<op>:<value>``), ``group``, ``agg`` (``count`` or ``<sum|avg|min|max>:<field>``), ``time`` (a date
field for the chart) and ``bucket`` (day, week, month), ``sort``, ``desc``, ``page`` and ``limit`` (at most 500).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from starlette.datastructures import ImmutableMultiDict

from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.models import MODELS, FieldType, ModelSpec

#: Filter operators (``empty`` and ``notempty`` take no value).
OPS = ("eq", "ne", "contains", "gt", "gte", "lt", "lte", "empty", "notempty")
#: Aggregates over a field (``count`` counts rows and takes none).
AGG_FUNCTIONS = ("sum", "avg", "min", "max")
BUCKETS = ("day", "week", "month")
NUMERIC_TYPES = frozenset({FieldType.NUMBER, FieldType.INTEGER, FieldType.MONEY})
TIME_TYPES = frozenset({FieldType.DATE, FieldType.DATETIME})
CUSTOM_PREFIX = "custom."
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: ``sort`` of a grouped query that orders by the aggregate.
SORT_BY_AGGREGATE = "agg"
_TRUE = frozenset({"1", "true", "on", "yes"})


class ExplorerError(PlanhatPipelinesError):
    """A Data Explorer parameter names what the catalog or the store lacks, or holds a value of the wrong type."""


#: URL parameters: Starlette's ``QueryParams`` or a mapping of each name to its values.
Params = ImmutableMultiDict[str, str] | Mapping[str, list[str]]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``candidates`` to ``name``, or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def is_custom(name: str) -> bool:
    """Whether ``name`` is a custom field (``custom.<name>``)."""
    return name.startswith(CUSTOM_PREFIX)


def json_path(name: str) -> str:
    """The JSON path of custom field ``custom.<name>`` (bound, never spliced into SQL)."""
    return f'$."{name.removeprefix(CUSTOM_PREFIX)}"'


@dataclass(frozen=True)
class Filter:
    """``field`` ``op`` ``value`` (``empty``/``notempty`` take no value)."""

    field: str
    op: str
    value: str = ""

    @property
    def param(self) -> str:
        """The filter as its ``f=`` parameter."""
        return f"{self.field}:{self.op}" if self.op in ("empty", "notempty") else f"{self.field}:{self.op}:{self.value}"


@dataclass(frozen=True)
class ExplorerQuery:
    """One Data Explorer query, every name in it checked against the catalog (see :meth:`from_params`)."""

    model: str = "company"
    columns: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    group: str | None = None
    agg: str = "count"
    time: str | None = None
    bucket: str = "month"
    sort: str | None = None
    desc: bool = False
    page: int = 1
    limit: int = DEFAULT_LIMIT

    @property
    def spec(self) -> ModelSpec:
        return MODELS[self.model]

    @property
    def agg_function(self) -> str:
        """``count``, ``sum``, ``avg``, ``min`` or ``max``."""
        return self.agg.partition(":")[0]

    @property
    def agg_field(self) -> str | None:
        """The field aggregated (None for ``count``)."""
        return self.agg.partition(":")[2] or None

    @property
    def agg_label(self) -> str:
        """The aggregate's column header: ``count`` or ``sum(arr)``."""
        return f"{self.agg_function}({self.agg_field})" if self.agg_field else "count"

    @property
    def shown_columns(self) -> tuple[str, ...]:
        """The columns an ungrouped table shows: the chosen ones, else ``id`` and the first few standard fields."""
        if self.columns:
            return self.columns
        return ("id", *[f.name for f in self.spec.fields if f.type is not FieldType.JSON][:6])

    def custom_fields_used(self) -> set[str]:
        """Custom fields the query reads (their names without ``custom.``)."""
        names = [*self.columns, *(f.field for f in self.filters), self.group, self.agg_field, self.sort]
        return {n.removeprefix(CUSTOM_PREFIX) for n in names if n and is_custom(n)}

    def params(self, **changes: object) -> list[tuple[str, str]]:
        """The query as URL parameters (with ``changes`` applied), the canonical form :meth:`from_params` reads."""
        q = replace(self, **changes)  # type: ignore[arg-type]
        out = [("model", q.model), *(("col", c) for c in q.columns), *(("f", f.param) for f in q.filters)]
        optional = {"group": q.group, "time": q.time, "sort": q.sort}
        out += [(k, v) for k, v in optional.items() if v]
        out += [("agg", q.agg)] if q.agg != "count" else []
        out += [("bucket", q.bucket)] if q.time else []
        out += [("desc", "1")] if q.desc else []
        out += [("page", str(q.page))] if q.page != 1 else []
        out += [("limit", str(q.limit))] if q.limit != DEFAULT_LIMIT else []
        return out

    def query_string(self, **changes: object) -> str:
        """:meth:`params` url-encoded (for links: pages, sorting, the CSV export)."""
        return urlencode(self.params(**changes))

    @classmethod
    def from_params(cls, params: Params) -> ExplorerQuery:
        """The query in URL parameters (the module docstring lists them).

        Filters come as ``f=<field>:<op>:<value>`` or, from the page's form, as parallel ``ff``/``fo``/``fv``;
        an aggregate as ``agg=sum:arr`` or ``agg=sum&agg_field=arr``. Empty parameters count as absent.

        Raises:
            ExplorerError: An unknown model, field, operator, aggregate or bucket, a field of the wrong type for
                its use, or a page or limit out of range; the message names the parameter and the fix.
        """
        get = _reader(params)
        model = _first(get("model")) or "company"
        if model not in MODELS:
            raise ExplorerError(
                f"model={model}: no such model{did_you_mean(model, MODELS)}", fix=f"use one of {', '.join(MODELS)}"
            )
        spec = MODELS[model]
        columns = tuple(dict.fromkeys(_field(spec, c, "col") for c in get("col") if c))
        filters = tuple(_filter(spec, raw) for raw in get("f") if raw) + _form_filters(spec, get)
        group = _optional_field(spec, _first(get("group")), "group")
        agg = _aggregate(spec, _first(get("agg")) or "count", _first(get("agg_field")))
        time = _first(get("time"))
        if time is not None:
            found = spec.field(time)
            if found is None or found.type not in TIME_TYPES:
                raise ExplorerError(
                    f"time={time}: {model} has no date field '{time}'{did_you_mean(time, _time_fields(spec))}",
                    fix=f"use one of {', '.join(_time_fields(spec)) or '(none: this model has no date field)'}",
                )
        bucket = _first(get("bucket")) or "month"
        if bucket not in BUCKETS:
            raise ExplorerError(f"bucket={bucket}: no such bucket", fix=f"use one of {', '.join(BUCKETS)}")
        sort = _first(get("sort"))
        if sort is not None and group is not None and sort not in (group, SORT_BY_AGGREGATE):
            raise ExplorerError(
                f"sort={sort}: a grouped table sorts by its group or its aggregate",
                fix=f"use sort={group} or sort={SORT_BY_AGGREGATE}",
            )
        if sort is not None and group is None:
            sort = _field(spec, sort, "sort")
        return cls(
            model=model,
            columns=columns,
            filters=filters,
            group=group,
            agg=agg,
            time=time,
            bucket=bucket,
            sort=sort,
            desc=(_first(get("desc")) or "").lower() in _TRUE,
            page=_integer(get("page"), "page", 1, None, 1),
            limit=_integer(get("limit"), "limit", 1, MAX_LIMIT, DEFAULT_LIMIT),
        )


def _reader(params: Params) -> Callable[[str], list[str]]:
    """A parameter's values, from ``QueryParams`` or a plain mapping of lists."""
    if isinstance(params, ImmutableMultiDict):  # a Mapping too, of each name to its last value
        return params.getlist
    return lambda key: list(params.get(key, []))


def _first(values: list[str]) -> str | None:
    return next((v.strip() for v in values if v.strip()), None)


def _time_fields(spec: ModelSpec) -> list[str]:
    return [f.name for f in spec.all_fields if f.type in TIME_TYPES]


def numeric_fields(spec: ModelSpec) -> list[str]:
    """The model's standard fields an aggregate can sum."""
    return [f.name for f in spec.all_fields if f.type in NUMERIC_TYPES]


def _field(spec: ModelSpec, name: str, param: str) -> str:
    """``name`` if it is a standard field of ``spec`` or a well-formed ``custom.<name>``."""
    name = name.strip()
    if is_custom(name):
        bare = name.removeprefix(CUSTOM_PREFIX)
        if not bare or '"' in bare:
            raise ExplorerError(
                f"{param}={name}: a custom field name must be non-empty and hold no double quote",
                fix="pick the custom field from the list the page offers",
            )
        return name
    if spec.field(name) is None:
        names = [f.name for f in spec.all_fields]
        raise ExplorerError(
            f"{param}={name}: {spec.slug} has no field '{name}'{did_you_mean(name, names)}",
            fix=f"use one of {', '.join(names)}, or custom.<name> for a custom field",
        )
    return name


def _optional_field(spec: ModelSpec, name: str | None, param: str) -> str | None:
    return None if name is None else _field(spec, name, param)


def _filter(spec: ModelSpec, raw: str) -> Filter:
    field, _, rest = raw.partition(":")
    op, _, value = rest.partition(":")
    return _checked_filter(spec, field, op, value, f"f={raw}")


def _checked_filter(spec: ModelSpec, field: str, op: str, value: str, where: str) -> Filter:
    field = _field(spec, field, where.partition("=")[0])
    op = op.strip()
    if op not in OPS:
        raise ExplorerError(
            f"{where}: no such filter operator '{op}'{did_you_mean(op, OPS)}",
            fix=f"write <field>:<op>:<value> with op one of {', '.join(OPS)}",
        )
    return Filter(field, op, "" if op in ("empty", "notempty") else value)


def _form_filters(spec: ModelSpec, get: Callable[[str], list[str]]) -> tuple[Filter, ...]:
    """The filter rows of the page's form: parallel ``ff``, ``fo``, ``fv`` (rows without a field are blank)."""
    fields, ops, values = get("ff"), get("fo"), get("fv")
    if not fields:
        return ()
    if not len(fields) == len(ops) == len(values):
        raise ExplorerError(
            f"ff/fo/fv: {len(fields)} filter fields, {len(ops)} operators and {len(values)} values",
            fix="give each filter row a field, an operator and a value (or use f=<field>:<op>:<value>)",
        )
    rows = zip(fields, ops, values, strict=True)
    return tuple(
        _checked_filter(spec, field, op, value, f"ff={field}&fo={op}&fv={value}") for field, op, value in rows if field
    )


def _aggregate(spec: ModelSpec, raw: str, agg_field: str | None) -> str:
    function, _, field = raw.partition(":")
    field = field or (agg_field or "" if function != "count" else "")
    if function == "count" and not field:
        return "count"
    if function not in AGG_FUNCTIONS:
        raise ExplorerError(
            f"agg={raw}: no such aggregate '{function}'{did_you_mean(function, ('count', *AGG_FUNCTIONS))}",
            fix=f"use count, or <function>:<field> with function one of {', '.join(AGG_FUNCTIONS)}",
        )
    numeric = numeric_fields(spec)
    if not field:
        raise ExplorerError(
            f"agg={raw}: {function} needs a field", fix=f"write {function}:<field>, e.g. one of {numeric}"
        )
    field = _field(spec, field, "agg")
    found = spec.field(field)
    if found is not None and found.type not in NUMERIC_TYPES:
        raise ExplorerError(
            f"agg={function}:{field}: {field} is not a number field, {function} needs one",
            fix=f"aggregate one of {', '.join(numeric) or '(none)'} or a numeric custom field, or use count",
        )
    return f"{function}:{field}"


def _integer(values: list[str], param: str, low: int, high: int | None, default: int) -> int:
    raw = _first(values)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise ExplorerError(f"{param}={raw}: not a whole number {bounds}", fix=f"give {param} a number {bounds}")
    return value
