"""Exchange API keys and other secrets: from the environment or a private secrets file only.

A secret is never read from a tournament config (configs are logged to MLflow, copied into
jobs and shared). :func:`get_secret` looks up ``NAME`` in the environment first, then in the
secrets file: ``$QUANTARENA_SECRETS_FILE`` or ``~/.config/quantarena/secrets.env``, lines of
``NAME=value`` (``#`` comments and blank lines ignored). The file must be readable by its
owner only (``chmod 600``): a file that group or others may read is refused with a one-line
:class:`SecretsError`, before any value in it is used.

Imports nothing beyond the standard library (the core may use it).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["SECRETS_FILE_ENV", "SecretsError", "default_secrets_file", "get_secret", "read_secrets"]

#: environment variable naming the secrets file
SECRETS_FILE_ENV = "QUANTARENA_SECRETS_FILE"


class SecretsError(ValueError):
    """A secret is missing or its file is not private (one line, with what to do)."""


def default_secrets_file() -> Path:
    """``$QUANTARENA_SECRETS_FILE`` or ``~/.config/quantarena/secrets.env``."""
    env = os.environ.get(SECRETS_FILE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".config/quantarena/secrets.env"


def read_secrets(path: str | Path | None = None) -> dict[str, str]:
    """The ``NAME=value`` pairs of the secrets file (``{}`` when there is none). Raises
    :class:`SecretsError` when the file is readable by group or others, or a line is not
    ``NAME=value``."""
    p = Path(path) if path is not None else default_secrets_file()
    if not p.is_file():
        return {}
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        raise SecretsError(
            f"{p}: permissions {mode:04o} let others read the secrets — run chmod 600 {p}"
        )
    out: dict[str, str] = {}
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise SecretsError(f"{p}:{i}: not NAME=value — fix or delete the line")
        out[name.strip()] = value.strip().strip("'\"")
    return out


def get_secret(name: str, path: str | Path | None = None, *, required: bool = True) -> str | None:
    """The secret ``name`` (e.g. ``BINANCE_API_KEY``): the environment variable, else the
    secrets file's entry. Missing: :class:`SecretsError` (``required``) or None."""
    value = os.environ.get(name)
    if value:
        return value
    value = read_secrets(path).get(name)
    if value:
        return value
    if required:
        where = Path(path) if path is not None else default_secrets_file()
        raise SecretsError(
            f"secret {name} is not set: export {name}=... or add {name}=... to {where} (chmod 600)"
        )
    return None
