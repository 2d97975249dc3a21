"""An OAuth 2.0 authorization server on 127.0.0.1 for the consent tests: RFC 6749 authorization-code and
refresh-token grants, PKCE (S256), HTTP Basic client authentication, codes that expire and work once.

``/authorize`` plays the user too: it answers as :attr:`OAuthProvider.decision` says ("allow" redirects with a
code, "deny" with ``error=access_denied``). A redirect URI the client did not register is refused with an error
page and no redirect, as Google and Snowflake do. A client registered with ``any_loopback_port`` accepts
``http://127.0.0.1:<any port>/`` (Google's Desktop app clients).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()
    any_loopback_port: bool = False

    def accepts(self, redirect_uri: str) -> bool:
        parts = urlsplit(redirect_uri)
        loopback = parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.port is not None
        return redirect_uri in self.redirect_uris or (self.any_loopback_port and loopback)


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    issued: float


@dataclass
class OAuthProvider:
    """The server's state; the tests read :attr:`refresh_tokens` and :attr:`grants` to see what happened."""

    clients: dict[str, Client]
    decision: str = "allow"
    code_lifetime: float = 60.0
    #: Sent as ``refresh_token_expires_in`` (Snowflake's field) when set.
    refresh_token_expires_in: int | None = None
    base_url: str = ""
    codes: dict[str, _Code] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    grants: list[str] = field(default_factory=list)
    authorize_pages: list[int] = field(default_factory=list)

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """(status, headers, body) of the consent page."""
        client = self.clients.get(query.get("client_id", ""))
        if client is None:
            return 400, {}, "invalid_client: unknown client_id"
        redirect_uri = query.get("redirect_uri", "")
        if not client.accepts(redirect_uri):
            return 400, {}, f"redirect_uri_mismatch: {redirect_uri} is not registered for this client"
        state = query.get("state", "")
        if self.decision == "deny":
            params = {"error": "access_denied", "error_description": "The user denied access", "state": state}
        else:
            code = secrets.token_urlsafe(16)
            self.codes[code] = _Code(
                client.client_id, redirect_uri, query.get("scope", ""), query.get("code_challenge"), time.monotonic()
            )
            params = {"code": code, "state": state}
        return 302, {"Location": f"{redirect_uri}?{urlencode(params)}"}, ""

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        """(status, JSON answer) of the token endpoint."""
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization and authorization.startswith("Basic "):
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            client_id, client_secret = unquote(user), unquote(password)
        client = self.clients.get(client_id)
        if client is None or client.client_secret != client_secret:
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        grant = form.get("grant_type", "")
        self.grants.append(grant)
        if grant == "authorization_code":
            return self._code_grant(client, form)
        if grant == "refresh_token":
            if self.refresh_tokens.get(form.get("refresh_token", "")) != client.client_id:
                return 400, {"error": "invalid_grant", "error_description": "Refresh token is invalid or expired"}
            return 200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 600}
        return 400, {"error": "unsupported_grant_type"}

    def _code_grant(self, client: Client, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        code = self.codes.pop(form.get("code", ""), None)  # a code works once
        if code is None or code.client_id != client.client_id:
            return 400, {"error": "invalid_grant", "error_description": "Authorization code is invalid or used"}
        if time.monotonic() - code.issued > self.code_lifetime:
            return 400, {"error": "invalid_grant", "error_description": "Authorization code expired"}
        if form.get("redirect_uri") != code.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri does not match"}
        if code.challenge is not None:
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).decode().rstrip("=") != code.challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        refresh = f"rt-{secrets.token_urlsafe(24)}"
        self.refresh_tokens[refresh] = client.client_id
        answer: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 600,
            "refresh_token": refresh,
            "scope": code.scope,
        }
        if self.refresh_token_expires_in is not None:
            answer["refresh_token_expires_in"] = self.refresh_token_expires_in
        return 200, answer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/authorize":
            self._send(404, {}, "not found")
            return
        status, headers, body = self.server.provider.authorize({k: v[0] for k, v in parse_qs(parts.query).items()})
        self.server.provider.authorize_pages.append(status)
        self._send(status, headers, body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        form = {k: v[0] for k, v in parse_qs(body).items()}
        status, answer = self.server.provider.token(form, self.headers.get("Authorization"))
        self._send(status, {"Content-Type": "application/json"}, json.dumps(answer))

    def _send(self, status: int, headers: dict[str, str], body: str) -> None:
        data = body.encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    provider: OAuthProvider


@contextmanager
def oauth_provider(*clients: Client) -> Iterator[OAuthProvider]:
    """Serve an :class:`OAuthProvider` for ``clients`` on 127.0.0.1 (a free port) until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.provider = OAuthProvider({c.client_id: c for c in clients})
    server.provider.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
