"""Typed errors of the data layer.

Every error renders as one line that names the file, the row (1-based, counting the
file's own lines, header and comment lines included, where known), the field and what
to do, e.g.::

    data.csv row 17, field 'high': high 10.0 < low 11.0 — fix or drop the row, then ingest again
"""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """Base class: a problem with input data. ``str(err)`` is a one-line message."""

    def __init__(
        self,
        reason: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = str(path) if path is not None else None
        self.row = row
        self.field = field
        self.hint = hint
        super().__init__(self.message())

    def message(self) -> str:
        where = []
        if self.path:
            where.append(Path(self.path).name if len(self.path) > 80 else self.path)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(f"field {self.field!r}")
        head = " ".join(where[:1]) + (", " + ", ".join(where[1:]) if len(where) > 1 else "")
        text = f"{head}: {self.reason}" if head else self.reason
        if self.hint:
            text += f" — {self.hint}"
        return text.replace("\n", " ")


class EmptyFileError(DataError):
    """The file holds no data rows."""


class ArchiveError(DataError):
    """A zip or gzip file that cannot be opened: damaged, cut off, or not an archive at all
    although its name says so."""


class UnknownLayoutError(DataError):
    """No loader recognises the file's layout."""


class ParseError(DataError):
    """A number or a time could not be parsed."""


class ValidationError(DataError):
    """Rows parse but break a rule: NaN or non-positive price, high < low, open/close
    outside [low, high], negative volume."""


class DuplicateTimestampError(ValidationError):
    """Two rows share a timestamp but differ in value."""


class TimeOrderError(ValidationError):
    """Time goes backwards inside a file that is not wholly newest-first."""


class ConflictError(DataError):
    """Rows overlap rows already in the store and their values differ."""


class EmptyRangeError(DataError, ValueError):
    """A time range that holds no bars (a ``ValueError`` too)."""


class StoreError(DataError):
    """The store is missing, locked, or its catalog is damaged."""
