"""Helpers shared by the loaders: symbol resolution and required-column checks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quantarena.data.errors import DataError, ParseError
from quantarena.data.loaders.source import Source
from quantarena.data.loaders.symbols import normalise_symbol, symbol_from_filename


def resolve_symbol(src: Source, symbol: str | None) -> str:
    """``symbol`` (normalised) if given, else the symbol in the file name
    (``BTCUSDT-1m-2024-01.zip`` → ``BTCUSDT``; a zip's member name is tried first).
    Raises :class:`DataError` asking for ``--symbol`` when neither says."""
    if symbol:
        return normalise_symbol(symbol)
    for name in (src.member, src.path.name):
        if name:
            found = symbol_from_filename(name)
            if found:
                return found
    raise DataError(
        "cannot tell the symbol: the file has no symbol column and its name is not "
        "SYMBOL-INTERVAL-... (e.g. BTCUSDT-1m-2024-01.csv)",
        path=src.display,
        field="symbol",
        hint="pass --symbol (symbol=...)",
    )


def int_column(
    table: pa.Table, name: str, *, path: str, locate: Callable[[int], int], label: str | None = None
) -> np.ndarray:
    """An integer column as int64 numpy; a missing value raises :class:`ParseError`."""
    col = table.column(name)
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if col.null_count:
        i = int(np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))[0])
        raise ParseError(
            "value is missing",
            path=path,
            row=locate(i),
            field=label or name,
            hint="fix or drop the row",
        )
    return col.cast(pa.int64()).to_numpy(zero_copy_only=False)


def bool_column(
    table: pa.Table, name: str, *, path: str, locate: Callable[[int], int], label: str | None = None
) -> np.ndarray:
    """A boolean column as numpy bool; a missing value raises :class:`ParseError`."""
    col = table.column(name)
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if col.null_count:
        i = int(np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))[0])
        raise ParseError(
            "true/false value is missing",
            path=path,
            row=locate(i),
            field=label or name,
            hint="fix or drop the row",
        )
    return col.to_numpy(zero_copy_only=False)


def encode_symbols(
    col: pa.ChunkedArray | pa.Array, *, path: str, locate: Callable[[int], int], label: str
) -> tuple[list[str], np.ndarray]:
    """Dictionary-encode a symbol column after normalising names: ``(names, codes)``."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        col = col.cast(pa.string())
    if col.null_count:
        i = int(np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))[0])
        raise ParseError(
            "symbol is missing", path=path, row=locate(i), field=label, hint="fill it in"
        )
    enc = pc.dictionary_encode(col)
    raw_names = enc.dictionary.to_pylist()
    norm = [normalise_symbol(s) for s in raw_names]
    if any(not s for s in norm):
        i = int(
            np.flatnonzero(
                np.isin(
                    enc.indices.to_numpy(zero_copy_only=False),
                    [k for k, s in enumerate(norm) if not s],
                )
            )[0]
        )
        raise ParseError(
            "symbol is empty", path=path, row=locate(i), field=label, hint="fill it in"
        )
    names = sorted(set(norm))
    remap = np.asarray([names.index(s) for s in norm], dtype=np.int32)
    codes = remap[enc.indices.to_numpy(zero_copy_only=False)]
    return names, codes
