"""BigQuery credentials from the config: service-account keys, OAuth refresh tokens, application defaults.

Env vars and key files are read when these functions are called (by :func:`open_bigquery`), never at import.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import google.auth
import google.auth.exceptions
from google.auth.credentials import AnonymousCredentials
from google.auth.credentials import Credentials as BaseCredentials

from planhat_pipelines.config import BigQuerySettings, EnvRef
from planhat_pipelines.errors import CredentialsError
from planhat_pipelines.warehouses.bigquery.client_errors import credentials_problem

#: Where OAuth refresh tokens are exchanged unless the settings say otherwise.
DEFAULT_OAUTH_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: The OAuth scopes every credential asks for.
SCOPES = ("https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform")


def env_value(name: str, ref: EnvRef | None, setting: str) -> str:
    """The stripped value of the env var ``ref`` names for ``setting``; CredentialsError when empty or unset.

    Args:
        name: The connection's name, used in the message.
        ref: The setting's env var reference (None when the setting is missing).
        setting: The setting's name in the config.
    """
    value = ref.value().strip() if ref is not None else ""
    if not value:
        where = f"environment variable {ref.name}" if ref is not None else f"setting '{setting}'"
        raise CredentialsError(
            name, setting, f"{where} is empty or unset", f"set it ({'export ' + ref.name + '=...' if ref else setting})"
        )
    return value


def _key_text(name: str, ref: EnvRef | None) -> tuple[str, str]:
    """(key JSON text, where it came from) for the value of ``service_account_key``: a file path or base64."""
    value = env_value(name, ref, "service_account_key")
    var = ref.name if ref is not None else "service_account_key"
    path = Path(value).expanduser()
    looks_like_path = value.startswith(("/", "./", "../", "~")) or value.endswith(".json")
    try:
        is_file = path.is_file()
    except OSError:  # e.g. a base64 key is longer than a file name may be
        is_file = False
    if is_file:
        source = f"key file '{path}' (from {var})"
        try:
            text = path.read_text()
        except OSError as exc:
            raise CredentialsError(
                name, "service_account_key", f"{source} cannot be read ({exc})", "fix its permissions"
            ) from exc
    elif looks_like_path:
        raise CredentialsError(
            name,
            "service_account_key",
            f"key file '{path}' (from {var}) does not exist",
            f"point {var} at the downloaded JSON key file, or set it to the base64-encoded key JSON",
        )
    else:
        source = f"the base64 key in {var}"
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise CredentialsError(
                name,
                "service_account_key",
                f"{var} is neither an existing key file nor base64-encoded key JSON",
                f"set {var} to the key file's path or to the output of `base64 -w0 key.json`",
            ) from None
    return text, source


def service_account_info(name: str, ref: EnvRef | None) -> dict[str, Any]:
    """The key JSON from a key file path or base64-encoded JSON (as dagster-gcp's gcp_credentials takes).

    Args:
        name: The connection's name, used in every message.
        ref: The ``service_account_key`` env var reference.

    Returns:
        The key's JSON object, with ``__source__`` saying where it came from (for later messages).

    Raises:
        CredentialsError: The variable is empty, names a missing or unreadable file, or holds neither
            a key file path nor base64-encoded JSON, or the key is not a JSON object.
    """
    text, source = _key_text(name, ref)
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialsError(
            name,
            "service_account_key",
            f"{source} is not JSON ({exc.msg} at line {exc.lineno})",
            "download a new JSON key for the service account (rotate the key) and update the setting",
        ) from exc
    if not isinstance(info, dict):
        raise CredentialsError(
            name, "service_account_key", f"{source} is not a JSON object", "use the JSON key file Google issued"
        )
    info["__source__"] = source
    return info


def credentials_for(name: str, settings: BigQuerySettings) -> BaseCredentials:
    """The Google credentials ``settings.auth`` asks for, read now (env vars, key files).

    Args:
        name: The connection's name, used in every message.
        settings: The connection's settings from the config.

    Returns:
        Service-account, OAuth (refreshed on first use) or application default credentials;
        anonymous ones for ``auth: adc`` with a custom endpoint (the local emulator).

    Raises:
        CredentialsError: A key or token is missing or malformed, or no default credentials exist.
    """
    auth = settings.auth
    if auth == "service_account":
        from google.oauth2 import service_account

        info = service_account_info(name, settings.service_account_key)
        source = info.pop("__source__")
        try:
            return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        except (ValueError, KeyError) as exc:
            raise CredentialsError(
                name,
                "service_account_key",
                f"{source} is not a usable service-account key ({exc})",
                "download a new JSON key for the service account (rotate the key) and update the setting",
            ) from exc
    if auth == "oauth":
        from google.oauth2.credentials import Credentials as OAuthCredentials

        return OAuthCredentials(
            token=None,
            refresh_token=env_value(name, settings.oauth_refresh_token, "oauth_refresh_token"),
            client_id=env_value(name, settings.oauth_client_id, "oauth_client_id"),
            client_secret=env_value(name, settings.oauth_client_secret, "oauth_client_secret"),
            token_uri=settings.oauth_token_uri or DEFAULT_OAUTH_TOKEN_URI,
            scopes=list(SCOPES),
        )
    if auth == "adc":
        if settings.endpoint:
            # A custom endpoint is the local emulator: it takes no credentials.
            return AnonymousCredentials()
        try:
            credentials, _ = google.auth.default(scopes=list(SCOPES))
        except google.auth.exceptions.DefaultCredentialsError as exc:
            problem, fix = credentials_problem(exc) or (str(exc), "")
            raise CredentialsError(name, "auth: adc", problem, fix) from exc
        return credentials
    raise CredentialsError(name, "auth", f"unknown auth '{auth}'", "use service_account, oauth or adc")
