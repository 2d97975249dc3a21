"""Snowflake OAuth (a custom-client security integration): the consent flow and the refresh at connect time.

The integration (``CREATE SECURITY INTEGRATION ... TYPE = OAUTH OAUTH_CLIENT = CUSTOM
OAUTH_CLIENT_TYPE = 'CONFIDENTIAL' OAUTH_REDIRECT_URI = 'http://127.0.0.1:8765/' OAUTH_ISSUE_REFRESH_TOKENS =
TRUE``) accepts exactly its registered redirect URI, so the port is fixed by default. Snowflake's refresh tokens
lapse (``OAUTH_REFRESH_TOKEN_VALIDITY``, 90 days by default): the token answer's ``refresh_token_expires_in``
gives the expiry, else ``valid_days`` does. The endpoints speak RFC 6749 with the client authenticated by HTTP
Basic (id and secret form-encoded first, section 2.3.1) and PKCE (S256), written here with ``requests``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import requests

from planhat_pipelines.oauth.errors import OAuthError, token_error
from planhat_pipelines.oauth.loopback import LoopbackRedirect
from planhat_pipelines.oauth.tokens import RefreshToken

#: The validity of Snowflake refresh tokens unless the integration says otherwise (OAUTH_REFRESH_TOKEN_VALIDITY).
DEFAULT_VALID_DAYS = 90
#: The redirect port the README's integration registers.
DEFAULT_PORT = 8765


def account_url(account: str) -> str:
    """``https://<account>.snowflakecomputing.com``, the base of the OAuth endpoints."""
    return f"https://{account}.snowflakecomputing.com"


def authorize_url(account: str) -> str:
    return f"{account_url(account)}/oauth/authorize"


def token_url(account: str) -> str:
    return f"{account_url(account)}/oauth/token-request"


class TokenEndpointError(OAuthError):
    """The token endpoint refused a grant or could not be reached.

    Attributes:
        error: The RFC 6749 code it answered (``invalid_grant``, ...), or ours (``unreachable``, ``not_json``).
        description: Its ``error_description`` ("" when none).
        refused: Whether the endpoint answered and refused the grant (else it was unreachable or answered nonsense).
    """

    def __init__(
        self,
        message: str,
        *,
        fix: str,
        error: str,
        description: str = "",
        refused: bool = False,
        transient: bool = False,
    ) -> None:
        super().__init__(message, fix=fix)
        self.error = error
        self.description = description
        self.refused = refused
        self.transient = transient


def _post_token(url: str, client_id: str, client_secret: str, data: Mapping[str, str]) -> dict[str, Any]:
    """POST a grant to the token endpoint; the JSON answer, or TokenEndpointError with the provider's code."""
    auth = requests.auth.HTTPBasicAuth(quote(client_id, safe=""), quote(client_secret, safe=""))
    try:
        response = requests.post(url, data=dict(data), auth=auth, timeout=30, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise TokenEndpointError(
            f"cannot reach the token endpoint {url} ({type(exc).__name__})",
            fix="check the account name (or oauth_token_uri), the network and a proxy",
            error="unreachable",
            transient=True,
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise TokenEndpointError(
            f"the token endpoint {url} answered HTTP {response.status_code} without a JSON body",
            fix="check that the URL is the account's /oauth/token-request",
            error="not_json",
            transient=response.status_code >= 500,
        )
    if response.status_code >= 400 or "error" in answer:
        error = str(answer.get("error") or f"http_{response.status_code}")
        # Snowflake also answers {"message": ...} with a "code".
        description = str(answer.get("error_description") or answer.get("message") or "")
        raise TokenEndpointError(
            f"the token endpoint {url} refused the grant ({error}: {description})",
            fix="run `planhat-pipelines auth snowflake` again for a new refresh token",
            error=error,
            description=description,
            refused=True,
        )
    return answer


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def snowflake_consent(
    *,
    authorize: str,
    token: str,
    client_id: str,
    client_secret: str,
    scope: str,
    port: int,
    timeout: float,
    valid_days: int | None,
    announce: Callable[[str, str], None],
) -> RefreshToken:
    """Run the authorization-code flow once and return the refresh token with its expiry.

    Args:
        authorize: The authorization endpoint.
        token: The token endpoint.
        client_id: The integration's client id.
        client_secret: One of its client secrets.
        scope: The scopes (``refresh_token`` asks for one; ``session:role:NAME`` picks the role).
        port: The loopback port (the integration's OAUTH_REDIRECT_URI must be ``http://127.0.0.1:<port>/``).
        timeout: Seconds to wait for the consent.
        valid_days: The token's validity; None takes the answer's ``refresh_token_expires_in``, else 90 days.
        announce: Called with (redirect URI, consent URL) before waiting.

    Raises:
        OAuthError: Refused consent, another state, a refused code, no refresh token, or a timeout.
    """
    state = secrets.token_urlsafe(24)
    verifier, challenge = _pkce()
    with LoopbackRedirect[RefreshToken](port, "Snowflake") as loopback:
        redirect_uri = loopback.redirect_uri
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "scope": scope,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in authorize else "?"

        def exchange(code: str) -> RefreshToken:
            issued = datetime.now(UTC).replace(microsecond=0)
            grant = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
            try:
                answer = _post_token(token, client_id, client_secret, grant)
            except TokenEndpointError as exc:
                if not exc.refused:  # unreachable, not JSON: the message already says what to do
                    raise
                raise token_error("Snowflake", exc.error, exc.description, redirect_uri) from None
            refresh = answer.get("refresh_token")
            if not refresh:
                raise OAuthError(
                    "Snowflake returned no refresh token",
                    fix="add 'refresh_token' to --scope and check OAUTH_ISSUE_REFRESH_TOKENS = TRUE on the integration",
                )
            lifetime = answer.get("refresh_token_expires_in")
            if valid_days is not None or not isinstance(lifetime, int | float):
                lasts = timedelta(days=valid_days or DEFAULT_VALID_DAYS)
            else:
                lasts = timedelta(seconds=lifetime)
            return RefreshToken(str(refresh), issued, issued + lasts)

        announce(redirect_uri, f"{authorize}{separator}{urlencode(query)}")
        return loopback.wait(state, timeout, exchange)


def refresh_access_token(url: str, client_id: str, client_secret: str, refresh_token: str) -> str:
    """A fresh access token for ``refresh_token`` (what the connector's ``authenticator='oauth'`` takes).

    Raises:
        TokenEndpointError: The endpoint refused the grant (``invalid_grant``: the token lapsed or was revoked)
            or could not be reached (transient).
    """
    answer = _post_token(url, client_id, client_secret, {"grant_type": "refresh_token", "refresh_token": refresh_token})
    access = answer.get("access_token")
    if not access:
        raise TokenEndpointError(
            f"the token endpoint {url} answered without an access_token",
            fix="check that the URL is the account's /oauth/token-request",
            error="no_access_token",
        )
    return str(access)
