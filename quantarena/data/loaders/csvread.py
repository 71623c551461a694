"""Fast CSV parsing with ``pyarrow.csv`` and exact error rows on failure.

The fast path parses the whole buffer multi-threaded with the column types given. Only when
that fails does the slow path re-read the text to find the first offending row and field, so
that the error names the file's line, the column and the bad text.
"""

from __future__ import annotations

import csv as _pycsv
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from quantarena.data.errors import EmptyFileError, ParseError
from quantarena.data.loaders.source import RowLocator, Source

NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "NAN", "null", "NULL", "None", "-nan"]
TRUE_VALUES = ["True", "true", "TRUE", "1"]
FALSE_VALUES = ["False", "false", "FALSE", "0"]


@dataclass
class CsvTable:
    """A parsed CSV: the Arrow table (columns named as in the header, or as given), the
    original header names, and a locator from row index to file line."""

    table: pa.Table
    header: list[str]
    locate: RowLocator


def split_line(line: str, delimiter: str = ",") -> list[str]:
    """Split one CSV line (quotes honoured), fields stripped."""
    try:
        fields = next(_pycsv.reader([line], delimiter=delimiter), [])
    except _pycsv.Error:
        fields = line.split(delimiter)
    return [f.strip() for f in fields]


def read_csv(
    src: Source,
    *,
    skip_lines: int = 0,
    header: bool = True,
    names: list[str] | None = None,
    types: dict[str, pa.DataType] | None = None,
    include: list[str] | None = None,
    delimiter: str = ",",
) -> CsvTable:
    """Parse ``src`` as CSV.

    ``skip_lines`` lines (comments) come before the header; ``header`` says whether a header
    line follows; ``names`` name the columns (required without a header; with a header they
    replace its names one for one). ``types`` fixes column types by name; ``include`` keeps only
    those columns. Raises :class:`EmptyFileError` without data rows and :class:`ParseError`
    naming the line and field of the first value that does not convert.
    """
    lines = src.head_lines(skip_lines + 2)
    header_names: list[str] = []
    if header:
        if len(lines) <= skip_lines or not lines[skip_lines].strip():
            raise EmptyFileError("no header line", path=src.display, hint="check the file")
        header_names = split_line(lines[skip_lines], delimiter)
    col_names = names if names is not None else header_names
    n_before = skip_lines + (1 if header else 0)
    offset = src.offset_after_lines(n_before)
    data = src.data_from(offset)
    locate = RowLocator(src, offset, n_before + 1)
    if data.size == 0 or not data.to_pybytes()[:4096].strip() and data.size <= 4096:
        raise EmptyFileError("no data rows", path=src.display, hint="check the file is complete")
    types = dict(types or {})
    read = pacsv.ReadOptions(column_names=col_names, use_threads=True, block_size=8 << 20)
    parse = pacsv.ParseOptions(delimiter=delimiter)
    conv = pacsv.ConvertOptions(
        column_types=types,
        include_columns=include or [],
        null_values=NULL_VALUES,
        true_values=TRUE_VALUES,
        false_values=FALSE_VALUES,
        strings_can_be_null=True,
    )
    try:
        table = pacsv.read_csv(pa.BufferReader(data), read, parse, conv)
    except pa.ArrowInvalid as exc:
        _diagnose(src, data, locate, col_names, types, include, delimiter, exc)
        raise  # _diagnose always raises; keeps type checkers calm
    if table.num_rows == 0:
        raise EmptyFileError("no data rows", path=src.display, hint="check the file is complete")
    return CsvTable(table, header_names, locate)


def _diagnose(
    src: Source,
    data: pa.Buffer,
    locate: RowLocator,
    col_names: list[str],
    types: dict[str, pa.DataType],
    include: list[str] | None,
    delimiter: str,
    exc: Exception,
) -> None:
    """Find the first row/field that broke the fast parse and raise :class:`ParseError`."""
    raw_bytes = data.to_pybytes()
    try:
        raw_bytes.decode("utf-8")
        not_utf8 = None
    except UnicodeDecodeError as err:
        # diagnose a copy with the bad bytes replaced (same lines, so the same rows)
        not_utf8 = err.start
        data = pa.py_buffer(raw_bytes.decode("utf-8", errors="replace").encode())
    bad_rows: list[tuple[int, int, int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append((row.number or 0, row.expected_columns, row.actual_columns, row.text))
        return "error"

    read = pacsv.ReadOptions(column_names=col_names, use_threads=False, block_size=8 << 20)
    parse = pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid)
    conv = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in col_names},
        include_columns=include or [],
        strings_can_be_null=False,
    )
    try:
        raw = pacsv.read_csv(pa.BufferReader(data), read, parse, conv)
    except pa.ArrowInvalid:
        if bad_rows:
            number, expected, actual, text = bad_rows[0]
            row = locate(number - 1) if number else None
            raise ParseError(
                f"expected {expected} columns, found {actual}: {text[:60]!r}",
                path=src.display,
                row=row,
                hint="fix or drop the row (a cut-off or merged line?)",
            ) from None
        raise ParseError(
            _one_line(str(exc)), path=src.display, hint="check the file's layout"
        ) from None
    for name, typ in types.items():
        if name not in raw.column_names:
            continue
        col = raw.column(name).combine_chunks()
        i = first_unconvertible(col, typ)
        if i is not None:
            text = col[i].as_py()
            raise ParseError(
                f"cannot read {text!r} as {_type_word(typ)}",
                path=src.display,
                row=locate(i),
                field=name,
                hint="fix or drop the row",
            ) from None
    if not_utf8 is not None:
        raise ParseError(
            f"byte 0x{raw_bytes[not_utf8]:02x} is not UTF-8 text",
            path=src.display,
            row=locate.first_line + raw_bytes.count(b"\n", 0, not_utf8),
            hint="the file may be damaged (download it again) or in another encoding "
            "(save it as UTF-8)",
        ) from None
    raise ParseError(
        _one_line(str(exc)), path=src.display, hint="check the file's layout"
    ) from None


def first_unconvertible(col: pa.Array, typ: pa.DataType) -> int | None:
    """Index of the first string in ``col`` that does not convert to ``typ`` (None: all do).
    Null markers (empty, NaN, null, ...) count as convertible: they become nulls."""
    s = col.to_pandas().str.strip()
    is_null = s.isin(NULL_VALUES) | s.isna()
    if pa.types.is_boolean(typ):
        ok = s.isin(TRUE_VALUES + FALSE_VALUES) | is_null
    elif pa.types.is_integer(typ):
        ok = s.str.fullmatch(r"[+-]?\d+") | is_null
    elif pa.types.is_floating(typ):
        ok = pd.to_numeric(s.where(~is_null, "0"), errors="coerce").notna() | is_null
    else:
        return None
    bad = ~ok.to_numpy(dtype=bool)
    return int(np.argmax(bad)) if bad.any() else None


def _type_word(typ: pa.DataType) -> str:
    if pa.types.is_boolean(typ):
        return "true/false"
    if pa.types.is_integer(typ):
        return "an integer"
    if pa.types.is_floating(typ):
        return "a number"
    return str(typ)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def as_float(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float64 numpy (nulls → NaN)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not pa.types.is_float64(col.type):
        col = pc.cast(col, pa.float64())
    return col.to_numpy(zero_copy_only=False)
