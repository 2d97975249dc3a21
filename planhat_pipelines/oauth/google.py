"""Google's installed-app consent (google-auth-oauthlib) with the redirect on 127.0.0.1.

The client secrets file is the JSON Google Cloud console downloads for an OAuth client ("Desktop app": any
loopback port is accepted; "Web application": only the redirect URIs registered). Its ``auth_uri`` and
``token_uri`` are used as written, so the same code runs against a provider on 127.0.0.1 in the tests
(oauthlib refuses plain-http endpoints unless ``OAUTHLIB_INSECURE_TRANSPORT`` is set, which the tests do).
``prompt=consent`` and ``access_type=offline`` make Google return a refresh token even to a user who
consented before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from google_auth_oauthlib.flow import InstalledAppFlow
from oauthlib.oauth2.rfc6749.errors import InsecureTransportError, OAuth2Error

from planhat_pipelines.oauth.errors import OAuthError, token_error
from planhat_pipelines.oauth.loopback import LoopbackRedirect
from planhat_pipelines.oauth.tokens import RefreshToken

_CLIENT_KEYS = ("client_id", "client_secret", "auth_uri", "token_uri")
_DOWNLOAD = (
    "download the OAuth client's JSON from Google Cloud console (APIs & Services > Credentials > OAuth 2.0 "
    "Client IDs; type Desktop app) and pass its path"
)


def client_config(path: Path) -> dict[str, Any]:
    """The client secrets file's JSON, checked: one ``installed`` or ``web`` client with the keys the flow needs.

    Raises:
        OAuthError: The file is missing, not JSON, or not a Google OAuth client secrets file.
    """
    where = f"--client-secrets {path}"
    try:
        config = json.loads(path.expanduser().read_text())
    except FileNotFoundError:
        raise OAuthError(f"{where} does not exist", fix=_DOWNLOAD) from None
    except OSError as exc:
        raise OAuthError(f"{where} cannot be read ({exc.strerror})", fix="check the file's permissions") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise OAuthError(f"{where} is not JSON", fix=_DOWNLOAD) from None
    kind = next((k for k in ("installed", "web") if isinstance(config, dict) and k in config), None)
    client = config.get(kind) if kind else None
    if not isinstance(client, dict):
        raise OAuthError(f"{where} has no 'installed' or 'web' OAuth client", fix=_DOWNLOAD)
    missing = [k for k in _CLIENT_KEYS if not client.get(k)]
    if missing:
        raise OAuthError(f"{where}: the '{kind}' client has no {', '.join(missing)}", fix=_DOWNLOAD)
    return config


def _check_registered(config: dict[str, Any], redirect_uri: str, path: Path) -> None:
    """A web client only redirects to the URIs registered for it: say so before the user consents."""
    registered = config.get("web", {}).get("redirect_uris")
    if registered is None or redirect_uri.rstrip("/") in {str(u).rstrip("/") for u in registered}:
        return
    raise OAuthError(
        f"the web OAuth client in {path} does not list {redirect_uri} among its redirect URIs "
        f"({', '.join(registered)})",
        fix=f"add {redirect_uri} to the client's authorised redirect URIs in Google Cloud console and download its "
        "JSON again, or pass --port with the port of a registered http://127.0.0.1:PORT/ (or use a Desktop app "
        "client)",
    )


def _exchange(flow: InstalledAppFlow, code: str, token_uri: str) -> RefreshToken:
    issued = datetime.now(UTC)
    try:
        token = flow.fetch_token(code=code)
    except InsecureTransportError:
        raise OAuthError(f"token_uri {token_uri} is not https", fix="use the token_uri Google's file gives") from None
    except OAuth2Error as exc:
        raise token_error("Google", exc.error, exc.description or "", flow.redirect_uri) from None
    except Warning as exc:  # oauthlib: "Scope has changed from ... to ..." (some access was unticked)
        raise OAuthError(
            f"Google granted other scopes than asked ({exc})",
            fix="run the command again and allow all the access the consent page lists",
        ) from None
    except requests.RequestException as exc:
        raise OAuthError(
            f"cannot reach Google's token endpoint {token_uri} ({type(exc).__name__})",
            fix="check the network (and a proxy), then run the command again",
        ) from None
    refresh = token.get("refresh_token")
    if not refresh:
        raise OAuthError(
            "Google returned no refresh token",
            fix="remove the app's access at https://myaccount.google.com/permissions, then run the command again",
        )
    return RefreshToken(str(refresh), issued)


def google_consent(
    client_secrets: Path,
    scopes: Sequence[str],
    *,
    port: int,
    timeout: float,
    announce: Callable[[str, str], None],
) -> RefreshToken:
    """Run the installed-app flow once and return the refresh token.

    Args:
        client_secrets: The OAuth client's JSON file.
        scopes: The scopes to ask for.
        port: The loopback port (0: a free one).
        timeout: Seconds to wait for the consent.
        announce: Called with (redirect URI, consent URL) once both are known, before waiting.

    Raises:
        OAuthError: A bad secrets file, an unregistered redirect URI, refused consent, a refused code, a timeout.
    """
    config = client_config(client_secrets)
    flow = InstalledAppFlow.from_client_config(config, scopes=list(scopes))
    with LoopbackRedirect[RefreshToken](port, "Google") as loopback:
        _check_registered(config, loopback.redirect_uri, client_secrets)
        flow.redirect_uri = loopback.redirect_uri
        try:
            url, state = flow.authorization_url(prompt="consent")
        except InsecureTransportError:
            raise OAuthError(
                f"auth_uri {flow.client_config['auth_uri']} is not https", fix="use the auth_uri Google's file gives"
            ) from None
        announce(loopback.redirect_uri, url)
        token_uri = str(flow.client_config["token_uri"])
        return loopback.wait(state, timeout, lambda code: _exchange(flow, code, token_uri))
