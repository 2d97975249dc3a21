"""The loopback redirect server: where the provider sends the browser back with the authorization code.

Installed apps cannot keep a secret redirect target, so RFC 8252 has them listen on 127.0.0.1 for the one
redirect. :class:`LoopbackRedirect` binds first (so the redirect URI, with an ephemeral port if asked, is known
before the consent URL is built), then :meth:`~LoopbackRedirect.wait` serves requests until the redirect arrives
or the time is up. The code is exchanged *while the browser waits*, so the page it shows says whether the token
was really obtained, not only that a code arrived. Requests that are not the redirect (a favicon, a preconnect)
are answered 404 and ignored.
"""

from __future__ import annotations

import errno
import html
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from planhat_pipelines.oauth.errors import OAuthError, no_redirect_error, redirect_error

T = TypeVar("T")

#: The address the redirect server listens on (RFC 8252 section 7.3: the IP literal, not "localhost").
LOOPBACK_HOST = "127.0.0.1"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    #: A client that connects and sends nothing (a browser's preconnect) may hold the one-request loop this long.
    timeout = 10

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path != "/" or not ({"code", "error"} & query.keys()):
            self._page(404, "Not the OAuth redirect.")
            return
        ok, text = self.server.complete(query)
        self._page(200 if ok else 400, text)

    def _page(self, status: int, text: str) -> None:
        body = (
            f"<!doctype html><meta charset=utf-8><title>planhat-pipelines auth</title><p>{html.escape(text)}</p>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line carries the code: never printed


class _Server(HTTPServer):
    complete: Callable[[dict[str, str]], tuple[bool, str]]


class LoopbackRedirect(Generic[T]):
    """A one-shot redirect receiver on 127.0.0.1.

    Use as a context manager; the socket is bound on entry, so :attr:`redirect_uri` is known before the
    consent URL is built.

    Args:
        port: The port to listen on; 0 picks a free one (fine for Google desktop clients, which accept any
            loopback port; Snowflake and Google web clients need the registered one).
        provider: Who is asked, for messages ("Google", "Snowflake").
    """

    def __init__(self, port: int, provider: str) -> None:
        self.provider = provider
        try:
            self._server = _Server((LOOPBACK_HOST, port), _Handler)
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            raise OAuthError(
                f"cannot listen on {LOOPBACK_HOST}:{port} for the OAuth redirect "
                f"({'the port is in use' if in_use else exc.strerror or exc})",
                fix="stop what uses the port, or pass --port with another port registered as a redirect URI",
            ) from exc
        self.redirect_uri = f"http://{LOOPBACK_HOST}:{self._server.server_address[1]}/"

    def __enter__(self) -> LoopbackRedirect[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.server_close()

    def wait(self, state: str, timeout: float, exchange: Callable[[str], T]) -> T:
        """Serve until the redirect arrives, exchange its code, and return what ``exchange`` returns.

        Args:
            state: The ``state`` sent with the consent URL; a redirect carrying another one is refused
                (a stale tab of an earlier run, or a forged redirect).
            timeout: Seconds to wait for the redirect.
            exchange: Turns the authorization code into the result (the token endpoint call); raises
                OAuthError when the provider refuses the code.

        Raises:
            OAuthError: Consent refused, a redirect with another state, the code refused, or no redirect in time.
        """
        outcome: list[T | Exception] = []

        def complete(query: dict[str, str]) -> tuple[bool, str]:
            try:
                outcome.append(self._result(query, state, exchange))
            except OAuthError as exc:
                outcome.append(exc)
                return False, f"planhat-pipelines auth failed: {exc}"
            except Exception as exc:  # an unexpected failure: raised by wait(), not lost in the server's thread
                outcome.append(exc)
                return False, "planhat-pipelines auth failed: see the terminal"
            return True, "Done: the refresh token was obtained. You can close this window."

        self._server.complete = complete
        deadline = time.monotonic() + timeout
        while not outcome:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise no_redirect_error(self.redirect_uri, timeout)
            self._server.timeout = remaining
            self._server.handle_request()
        result = outcome[0]
        if isinstance(result, Exception):
            raise result
        return result

    def _result(self, query: dict[str, str], state: str, exchange: Callable[[str], T]) -> T:
        if "error" in query:
            raise redirect_error(self.provider, query["error"], query.get("error_description", ""), self.redirect_uri)
        if query.get("state") != state:
            raise OAuthError(
                f"the redirect to {self.redirect_uri} carried another state than this run's consent URL (a page "
                "from an earlier run, or a redirect this run did not ask for)",
                fix="open the consent URL this run printed (not an old tab or bookmark) and consent there",
            )
        return exchange(query["code"])
