"""The web app: routes of every page and its JSON twin, the static files, the token check.

Built from a loaded config by :func:`create_app`; ``planhat-pipelines serve`` runs it with uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from planhat_pipelines.config import Config
from planhat_pipelines.errors import PlanhatPipelinesError
from planhat_pipelines.web import charts
from planhat_pipelines.web.access import TokenMiddleware
from planhat_pipelines.web.formatting import FILTERS
from planhat_pipelines.web.pages import companies, explorer, okrs, portfolio, profile, syncs
from planhat_pipelines.web.reader import StoreReader
from planhat_pipelines.web.render import STATIC_DIR, TEMPLATES_DIR, NotFound, error_response

#: The navigation bar: (path, label), in order.
NAVIGATION = (
    ("/", "Portfolio"),
    ("/companies", "Companies"),
    ("/explorer", "Data Explorer"),
    ("/okrs", "OKRs"),
    ("/syncs", "Syncs"),
)


def templates() -> Jinja2Templates:
    """The pages' templates (autoescaped), with the number filters and the chart functions."""
    found = Jinja2Templates(directory=str(TEMPLATES_DIR))
    found.env.filters.update(FILTERS)
    found.env.globals.update(
        line_chart=charts.line_chart,
        bar_chart=charts.bar_chart,
        Series=charts.Series,
        Mark=charts.Mark,
        navigation=NAVIGATION,
    )
    return found


def routes() -> list[BaseRoute]:
    """Every page's routes, then the static files (htmx, the stylesheet)."""
    pages = (portfolio, companies, profile, explorer, okrs, syncs)
    return [
        *(route for page in pages for route in page.ROUTES),
        Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(request, exc, 404)


async def _refused(request: Request, exc: Exception) -> Response:
    # A store that is missing or cannot be read: the message says which and what to do.
    return error_response(request, exc, 503)


def create_app(config: Config, *, token: str | None = None) -> Starlette:
    """The app over ``config``'s store; with ``token``, every request must carry it (see ``access.py``).

    Raises:
        PlanhatPipelinesError: The store's catalog cannot be served (see :class:`StoreReader`).
    """
    reader = StoreReader(config.store)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        reader.close()

    app = Starlette(
        routes=routes(),
        middleware=[Middleware(TokenMiddleware, token=token)] if token else [],
        exception_handlers={NotFound: _not_found, PlanhatPipelinesError: _refused},
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.reader = reader
    app.state.templates = templates()
    return app
