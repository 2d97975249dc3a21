"""One way to answer a page: the same data as HTML (a template) or as JSON (under ``/api/``).

A page's handler reads its data with :func:`read` (a read-only store view for the request) and answers with
:func:`respond`, so the HTML page and its JSON twin can never disagree. htmx requests (``HX-Request``) get only the
page's fragment, the part a filter replaces.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from planhat_pipelines.config import Config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.store import ModelStore

T = TypeVar("T")

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


class NotFound(PlanhatPipelinesError):
    """The page names something the store does not hold (a company key, a key result)."""


def jsonable(value: Any) -> Any:
    """``value`` as JSON types: dataclasses and mappings as objects, dates as ISO text, decimals as numbers."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def config_of(request: Request) -> Config:
    """The config the app was started with."""
    config: Config = request.app.state.config
    return config


def read(request: Request, reads: Callable[[ModelStore, Config], T]) -> T:
    """Run ``reads`` on a read-only store view of its own (handlers are sync: Starlette runs them in a thread)."""
    with request.app.state.reader.view() as store:
        return reads(store, config_of(request))


def wants_json(request: Request) -> bool:
    """Whether the request is for a page's JSON twin."""
    return request.url.path.startswith("/api/")


def respond(
    request: Request, template: str, data: Mapping[str, Any], *, fragment: str | None = None, status_code: int = 200
) -> Response:
    """``data`` as JSON under ``/api/``, else rendered by ``template`` (``fragment`` for an htmx request)."""
    if wants_json(request):
        return JSONResponse(jsonable(data), status_code=status_code)
    templates: Jinja2Templates = request.app.state.templates
    name = fragment if fragment and request.headers.get("HX-Request") == "true" else template
    return templates.TemplateResponse(request, name, dict(data), status_code=status_code)


def error_response(request: Request, exc: Exception, status_code: int) -> Response:
    """An error as the page or its JSON twin shows it (the message names what is wrong and the fix)."""
    if wants_json(request):
        return JSONResponse({"error": str(exc)}, status_code=status_code)
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, "error.html", {"message": str(exc), "status_code": status_code}, status_code=status_code
    )
