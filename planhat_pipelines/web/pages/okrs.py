"""Placeholder until this page lands (being written now)."""

from starlette.routing import BaseRoute

ROUTES: list[BaseRoute] = []
