"""What a consent flow yields, and the owner-only file it may be written to.

The refresh token is a long-lived secret: it never goes through ``logging``, stderr or an exception message,
and :class:`RefreshToken` keeps it out of its ``repr``. A token file is created 0600 from the start (a
``mkstemp`` file in the target's folder, moved over the target), so no other user can read it even briefly
and a crash leaves the old file or the new one, never half a token.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from planhat_pipelines.oauth.errors import OAuthError


@dataclass(frozen=True)
class RefreshToken:
    """A refresh token from a finished consent.

    Attributes:
        value: The token itself (left out of ``repr``).
        issued_at: When it was issued (UTC).
        expires_at: When it lapses (UTC), if the provider's tokens lapse (Snowflake's do; Google's published
            apps' do not).
    """

    value: str = field(repr=False)
    issued_at: datetime
    expires_at: datetime | None = None


def write_token_file(path: Path, token: RefreshToken) -> Path:
    """Write the token (and a newline) to ``path`` readable by its owner only; return the absolute path.

    Raises:
        OAuthError: The folder does not exist or cannot be written, or ``path`` is a folder.
    """
    target = path.expanduser().absolute()
    if target.is_dir():
        raise OAuthError(f"--token-file {target} is a folder", fix="name a file, e.g. ~/.config/planhat/token")
    if not target.parent.is_dir():
        raise OAuthError(
            f"the folder of --token-file {target} does not exist", fix=f"create it first: mkdir -p {target.parent}"
        )
    try:
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")  # mode 0600
    except OSError as exc:
        raise OAuthError(
            f"cannot write --token-file {target} ({exc.strerror})", fix="choose a folder you can write to"
        ) from exc
    try:
        with os.fdopen(fd, "w") as out:
            out.write(token.value + "\n")
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
