"""Ray token authentication, as our CLI and job client use it.

Ray >= 2.52 can require a static bearer token on every request to the dashboard, the Jobs
API and the GCS (``RAY_AUTH_MODE=token`` on the cluster; Ray >= 2.59 turns it on by default
for local ``ray.init()`` clusters). Ray looks for the token, highest precedence first, in:

1. ``RAY_AUTH_TOKEN`` — the token itself;
2. ``RAY_AUTH_TOKEN_PATH`` — a file holding it (unreadable or empty is an error);
3. ``~/.ray/auth_token`` — the default file (``ray get-auth-token --generate`` writes it).

Ray's own :class:`~ray.job_submission.JobSubmissionClient` attaches the token only when the
*client* process runs with ``RAY_AUTH_MODE=token``. We look the token up the same way
(:func:`find_token`) and always send it as ``Authorization: Bearer <token>`` when one is
found (:func:`auth_headers`), so ``quantarena submit`` works whatever the local
``RAY_AUTH_MODE``. A 401 (no token sent) or 403 (wrong token) from the cluster becomes a
:class:`ClusterAuthError` whose one-line message says where to put the right token
(:func:`auth_error_message`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_TOKEN_PATH",
    "ClusterAuthError",
    "Token",
    "auth_error_message",
    "auth_headers",
    "find_token",
]

TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
DEFAULT_TOKEN_PATH = Path("~/.ray/auth_token")

_WHERE = (
    f"put the cluster's token in {DEFAULT_TOKEN_PATH} (or set {TOKEN_ENV}, or {TOKEN_PATH_ENV} "
    "to a file holding it); `ray get-auth-token` on the head node prints it"
)


class ClusterAuthError(ValueError):
    """The cluster refused us for lack of a (right) token; ``str(err)`` is one line."""


@dataclass(frozen=True)
class Token:
    """A token and where it came from (``origin`` is shown in errors, never the token)."""

    value: str
    origin: str

    def __repr__(self) -> str:  # never print the secret
        return f"Token(origin={self.origin!r})"


def find_token(
    explicit: str | None = None, *, env: Mapping[str, str] | None = None, home: Path | None = None
) -> Token | None:
    """The token to send, or None when there is none; same precedence as Ray (see module
    docstring), after ``explicit``. Raises :class:`ClusterAuthError` if
    ``RAY_AUTH_TOKEN_PATH`` names a missing or empty file (Ray treats that as fatal too)."""
    env = os.environ if env is None else env
    if explicit is not None and explicit.strip():
        return Token(explicit.strip(), "the token given")
    value = env.get(TOKEN_ENV, "").strip()
    if value:
        return Token(value, f"${TOKEN_ENV}")
    path_text = env.get(TOKEN_PATH_ENV, "").strip()
    if path_text:
        path = Path(path_text).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError:
            raise ClusterAuthError(
                f"{TOKEN_PATH_ENV}={path} cannot be read — write the cluster's token there "
                "or unset the variable"
            ) from None
        if not value:
            raise ClusterAuthError(
                f"{TOKEN_PATH_ENV}={path} is empty — write the cluster's token there "
                "(`ray get-auth-token` on the head node prints it)"
            )
        return Token(value, str(path))
    default = (
        (home / ".ray" / "auth_token") if home is not None else DEFAULT_TOKEN_PATH.expanduser()
    )
    try:
        value = default.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return Token(value, str(default)) if value else None


def auth_headers(token: Token | str | None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}`` for a token, ``{}`` for None."""
    if token is None:
        return {}
    value = token.value if isinstance(token, Token) else token
    return {"Authorization": f"Bearer {value}"}


def auth_error_message(address: str, token: Token | None, detail: str = "") -> str:
    """One line for a refused request to ``address``: 401 (``token`` None: nothing sent) or
    403 (``token`` rejected)."""
    text = detail.lower()
    rejected = token is not None or "forbidden" in text or "invalid" in text
    if rejected and token is not None:
        return (
            f"{address}: the Ray cluster rejected the token from {token.origin} — "
            f"replace it with the cluster's token: {_WHERE}"
        )
    if rejected:
        return f"{address}: the Ray cluster rejected the token — {_WHERE}"
    return f"{address}: the Ray cluster requires a token and none was found — {_WHERE}"
