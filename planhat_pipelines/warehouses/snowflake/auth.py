"""Snowflake connection arguments from the config: password, key pair (a .p8 file or PEM text) or OAuth.

With ``auth: oauth`` the refresh token is exchanged for an access token at the token endpoint when the
arguments are built (the connector's ``authenticator='oauth'`` takes only an access token, which lives about
ten minutes); a lapsed or revoked refresh token is a CredentialsError whose fix is to run
``planhat-pipelines auth snowflake`` again.

Env vars and key files are read when these functions are called (by :func:`open_snowflake`), never at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planhat_pipelines.config import EnvRef, SnowflakeSettings
from planhat_pipelines.errors import CredentialsError

#: Login timeout used by :func:`open_snowflake` unless ``connect_args`` says otherwise (the connector's is 120 s).
#: 30 s keeps a credentials probe of an unreachable account inside Dagster's 60 s sensor evaluation limit.
DEFAULT_LOGIN_TIMEOUT = 30


def _private_key_pem(name: str, settings: SnowflakeSettings) -> tuple[bytes, str]:
    """(PEM bytes, where they came from): the .p8 file ``private_key_path`` names, else ``private_key``'s text."""
    if settings.private_key_path is not None and settings.private_key_path.value():
        path = Path(settings.private_key_path.value()).expanduser()
        source = f"private key file '{path}' (env {settings.private_key_path.name})"
        if not path.is_file():
            raise CredentialsError(
                name, source, "does not exist", f"set {settings.private_key_path.name} to the .p8 file"
            )
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise CredentialsError(name, source, f"cannot be read ({exc})", "check the file's permissions") from exc
    elif settings.private_key is not None and settings.private_key.value():
        source = f"private key in env {settings.private_key.name}"
        pem = settings.private_key.value().replace("\\n", "\n").encode()
    else:
        raise CredentialsError(
            name,
            "key pair",
            "no private key is set",
            "set the env var named by private_key_path (a .p8 file) or private_key (PEM text)",
        )
    return pem, source


def _private_key_der(name: str, settings: SnowflakeSettings) -> bytes:
    """The connection's private key, decrypted with its passphrase, as the DER the connector takes."""
    from cryptography.hazmat.primitives import serialization

    pem, source = _private_key_pem(name, settings)
    passphrase_ref = settings.private_key_passphrase
    passphrase = passphrase_ref.value().encode() if passphrase_ref is not None and passphrase_ref.value() else None
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError as exc:  # encrypted without a passphrase, or a passphrase for a plain key
        if passphrase is None:
            raise CredentialsError(
                name,
                source,
                "is encrypted but no passphrase is set",
                "add 'private_key_passphrase: {env: ...}' to the connection and set that variable",
            ) from exc
        raise CredentialsError(
            name,
            source,
            "is not encrypted but a passphrase is set",
            "remove private_key_passphrase from the connection",
        ) from exc
    except ValueError as exc:
        text = str(exc).lower()
        if passphrase is not None and ("password" in text or "decrypt" in text):
            raise CredentialsError(
                name,
                source,
                "cannot be decrypted with the passphrase",
                f"check the passphrase in {passphrase_ref.name if passphrase_ref else 'the passphrase variable'}",
            ) from exc
        raise CredentialsError(
            name,
            source,
            f"is not a readable PEM private key ({exc})",
            "use the PKCS#8 .p8 file generated for the Snowflake user (-----BEGIN ... PRIVATE KEY-----)",
        ) from exc
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def snowflake_connect_args(name: str, settings: SnowflakeSettings) -> tuple[dict[str, Any], str]:
    """The ``snowflake.connector.connect`` keyword arguments for ``settings`` and the fix for refused credentials.

    Reads the password or private key now (env vars, key file); raises CredentialsError naming
    what is missing or unreadable.
    """
    args: dict[str, Any] = {
        "account": settings.account,
        "user": settings.user,
        "database": settings.database,
        "schema": settings.schema,
        "paramstyle": "qmark",
        "application": "planhat_pipelines",
        "login_timeout": DEFAULT_LOGIN_TIMEOUT,
    }
    for field in ("warehouse", "role", "host", "port", "protocol"):
        value = getattr(settings, field)
        if value is not None:
            args[field] = value
    if settings.auth == "key_pair":
        args["authenticator"] = "SNOWFLAKE_JWT"
        args["private_key"] = _private_key_der(name, settings)
        fix = (
            f"check that the private key matches the public key registered for user {settings.user} "
            "(DESCRIBE USER shows RSA_PUBLIC_KEY_FP); if the key was rotated, update the key file or variable "
            "and its passphrase"
        )
    elif settings.auth == "password":
        ref = settings.password
        if ref is None or not ref.value():
            raise CredentialsError(
                name,
                f"user '{settings.user}'",
                f"no password is set{f' (env {ref.name} is empty)' if ref else ''}",
                f"set {ref.name if ref else 'the password env var'} to the user's password",
            )
        args["password"] = ref.value()
        fix = f"set {ref.name} to the current password of Snowflake user {settings.user}"
    elif settings.auth == "oauth":
        args["authenticator"] = "oauth"
        args["token"] = _oauth_access_token(name, settings)
        fix = _reauthorise(settings)
    else:
        raise CredentialsError(name, "auth", f"unknown auth '{settings.auth}'", "use 'password', 'key_pair' or 'oauth'")
    return args, fix


def _reauthorise(settings: SnowflakeSettings) -> str:
    var = settings.oauth_refresh_token.name if settings.oauth_refresh_token else "the refresh token's variable"
    return (
        "re-authorise: run `planhat-pipelines auth snowflake` for this integration, set "
        f"{var} to the new refresh token and oauth_refresh_token_expires to the date it prints"
    )


def _env(name: str, ref: EnvRef | None, setting: str) -> str:
    value = ref.value().strip() if ref is not None else ""
    if not value:
        where = f"environment variable {ref.name}" if ref is not None else f"setting '{setting}'"
        raise CredentialsError(name, setting, f"{where} is empty or unset", f"set it ({setting} of the connection)")
    return value


def _oauth_access_token(name: str, settings: SnowflakeSettings) -> str:
    """An access token for the connection's refresh token, from its token endpoint."""
    from planhat_pipelines.oauth.snowflake import TokenEndpointError, refresh_access_token, token_url

    url = settings.oauth_token_uri or token_url(settings.account)
    try:
        return refresh_access_token(
            url,
            _env(name, settings.oauth_client_id, "oauth_client_id"),
            _env(name, settings.oauth_client_secret, "oauth_client_secret"),
            _env(name, settings.oauth_refresh_token, "oauth_refresh_token"),
        )
    except TokenEndpointError as exc:
        if exc.error == "invalid_client":
            fix = "check oauth_client_id and oauth_client_secret (SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS(...))"
        elif exc.refused:
            fix = _reauthorise(settings)
        else:
            fix = exc.fix
        raise CredentialsError(name, "oauth_refresh_token", exc.problem, fix, transient=exc.transient) from None
