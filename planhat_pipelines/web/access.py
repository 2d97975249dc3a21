"""Who may read the app: anyone on this machine when it binds a loopback address, a token holder otherwise.

Bound to 127.0.0.1 (the default) only local processes reach the app. Bound to any other address, every request
(pages, JSON, static files) must carry the token from ``PLANHAT_PIPELINES_WEB_TOKEN``: as ``Authorization: Bearer
<token>``, or once as ``?token=<token>``, which a browser then keeps in an HTTP-only cookie.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import URL
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from planhat_pipelines.errors import PlanhatPipelinesError

#: The environment variable holding the token a non-loopback bind requires.
TOKEN_ENV = "PLANHAT_PIPELINES_WEB_TOKEN"
#: The cookie a browser keeps the token in after ``?token=``.
TOKEN_COOKIE = "planhat_pipelines_token"
_MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def token_for_bind(host: str) -> str | None:
    """The token requests must carry when the app binds ``host``: None for a loopback address.

    Raises:
        PlanhatPipelinesError: ``host`` is not loopback and the token variable is unset or too short to guess-proof.
    """
    if is_loopback(host):
        return None
    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < _MIN_TOKEN_LENGTH:
        problem = "is not set" if not token else f"is shorter than {_MIN_TOKEN_LENGTH} characters"
        raise PlanhatPipelinesError(
            f"serve --host {host}: binding an address other people can reach needs a token, and {TOKEN_ENV} "
            f"{problem}. Fix: export {TOKEN_ENV}=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\" "
            "and give it to the people who may read the app (or bind 127.0.0.1)"
        )
    return token


class TokenMiddleware:
    """Refuse every request that does not carry ``token`` (ASGI middleware)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    def _matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        bearer = headers.get("authorization", "")
        cookies = dict(part.strip().split("=", 1) for part in headers.get("cookie", "").split(";") if "=" in part)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given_query = next((v for k, v in query if k == "token"), None)
        response: Response | None = None
        if (bearer.startswith("Bearer ") and self._matches(bearer[7:])) or self._matches(cookies.get(TOKEN_COOKIE)):
            await self.app(scope, receive, send)
            return
        if self._matches(given_query):
            # Drop the token from the address bar (and from history) and keep it in a cookie instead.
            url = URL(scope=scope).replace(query=urlencode([(k, v) for k, v in query if k != "token"]))
            response = RedirectResponse(str(url), status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        else:
            response = PlainTextResponse(
                f"401: this app needs its token. Fix: open the address with ?token=<the value of {TOKEN_ENV}> once, "
                "or send 'Authorization: Bearer <token>'",
                status_code=401,
            )
        await response(scope, receive, send)
