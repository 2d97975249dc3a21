"""The one error of the consent flows, and what each OAuth error code a provider answers means for the user.

RFC 6749 names the errors (section 4.1.2.1 for the redirect, 5.2 for the token endpoint); Google and Snowflake
use those names. Each becomes one line saying what happened and what to do, printed by the CLI as ``error: ...``
(exit code 2). No message ever contains a code, a token or a client secret.
"""

from __future__ import annotations

from planhat_pipelines.errors import PlanhatPipelinesError


class OAuthError(PlanhatPipelinesError):
    """The consent flow did not end with a refresh token: refused, redirected wrongly, or the code was refused."""


def redirect_error(provider: str, error: str, description: str, redirect_uri: str) -> OAuthError:
    """The error for a redirect that came back with ``error=...`` instead of a code.

    Args:
        provider: Who was asked ("Google", "Snowflake").
        error: The ``error`` parameter of the redirect.
        description: Its ``error_description`` ("" when absent).
        redirect_uri: The loopback URI the redirect reached.
    """
    said = f"{error}: {description}" if description else error
    if error == "access_denied":
        return OAuthError(
            f"consent was refused at {provider} ({said})",
            fix="run the command again and choose Allow on the consent page, signed in as the account that "
            "should own the refresh token",
        )
    if error in ("invalid_scope", "unauthorized_client"):
        return OAuthError(
            f"{provider} refused the request ({said})",
            fix="check that the OAuth client may ask for these scopes (for Snowflake: the role is allowed by "
            "the security integration and granted to the user)",
        )
    return OAuthError(
        f"{provider} redirected to {redirect_uri} with an error ({said})",
        fix="read the provider's description above; run the command again once it is fixed",
    )


def token_error(provider: str, error: str, description: str, redirect_uri: str) -> OAuthError:
    """The error for a token endpoint that refused to exchange the authorization code.

    Args:
        provider: Who was asked ("Google", "Snowflake").
        error: The ``error`` field of the token endpoint's answer.
        description: Its ``error_description`` ("" when absent).
        redirect_uri: The redirect URI the code was issued for.
    """
    said = f"{error}: {description}" if description else error
    if error == "invalid_grant":
        return OAuthError(
            f"{provider} refused the authorization code ({said}): it expired, was already used, or was issued "
            f"for another redirect URI than {redirect_uri}",
            fix="run the command again and finish the consent at once (codes live a few minutes and work once); "
            "do not reload the page the redirect opened",
        )
    if error in ("invalid_client", "unauthorized_client"):
        return OAuthError(
            f"{provider} refused the OAuth client ({said})",
            fix="check the client id and secret (for Snowflake: SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS"
            "('<integration>'); for Google: download the client's JSON again)",
        )
    if error == "redirect_uri_mismatch" or "redirect" in description.lower():
        return OAuthError(
            f"{provider} refused the redirect URI {redirect_uri} ({said})",
            fix=f"register {redirect_uri} as a redirect URI of the OAuth client, or pass --port with the port of "
            "the one registered",
        )
    return OAuthError(
        f"{provider}'s token endpoint refused the code ({said})",
        fix="read the provider's description above; run the command again once it is fixed",
    )


def no_redirect_error(redirect_uri: str, timeout: float) -> OAuthError:
    """The error when nothing came back to the loopback server in time (a provider that refuses an unregistered
    redirect URI shows its error page in the browser and never redirects, so this is also how that looks here)."""
    return OAuthError(
        f"no consent redirect reached {redirect_uri} within {timeout:g} s",
        fix=f"open the consent URL and choose Allow; if the provider's page said redirect_uri_mismatch (or "
        f"'invalid redirect_uri'), register {redirect_uri} as a redirect URI of the OAuth client (Snowflake: "
        "OAUTH_REDIRECT_URI of the security integration) or pass --port with the port of the one registered; "
        "--timeout gives more time",
    )
