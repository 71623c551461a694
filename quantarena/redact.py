"""Keep secrets out of what a run writes: MLflow params, tags, artifacts, files and logs.

A config value is a secret when its key looks like one (:data:`SECRET_KEY`: ``password``,
``token``, ``secret``, ``api_key``, ``access_key``, ``credentials``, ...) or when it is a URL
with a password in it (``redis://user:pw@host``, ``postgresql://u:pw@db/mlflow``): the value
becomes :data:`MASK`, or the URL keeps everything but its password. :func:`redacted` applies
that to a whole config before anything logs it; :func:`redact_text` masks such URLs in free
text (an error message, a log line).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "SECRET_KEY", "is_secret_key", "redact", "redact_text", "redacted"]

MASK = "***"
#: keys whose values are secrets (matched case-insensitively anywhere in the key)
SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|"
    r"credential|auth|session[_-]?key|signature",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)", re.I)


def is_secret_key(key: str) -> bool:
    """Whether a config key names a secret."""
    return SECRET_KEY.search(str(key)) is not None


def redact_text(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL masked."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def redact(obj: Any, key: str = "") -> Any:
    """A copy of a JSON-like value with secret values masked (see the module doc)."""
    if isinstance(obj, Mapping):
        return {k: redact(v, str(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v, key) for v in obj]
    if key and is_secret_key(key) and obj not in (None, "", False):
        return MASK
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def redacted(cfg: Any) -> Any:
    """A :class:`~quantarena.config.TournamentConfig` (or mapping) with secrets masked: what
    MLflow params, ``config.yaml`` and logs get. A config with nothing to mask is returned
    as is."""
    if not hasattr(cfg, "model_dump"):
        return redact(dict(cfg))
    data = cfg.model_dump(mode="json")
    clean = redact(data)
    if clean == data:
        return cfg
    return type(cfg).model_validate(clean)
