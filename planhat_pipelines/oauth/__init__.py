"""OAuth consent from the command line: Google's installed-app flow and Snowflake's authorization-code flow.

Pure core (no Dagster, no CLI): each flow binds a loopback redirect server on 127.0.0.1, hands the redirect URI
and the consent URL to a callback (the CLI prints them), waits for the redirect, exchanges the code and returns
a :class:`RefreshToken`. ``planhat-pipelines auth`` (:mod:`planhat_pipelines.cli.auth`) stores it.
"""

from __future__ import annotations

from planhat_pipelines.oauth.errors import OAuthError
from planhat_pipelines.oauth.tokens import RefreshToken, write_token_file

__all__ = ["OAuthError", "RefreshToken", "write_token_file"]
