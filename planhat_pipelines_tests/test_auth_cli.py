"""``planhat-pipelines auth``: the consent flows end to end against an OAuth provider on 127.0.0.1.

The CLI runs in-process in a thread (it waits on its loopback server); this thread plays the browser with
requests: it opens the consent URL the CLI printed, the provider redirects to the CLI's loopback server, which
exchanges the code while the "browser" waits. Then the token is used: the Snowflake connection refreshes it at
the provider and connects to fakesnow, and its recorded expiry makes the health check say ``expiring``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from planhat_pipelines.cli import main
from planhat_pipelines.config import ConnectionConfig
from planhat_pipelines.errors import ConfigError
from planhat_pipelines.health import check_connection
from planhat_pipelines.warehouses.factory import open_warehouse
from planhat_pipelines_tests.builders import config_doc, parse
from planhat_pipelines_tests.emulators.snowflake import SnowflakeHarness
from planhat_pipelines_tests.oauth_provider import Client, OAuthProvider, oauth_provider
from tools.emulators.processes import free_port

GOOGLE = Client("desktop.apps.example", "google-client-secret", any_loopback_port=True)
SF_ID, SF_SECRET = "SF/client+id", "sf-secret=="  # characters Basic auth must form-encode


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[OAuthProvider]:
    # oauthlib refuses plain-http endpoints unless told; the test provider is http on 127.0.0.1.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("SNOWFLAKE_OAUTH_CLIENT_ID", SF_ID)
    monkeypatch.setenv("SNOWFLAKE_OAUTH_CLIENT_SECRET", SF_SECRET)
    port = free_port()
    snowflake = Client(SF_ID, SF_SECRET, redirect_uris=(f"http://127.0.0.1:{port}/",))
    with oauth_provider(GOOGLE, snowflake) as server:
        server.snowflake_port = port  # type: ignore[attr-defined]
        yield server


def _client_secrets(tmp_path: Path, provider: OAuthProvider, kind: str = "installed", **extra: Any) -> Path:
    path = tmp_path / "client_secret.json"
    client = {
        "client_id": GOOGLE.client_id,
        "client_secret": GOOGLE.client_secret,
        "auth_uri": provider.authorize_url,
        "token_uri": provider.token_url,
        **extra,
    }
    path.write_text(json.dumps({kind: client}))
    return path


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    page: requests.Response | None


def _run(argv: list[str], browse: Callable[[str], requests.Response | None]) -> Run:
    """Run the CLI in a thread; once it printed the consent URL, ``browse`` plays the browser with it."""
    out, err = io.StringIO(), io.StringIO()
    result: list[int] = []
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        cli = threading.Thread(target=lambda: result.append(main(argv)), daemon=True)
        cli.start()
        deadline = time.monotonic() + 10
        found = None
        while found is None and cli.is_alive() and time.monotonic() < deadline:
            found = re.search(r"^  (http\S+)$", err.getvalue(), re.MULTILINE)
            time.sleep(0.01)
        page = browse(found.group(1)) if found else None
        cli.join(timeout=15)
    assert not cli.is_alive(), "the CLI is still waiting"
    return Run(result[0], out.getvalue(), err.getvalue(), page)


def _browser(url: str) -> requests.Response:
    return requests.get(url, timeout=10)  # follows the provider's redirect to the CLI's loopback server


def _snowflake_args(provider: OAuthProvider, *more: str) -> list[str]:
    return [
        "auth",
        "snowflake",
        "--account",
        "acme-test",
        "--authorize-url",
        provider.authorize_url,
        "--token-url",
        provider.token_url,
        "--port",
        str(provider.snowflake_port),  # type: ignore[attr-defined]
        "--timeout",
        "5",
        *more,
    ]


def _only_token(provider: OAuthProvider) -> str:
    assert len(provider.refresh_tokens) == 1
    return next(iter(provider.refresh_tokens))


# --- BigQuery (Google's installed-app flow) -------------------------------------------------------------------
def test_bigquery_consent_writes_an_owner_only_token_file(tmp_path: Path, provider: OAuthProvider) -> None:
    token_file = tmp_path / "bq.token"
    secrets_file = _client_secrets(tmp_path, provider)
    args = ["auth", "bigquery", "--client-secrets", str(secrets_file), "--token-file", str(token_file)]
    run = _run([*args, "--timeout", "5"], _browser)
    assert run.code == 0, run.stderr
    token = _only_token(provider)
    assert token_file.read_text() == token + "\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    redirect = re.search(r"Redirect URI \(registered with the OAuth client\): (http://127\.0\.0\.1:\d+/)", run.stderr)
    assert redirect is not None
    assert f'export BIGQUERY_OAUTH_REFRESH_TOKEN="$(cat {token_file})"' in run.stdout
    assert "oauth_refresh_token: {env: BIGQUERY_OAUTH_REFRESH_TOKEN}" in run.stdout
    assert f"oauth_token_uri: {provider.token_url}" in run.stdout
    # The secret is in the file only: not on stdout, stderr or the browser's page.
    assert run.page is not None and run.page.status_code == 200 and "refresh token was obtained" in run.page.text
    assert token not in run.stdout + run.stderr + run.page.text
    assert GOOGLE.client_secret not in run.stdout + run.stderr
    assert provider.grants == ["authorization_code"]  # with PKCE, checked by the provider


def test_bigquery_print_token_prints_only_the_export_line(tmp_path: Path, provider: OAuthProvider) -> None:
    args = ["auth", "bigquery", "--client-secrets", str(_client_secrets(tmp_path, provider)), "--print-token"]
    run = _run([*args, "--env-var", "BQ_RT", "--timeout", "5"], _browser)
    assert run.code == 0, run.stderr
    assert run.stdout == f"export BQ_RT={_only_token(provider)}\n"
    assert _only_token(provider) not in run.stderr and "oauth_refresh_token: {env: BQ_RT}" in run.stderr


def test_refused_consent_says_so(tmp_path: Path, provider: OAuthProvider) -> None:
    provider.decision = "deny"
    args = ["auth", "bigquery", "--client-secrets", str(_client_secrets(tmp_path, provider)), "--print-token"]
    run = _run([*args, "--timeout", "5"], _browser)
    assert run.code == 2 and run.stdout == ""
    assert "error: consent was refused at Google (access_denied: The user denied access)" in run.stderr
    assert "choose Allow" in run.stderr
    assert run.page is not None and run.page.status_code == 400 and "consent was refused" in run.page.text


def test_a_redirect_with_another_state_is_refused(tmp_path: Path, provider: OAuthProvider) -> None:
    def stale_tab(url: str) -> requests.Response:
        redirect_uri = re.search(r"redirect_uri=([^&]+)", url)
        assert redirect_uri is not None
        loopback = requests.utils.unquote(redirect_uri.group(1))
        return requests.get(f"{loopback}?code=abc&state=from-an-earlier-run", timeout=10)

    token_file = tmp_path / "token"
    args = ["auth", "bigquery", "--client-secrets", str(_client_secrets(tmp_path, provider))]
    run = _run([*args, "--token-file", str(token_file), "--timeout", "5"], stale_tab)
    assert run.code == 2
    assert "carried another state than this run's consent URL" in run.stderr
    assert "open the consent URL this run printed" in run.stderr
    assert not token_file.exists() and provider.grants == []


def test_a_web_client_without_the_redirect_uri_is_refused_before_consent(
    tmp_path: Path, provider: OAuthProvider
) -> None:
    secrets_file = _client_secrets(tmp_path, provider, "web", redirect_uris=["http://127.0.0.1:1/"])
    port = free_port()
    run = _run(
        ["auth", "bigquery", "--client-secrets", str(secrets_file), "--print-token", "--port", str(port)], _browser
    )
    assert run.code == 2 and run.page is None
    assert f"does not list http://127.0.0.1:{port}/ among its redirect URIs" in run.stderr
    assert f"add http://127.0.0.1:{port}/ to the client's authorised redirect URIs" in run.stderr


def test_a_bad_client_secrets_file_says_where_to_get_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    assert main(["auth", "bigquery", "--client-secrets", str(missing), "--print-token"]) == 2
    assert f"error: --client-secrets {missing} does not exist. Fix: download the OAuth client's JSON" in (
        capsys.readouterr().err
    )
    service_account = tmp_path / "key.json"
    service_account.write_text(json.dumps({"type": "service_account", "client_email": "x@y"}))
    assert main(["auth", "bigquery", "--client-secrets", str(service_account), "--print-token"]) == 2
    assert "has no 'installed' or 'web' OAuth client" in capsys.readouterr().err


# --- Snowflake (authorization code, refresh token with an expiry) ---------------------------------------------
def test_snowflake_consent_records_the_expiry(tmp_path: Path, provider: OAuthProvider) -> None:
    provider.refresh_token_expires_in = 90 * 86400
    token_file = tmp_path / "sf.token"
    run = _run(_snowflake_args(provider, "--role", "ANALYST", "--token-file", str(token_file)), _browser)
    assert run.code == 0, run.stderr
    token = _only_token(provider)
    assert token_file.read_text() == token + "\n" and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    expires = (datetime.now(UTC) + timedelta(days=90)).date()
    assert f"oauth_refresh_token_expires: {expires.isoformat()}" in run.stdout
    assert f"Redirect URI (registered with the OAuth client): http://127.0.0.1:{provider.snowflake_port}/" in run.stderr  # type: ignore[attr-defined]
    assert "scope=refresh_token+session%3Arole%3AANALYST" in run.stderr
    assert token not in run.stdout + run.stderr and SF_SECRET not in run.stdout + run.stderr
    # --valid-days wins over the answer (an integration with a shorter OAUTH_REFRESH_TOKEN_VALIDITY).
    run = _run(_snowflake_args(provider, "--valid-days", "30", "--print-token"), _browser)
    assert f"oauth_refresh_token_expires: {(datetime.now(UTC) + timedelta(days=30)).date()}" in run.stderr


def test_an_unregistered_redirect_uri_names_the_uri_to_register(tmp_path: Path, provider: OAuthProvider) -> None:
    port = free_port()
    args = _snowflake_args(provider, "--print-token")
    args[args.index("--port") + 1], args[args.index("--timeout") + 1] = str(port), "0.5"
    run = _run(args, _browser)
    # The provider showed its error page and never redirected: the CLI's wait ran out.
    assert run.page is not None and run.page.status_code == 400 and "redirect_uri_mismatch" in run.page.text
    assert run.code == 2 and run.stdout == ""
    assert f"no consent redirect reached http://127.0.0.1:{port}/ within 0.5 s" in run.stderr
    assert f"register http://127.0.0.1:{port}/ as a redirect URI" in run.stderr


def test_an_expired_code_says_to_run_again(tmp_path: Path, provider: OAuthProvider) -> None:
    provider.code_lifetime = 0.0
    run = _run(_snowflake_args(provider, "--print-token"), _browser)
    assert run.code == 2 and run.stdout == ""
    assert "error: Snowflake refused the authorization code (invalid_grant: Authorization code expired)" in run.stderr
    assert "run the command again and finish the consent at once" in run.stderr
    assert run.page is not None and "auth failed" in run.page.text


def test_snowflake_without_the_client_secret_variable_says_which(
    provider: OAuthProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SNOWFLAKE_OAUTH_CLIENT_SECRET")
    run = _run(_snowflake_args(provider, "--print-token"), _browser)
    assert run.code == 2 and "--client-secret-env SNOWFLAKE_OAUTH_CLIENT_SECRET" in run.stderr


# --- the token in use: connect, expiry, health --------------------------------------------------------------
def _oauth_connection(
    tmp_path: Path, harness: SnowflakeHarness, provider: OAuthProvider, expires: date
) -> ConnectionConfig:
    """The harness's fakesnow connection with ``auth: oauth`` (SNOWFLAKE_OAUTH_REFRESH_TOKEN set by the test)."""
    settings = {k: v for k, v in harness.connection_config().items() if k != "password"}
    settings.update(
        auth="oauth",
        oauth_client_id={"env": "SNOWFLAKE_OAUTH_CLIENT_ID"},
        oauth_client_secret={"env": "SNOWFLAKE_OAUTH_CLIENT_SECRET"},
        oauth_refresh_token={"env": "SNOWFLAKE_OAUTH_REFRESH_TOKEN"},
        oauth_token_uri=provider.token_url,
        oauth_refresh_token_expires=expires.isoformat(),
    )
    return parse(config_doc(tmp_path, connections={"sf": settings}), tmp_path).connection("sf")


