"""What every data kind is: an Arrow schema, a sort/dedupe key and a validator.

A :class:`DataKind` is the one place the store, the catalog and the read path learn how a
kind's rows are laid out. Rows of one symbol are kept sorted by :attr:`DataKind.key`
(``ts`` first; a nullable key column counts as -1 where null, and the sort is stable so
rows with equal keys keep their file order). Two rows are "the same row" for the store's
idempotent ingest when their key is equal and, for ranked kinds, their rank among rows of
equal key is equal too (trades at one ms with no id, the levels of one book update).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import numpy as np
import pyarrow as pa

from quantarena.data.errors import ValidationError

#: ``validate(table, path, lines) -> notes``: raise a one-line
#: :class:`~quantarena.data.errors.ValidationError` on the first bad row (``lines[i]`` is the
#: 1-based source line of row ``i`` where known) or return remarks for the ingest report.
Validator = Callable[[pa.Table, str, "np.ndarray | None"], list[str]]

#: ``check_append(before, after, path, before_stored)``: a file's rows land wholly after the
#: stored rows (``before`` = the stored rows at the dataset's last time, ``after`` = the new
#: rows) or wholly before them (``before`` = the new rows, ``after`` = the stored rows at the
#: first time, ``before_stored`` False); raise a :class:`~quantarena.data.errors.DataError`
#: when ``after`` cannot follow ``before`` (a book whose update ids leave a gap).
AppendCheck = Callable[[pa.Table, pa.Table, str, bool], None]


def column_np(table: pa.Table, name: str, null: int | float | bool = -1) -> np.ndarray:
    """A column as numpy; nulls replaced by ``null``."""
    col = table.column(name)
    if col.null_count:
        col = col.fill_null(pa.scalar(null, col.type))
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col.to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class DataKind:
    """One kind of data in the store.

    Attributes:
        name: the kind's name in the catalog and on disk (``bars``, ``trades``, ...).
        schema: the Arrow schema of stored rows (``symbol`` and ``ts`` first).
        key: columns rows of one symbol are sorted by, ``ts`` first.
        ranked: equal keys are allowed; the rank among them (file order) completes the key.
        has_interval: datasets are split by bar interval (bars only).
        validate: the kind's row rules (see :data:`Validator`).
        check_append: continuity rule for rows appended after stored ones, or None.
        summary: one line for docs and ``--help``.
        row_noun: what one row is called in messages ("bar", "trade", "book level").
    """

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    ranked: bool
    validate: Validator
    has_interval: bool = False
    check_append: AppendCheck | None = None
    summary: str = ""
    row_noun: str = "row"
    columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.schema.names))
        if self.key[0] != "ts":
            raise ValueError(f"kind {self.name}: the key must start with 'ts'")

    def directory(self, symbol: str, interval: str | None = None) -> str:
        """Directory of a dataset relative to the store root (symbol percent-encoded)."""
        sym = quote(symbol, safe="")
        if self.has_interval:
            return f"{self.name}/symbol={sym}/interval={interval}"
        return f"{self.name}/symbol={sym}"

    def conform(self, table: pa.Table) -> pa.Table:
        """``table`` with exactly the schema's columns, in order, cast to its types (missing
        nullable columns filled with nulls)."""
        n = table.num_rows
        cols = []
        for f in self.schema:
            if f.name in table.column_names:
                cols.append(table.column(f.name).cast(f.type))
            elif f.nullable:
                cols.append(pa.nulls(n, f.type))
            else:
                raise KeyError(f"column {f.name!r} is missing")
        return pa.Table.from_arrays(cols, schema=self.schema)

    def _key_arrays(self, table: pa.Table) -> list[np.ndarray]:
        """The key columns as int64: nulls -1, booleans 0/1, a ``-name`` column descending,
        float64 columns by their bit pattern (ordered like the values for positive numbers,
        which is all a key float may be: prices)."""
        out = []
        for c in self.key:
            name = c.lstrip("-")
            x = column_np(table, name)
            if x.dtype.kind == "f":
                x = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
            x = x.astype(np.int64, copy=False)
            out.append(-x if c.startswith("-") else x)
        return out

    def sort(self, table: pa.Table) -> pa.Table:
        """Rows (one symbol) sorted by :attr:`key`, stable; the table itself when sorted."""
        if table.num_rows < 2:
            return table
        cols = self._key_arrays(table)
        if _is_sorted(cols, strict=not self.ranked):
            return table
        order = (
            np.lexsort(tuple(reversed(cols)))
            if len(cols) > 1
            else np.argsort(cols[0], kind="stable")
        )
        return table.take(pa.array(order))

    def keys(self, table: pa.Table) -> np.ndarray:
        """Unique row keys of sorted rows (one symbol): a structured array, or the plain
        int64 column for a one-column key without rank (bars: ``ts``)."""
        cols = self._key_arrays(table)
        if len(cols) == 1 and not self.ranked:
            return cols[0]
        n = table.num_rows
        names = [f"k{i}" for i in range(len(cols))]
        dtype = [(nm, "<i8") for nm in names] + ([("rank", "<i8")] if self.ranked else [])
        out = np.zeros(n, dtype=dtype)
        for nm, c in zip(names, cols, strict=True):
            out[nm] = c
        if self.ranked and n > 1:
            same = np.ones(n - 1, dtype=bool)
            for c in cols:
                same &= c[1:] == c[:-1]
            start = np.where(np.r_[True, ~same], np.arange(n), 0)
            out["rank"] = np.arange(n) - np.maximum.accumulate(start)
        return out


def _is_sorted(cols: list[np.ndarray], strict: bool) -> bool:
    """True when rows are in lexicographic order of ``cols`` (strictly when ``strict``)."""
    n = cols[0].size
    if n < 2:
        return True
    gt = np.zeros(n - 1, dtype=bool)  # decided: later row is greater
    eq = np.ones(n - 1, dtype=bool)  # undecided so far
    for c in cols:
        a, b = c[:-1], c[1:]
        if np.any(eq & (b < a)):
            return False
        gt |= eq & (b > a)
        eq &= b == a
    return not (strict and eq.any())


def raise_at(
    mask: np.ndarray,
    reason: Callable[[int], str],
    *,
    path: str,
    lines: np.ndarray | None,
    field_name: str,
    hint: str = "fix or drop the row, then ingest again",
) -> None:
    """Raise :class:`ValidationError` at the first row where ``mask`` is True."""
    if mask.size and mask.any():
        i = int(np.argmax(mask))
        raise ValidationError(
            reason(i),
            path=path,
            row=None if lines is None else int(lines[i]),
            field=field_name,
            hint=hint,
        )


def num(x: object) -> str:
    """A number for a message: ``101.5``, not ``np.float64(101.5)``."""
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return repr(x)
    if f != f:
        return "NaN"
    return repr(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)


def check_positive(
    table: pa.Table, name: str, *, path: str, lines: np.ndarray | None, allow_zero: bool = False
) -> None:
    """Finite and > 0 (``allow_zero``: >= 0) for a float column."""
    x = column_np(table, name, null=np.nan).astype(np.float64, copy=False)
    ok = np.isfinite(x) & ((x >= 0) if allow_zero else (x > 0))
    word = "negative" if allow_zero else "not positive"
    raise_at(
        ~ok,
        lambda i: (
            f"{name} {num(x[i])} is {word}"
            if np.isfinite(x[i])
            else f"{name} is missing, NaN or infinite"
        ),
        path=path,
        lines=lines,
        field_name=name,
    )


def finish_table(
    kind: DataKind, table: pa.Table, path: str, lines: np.ndarray | None = None
) -> tuple[pa.Table, list[str]]:
    """Conform ``table`` to the kind's schema, sort it by (symbol, key) — stable, so rows of
    equal key keep their order in ``table`` — and validate each symbol's rows.

    ``lines[i]`` is the 1-based source line of row ``i`` (for error messages). Returns the
    sorted table and the validators' notes. An empty table raises
    :class:`~quantarena.data.errors.EmptyFileError`.
    """
    from quantarena.data.errors import EmptyFileError

    if table.num_rows == 0:
        raise EmptyFileError(f"no {kind.name} rows", path=path, hint="check the file is complete")
    table = kind.conform(table)
    n = table.num_rows
    lines = np.arange(1, n + 1) if lines is None else np.asarray(lines, dtype=np.int64)
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(table.column("symbol")).combine_chunks()
    names = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    rank = np.argsort(np.argsort(names, kind="stable"))
    codes = rank[enc.indices.to_numpy(zero_copy_only=False)]
    keys = kind._key_arrays(table)
    order = np.lexsort((*reversed(keys), codes))
    if not np.array_equal(order, np.arange(n)):
        table = table.take(pa.array(order))
        codes, lines = codes[order], lines[order]
    notes: list[str] = []
    bounds = np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1, n]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        part = table.slice(int(a), int(b - a))
        for note in kind.validate(part, path, lines[a:b]):
            if note not in notes:
                notes.append(note)
    return table, notes
