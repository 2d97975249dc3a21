"""``planhat-pipelines auth bigquery|snowflake``: OAuth consent on this machine, the refresh token stored.

What the user reads (the redirect URI to register, the consent URL, what to put in the config) goes to stderr;
stdout gets the results. The refresh token itself is written only where asked: ``--token-file PATH`` (mode
0600; stdout then says ``export VAR="$(cat PATH)"``), or ``--print-token``, which prints ``export VAR=<token>``
as the only line on stdout, so ``eval "$(planhat-pipelines auth ... --print-token)"`` sets it. Nothing here
logs: the token never reaches stderr, a log or an error message.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path

from planhat_pipelines.oauth import OAuthError, RefreshToken, write_token_file


def _announce(args: argparse.Namespace) -> Callable[[str, str], None]:
    def announce(redirect_uri: str, consent_url: str) -> None:
        err = sys.stderr
        print(f"Redirect URI (registered with the OAuth client): {redirect_uri}", file=err)
        print("Open this URL in a browser and consent:", file=err)
        print(f"  {consent_url}", file=err)
        print(f"Waiting up to {args.timeout:g} s for the redirect to {redirect_uri} ...", file=err, flush=True)
        if args.browser:
            webbrowser.open(consent_url)

    return announce


def _store(args: argparse.Namespace, token: RefreshToken, config_lines: list[str]) -> None:
    """Write or print the token as asked, then say what the config needs (no secret in what is said)."""
    var = args.env_var
    if args.token_file is not None:
        path = write_token_file(Path(args.token_file), token)
        out = sys.stdout
        print(f"Wrote the refresh token to {path} (readable by you only). Set the variable with:", file=out)
        print(f'  export {var}="$(cat {shlex.quote(str(path))})"', file=out)
    else:
        out = sys.stderr  # stdout holds only the export line
        print(f"export {var}={shlex.quote(token.value)}", flush=True)
    print("and in the connection of the config file:", file=out)
    for line in [f"oauth_refresh_token: {{env: {var}}}", *config_lines]:
        print(f"  {line}", file=out)
    out.flush()


def _bigquery(args: argparse.Namespace) -> int:
    from planhat_pipelines.oauth.google import client_config, google_consent
    from planhat_pipelines.warehouses.bigquery.auth import DEFAULT_OAUTH_TOKEN_URI, SCOPES

    token = google_consent(
        Path(args.client_secrets), SCOPES, port=args.port, timeout=args.timeout, announce=_announce(args)
    )
    config = client_config(Path(args.client_secrets))
    token_uri = str(next(iter(config.values()))["token_uri"])
    lines = [
        "auth: oauth",
        "oauth_client_id: {env: ...}        # the client_id in " + str(args.client_secrets),
        "oauth_client_secret: {env: ...}    # its client_secret",
    ]
    if token_uri != DEFAULT_OAUTH_TOKEN_URI:
        lines.append(f"oauth_token_uri: {token_uri}")
    _store(args, token, lines)
    return 0


def _env_value(option: str, name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise OAuthError(
            f"{option} {name}: the environment variable is empty or unset",
            fix=f"export {name}=... (the integration's values: SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS"
            "('<integration>')), or name another variable with " + option,
        )
    return value


def _snowflake(args: argparse.Namespace) -> int:
    from planhat_pipelines.oauth import snowflake as flow

    token_uri = args.token_url or flow.token_url(args.account)
    scope = "refresh_token" + (f" session:role:{args.role}" if args.role else "")
    token = flow.snowflake_consent(
        authorize=args.authorize_url or flow.authorize_url(args.account),
        token=token_uri,
        client_id=_env_value("--client-id-env", args.client_id_env),
        client_secret=_env_value("--client-secret-env", args.client_secret_env),
        scope=scope,
        port=args.port,
        timeout=args.timeout,
        valid_days=args.valid_days,
        announce=_announce(args),
    )
    assert token.expires_at is not None  # Snowflake's refresh tokens always lapse
    lines = [
        "auth: oauth",
        f"oauth_client_id: {{env: {args.client_id_env}}}",
        f"oauth_client_secret: {{env: {args.client_secret_env}}}",
        f"oauth_refresh_token_expires: {token.expires_at.date().isoformat()}"
        "   # the credentials sensor warns health.warn_days before",
    ]
    if args.token_url:
        lines.append(f"oauth_token_uri: {token_uri}")
    _store(args, token, lines)
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _common(parser: argparse.ArgumentParser, *, port: int, port_help: str, env_var: str) -> None:
    parser.add_argument("--port", type=int, default=port, help=port_help)
    parser.add_argument(
        "--timeout", type=_positive, default=300.0, help="seconds to wait for the consent (default 300)"
    )
    parser.add_argument(
        "--browser", action="store_true", help="also open the consent URL in the default browser (default: print it)"
    )
    parser.add_argument(
        "--env-var", default=env_var, help=f"the variable the config's {{env: ...}} names (default {env_var})"
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--token-file", metavar="PATH", help="write the refresh token to PATH, readable by you only")
    where.add_argument(
        "--print-token",
        action="store_true",
        help="print `export VAR=<token>` as the only stdout line (for eval; nothing else shows the token)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``auth bigquery`` and ``auth snowflake`` to the CLI."""
    auth = sub.add_parser("auth", help="OAuth consent for a bigquery or snowflake connection: get a refresh token")
    which = auth.add_subparsers(dest="provider", required=True)
    bigquery = which.add_parser(
        "bigquery",
        help="Google's installed-app flow (a Desktop app OAuth client) with the redirect on 127.0.0.1",
    )
    bigquery.add_argument(
        "--client-secrets", required=True, metavar="FILE", help="the OAuth client's JSON from Google Cloud console"
    )
    _common(
        bigquery,
        port=0,
        port_help="the redirect port (default 0: a free one, which Desktop app clients accept; a Web client needs "
        "the port of its registered http://127.0.0.1:PORT/)",
        env_var="BIGQUERY_OAUTH_REFRESH_TOKEN",
    )
    bigquery.set_defaults(handler=_bigquery)

    from planhat_pipelines.oauth.snowflake import DEFAULT_PORT, DEFAULT_VALID_DAYS

    snowflake = which.add_parser(
        "snowflake", help="a Snowflake OAuth security integration's authorization-code flow (refresh token)"
    )
    snowflake.add_argument("--account", required=True, help="the account identifier, e.g. myorg-myaccount")
    snowflake.add_argument(
        "--client-id-env", default="SNOWFLAKE_OAUTH_CLIENT_ID", help="the variable holding the client id"
    )
    snowflake.add_argument(
        "--client-secret-env", default="SNOWFLAKE_OAUTH_CLIENT_SECRET", help="the variable holding a client secret"
    )
    snowflake.add_argument("--role", help="the session role the token is for (scope session:role:ROLE)")
    snowflake.add_argument("--authorize-url", help="default https://<account>.snowflakecomputing.com/oauth/authorize")
    snowflake.add_argument("--token-url", help="default https://<account>.snowflakecomputing.com/oauth/token-request")
    snowflake.add_argument(
        "--valid-days",
        type=int,
        help="the integration's OAUTH_REFRESH_TOKEN_VALIDITY in days (default: what the token answer says, "
        f"else {DEFAULT_VALID_DAYS})",
    )
    _common(
        snowflake,
        port=DEFAULT_PORT,
        port_help=f"the redirect port: the integration's OAUTH_REDIRECT_URI must be http://127.0.0.1:PORT/ "
        f"(default {DEFAULT_PORT})",
        env_var="SNOWFLAKE_OAUTH_REFRESH_TOKEN",
    )
    snowflake.set_defaults(handler=_snowflake)
