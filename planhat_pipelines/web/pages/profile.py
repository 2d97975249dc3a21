"""``/companies/{key}``: a company's profile, found by its id, externalId or sourceId (the reads: ``profile_data.py``).

``?range=30|90|365|all`` picks the usage range; the range picker asks for it with htmx and gets only the usage
fragment back (``_usage.html``). The change history, the slowest read, has its own address
(``/companies/{key}/history``), which the page loads after it has been shown.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from planhat_pipelines.web.pages.profile_data import history_view, profile, usage_view
from planhat_pipelines.web.pages.profile_usage import RANGES, InvalidRange, parse_range
from planhat_pipelines.web.render import error_response, read, respond, wants_json


def page(request: Request) -> Response:
    """The profile page (``/companies/{key}``), its JSON (``/api/companies/{key}``) or, for htmx, its usage."""
    key: str = request.path_params["key"]
    try:
        range_ = parse_range(request.query_params.get("range"))
    except InvalidRange as exc:
        return error_response(request, exc, 400)
    if request.headers.get("HX-Request") == "true" and not wants_json(request):
        # The range picker: only the usage is read again, the rest of the page stays.
        view = read(request, lambda store, config: usage_view(store, key, range_))
        data = {"key": key, "usage": view.usage, "ranges": tuple(RANGES)}
        return respond(request, "profile.html", data, fragment="_usage.html")
    found = read(request, lambda store, config: profile(store, config, key, range_))
    return respond(request, "profile.html", {"key": key, "profile": found, "ranges": tuple(RANGES)})


def history(request: Request) -> Response:
    """The company's change history (``/companies/{key}/history``; the profile loads it with htmx) or its JSON."""
    key: str = request.path_params["key"]
    view = read(request, lambda store, config: history_view(store, key))
    data = {"key": key, "company": view.company, "history": view.history}
    return respond(request, "history.html", data, fragment="_history.html")


# ``:path``: a key may hold a slash ("acme/emea"). The history routes come first, so ".../history" is the history.
ROUTES = [
    Route("/companies/{key:path}/history", history),
    Route("/api/companies/{key:path}/history", history),
    Route("/companies/{key:path}", page),
    Route("/api/companies/{key:path}", page),
]