def test_an_oauth_token_near_its_expiry_is_expiring(
    tmp_path: Path, provider: OAuthProvider, snowflake_harness: SnowflakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "sf.token"
    assert _run(_snowflake_args(provider, "--token-file", str(token_file)), _browser).code == 0
    monkeypatch.setenv("SNOWFLAKE_OAUTH_REFRESH_TOKEN", token_file.read_text().strip())
    now = datetime.now(UTC)
    near = _oauth_connection(tmp_path, snowflake_harness, provider, (now + timedelta(days=5)).date())
    status = check_connection(near, now)
    assert status.status == "expiring", status.describe()
    assert "the OAuth refresh token's expiry" in (status.error or "")
    assert "planhat-pipelines auth snowflake" in (status.fix or "") and "SNOWFLAKE_OAUTH_REFRESH_TOKEN" in (
        status.fix or ""
    )
    assert provider.grants[-1] == "refresh_token"  # the connection exchanged the token for an access token
    far = _oauth_connection(tmp_path, snowflake_harness, provider, (now + timedelta(days=60)).date())
    assert check_connection(far, now).status == "ok"


def test_a_revoked_refresh_token_is_failing_with_reauthorise(tmp_path: Path, provider: OAuthProvider) -> None:
    settings = {
        "type": "snowflake",
        "account": "acme-test",
        "user": "PLANHAT_SYNC",
        "database": "ANALYTICS",
        "schema": "PLANHAT",
        "auth": "oauth",
        "oauth_client_id": {"env": "SNOWFLAKE_OAUTH_CLIENT_ID"},
        "oauth_client_secret": {"env": "SNOWFLAKE_OAUTH_CLIENT_SECRET"},
        "oauth_refresh_token": {"env": "SNOWFLAKE_OAUTH_REFRESH_TOKEN"},
        "oauth_token_uri": provider.token_url,
        "host": "127.0.0.1",
        "port": 9,  # never reached: the refresh fails first
        "protocol": "http",
    }
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SNOWFLAKE_OAUTH_REFRESH_TOKEN", "rt-revoked")
        connection = parse(config_doc(tmp_path, connections={"sf": settings}), tmp_path).connection("sf")
        status = check_connection(connection, datetime.now(UTC))
    assert status.status == "failing"
    assert "invalid_grant: Refresh token is invalid or expired" in (status.error or "")
    assert "re-authorise: run `planhat-pipelines auth snowflake`" in (status.fix or "")
    assert "rt-revoked" not in status.describe()


def test_oauth_settings_are_checked_when_the_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"type": "snowflake", "account": "a", "user": "u", "database": "d", "schema": "s"}
    monkeypatch.setenv("SNOWFLAKE_OAUTH_CLIENT_ID", "id")
    monkeypatch.setenv("PW", "pw")
    with pytest.raises(ConfigError, match=r"oauth_client_secret.*is missing.*SNOWFLAKE_OAUTH_CLIENT_SECRET"):
        parse(
            config_doc(
                tmp_path,
                connections={"sf": {**base, "auth": "oauth", "oauth_client_id": {"env": "SNOWFLAKE_OAUTH_CLIENT_ID"}}},
            ),
            tmp_path,
        )
    with pytest.raises(ConfigError, match=r"oauth_refresh_token_expires.*only read with 'auth: oauth'"):
        parse(
            config_doc(
                tmp_path,
                connections={"sf": {**base, "password": {"env": "PW"}, "oauth_refresh_token_expires": "2027-01-01"}},
            ),
            tmp_path,
        )


def test_every_oauth_connection_logs_in_with_a_fresh_access_token(
    tmp_path: Path, provider: OAuthProvider, snowflake_harness: SnowflakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An access token lives minutes: a connection made long after the adapter opened must not reuse its token."""
    token_file = tmp_path / "sf.token"
    assert _run(_snowflake_args(provider, "--token-file", str(token_file)), _browser).code == 0
    monkeypatch.setenv("SNOWFLAKE_OAUTH_REFRESH_TOKEN", token_file.read_text().strip())
    connection = _oauth_connection(
        tmp_path, snowflake_harness, provider, (datetime.now(UTC) + timedelta(days=60)).date()
    )
    with open_warehouse(connection) as warehouse:
        opened = provider.grants.count("refresh_token")
        warehouse.probe()
        warehouse.close()
        warehouse.probe()  # a second connection
    assert provider.grants.count("refresh_token") == opened + 2
