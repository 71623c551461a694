"""Opening a file for the loaders: plain, zip (one member) or gzip, as one in-memory buffer.

A :class:`Source` holds the file's bytes (memory-mapped for plain files), the name to show in
errors, and helpers to peek at the first lines and to turn a data-row index back into the
1-based line number of the source file (header and comment lines counted), so an error can say
"row 17" and the user can open the file at line 17.
"""

from __future__ import annotations

import gzip
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from quantarena.data.errors import ArchiveError, EmptyFileError, UnknownLayoutError

ZIP_MAGIC = b"PK\x03\x04"
#: what a zip may begin with: a local file header, an empty archive's end record, a spanned zip
ZIP_MAGICS = (ZIP_MAGIC, b"PK\x05\x06", b"PK\x07\x08")
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
ARROW_MAGIC = b"ARROW1"
FEATHER_V1_MAGIC = b"FEA1"
_SNIFF_BYTES = 64 * 1024
_BLANK_LINE = re.compile(rb"\n[ \t\r]*\n")


@dataclass
class Source:
    """A file's content, ready for parsing.

    ``path`` is the file the user named; ``name`` is what errors show (``a.zip:a.csv`` for a
    zip member); ``buffer`` the (decompressed) bytes; ``binary`` is ``"parquet"``,
    ``"feather"`` or None for text.
    """

    path: Path
    name: str
    buffer: pa.Buffer
    member: str | None = None
    binary: str | None = None
    _head: list[str] | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The file name as shown in error messages."""
        return self.name

    def head_lines(self, n: int = 20) -> list[str]:
        """The first ``n`` lines of a text file (\\r stripped, empty lines kept)."""
        if self._head is None:
            raw = self.buffer[:_SNIFF_BYTES].to_pybytes()
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            text = raw.decode("utf-8", errors="replace")
            lines = text.split("\n")
            if len(raw) == _SNIFF_BYTES and len(lines) > 1:
                lines = lines[:-1]  # the last one may be cut
            self._head = [ln.rstrip("\r") for ln in lines]
        return self._head[:n]

    def offset_after_lines(self, n: int) -> int:
        """Byte offset of the start of line ``n + 1`` (i.e. after skipping ``n`` lines)."""
        raw = self.buffer[:_SNIFF_BYTES].to_pybytes()
        pos = 0
        for _ in range(n):
            nxt = raw.find(b"\n", pos)
            if nxt < 0:
                return len(raw)
            pos = nxt + 1
        return pos

    def data_from(self, offset: int) -> pa.Buffer:
        """The buffer from ``offset`` on (zero-copy)."""
        if offset == 0:
            return self.buffer
        return self.buffer.slice(offset)


def open_source(path: str | Path) -> Source:
    """Open ``path`` and return its content; unzip a one-member zip and gunzip a ``.gz``.

    Raises :class:`EmptyFileError` for an empty file, :class:`ArchiveError` for a zip or
    gzip that is damaged or cut off (or named ``.zip``/``.gz`` but not one), and
    :class:`UnknownLayoutError` for a zip holding no or several data files.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file — check the path")
    if p.is_dir():
        raise UnknownLayoutError("is a folder, not a file", path=p, hint="name one data file")
    if p.stat().st_size == 0:
        raise EmptyFileError("file is empty", path=p, hint="download it again or pick another file")
    buf = pa.memory_map(str(p), "r").read_buffer()
    magic = buf[:8].to_pybytes()
    if magic[:4] in ZIP_MAGICS:
        return _open_zip(p)
    if magic.startswith(GZIP_MAGIC):
        return _open_gzip(p)
    suffix = p.suffix.lower()
    if suffix in (".zip", ".gz", ".gzip"):
        kind = "zip" if suffix == ".zip" else "gzip"
        raise ArchiveError(
            f"is not a {kind} archive (it begins {_begins(magic)})",
            path=p,
            hint="download it again (a saved error page?), or rename it if it is a plain file",
        )
    return _classify(Source(p, str(p), buf))


def _begins(magic: bytes) -> str:
    text = magic.decode("ascii", errors="replace")
    return repr(text) if text.isprintable() else magic.hex(" ")


def _damaged(p: Path, kind: str, exc: BaseException) -> ArchiveError:
    why = " ".join(str(exc).split()) or type(exc).__name__
    if len(why) > 80 or not why.isprintable():
        why = why[:60].encode("ascii", "replace").decode() + "…"
    return ArchiveError(
        f"damaged or cut-off {kind} archive ({why})",
        path=p,
        hint="download it again, or unpack it yourself and ingest the data file",
    )


#: what zipfile / gzip / zlib raise on a damaged or cut-off archive (BadZipFile and
#: BadGzipFile are a ValueError/OSError subclass; encrypted members raise RuntimeError,
#: unsupported compression methods NotImplementedError)
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    RuntimeError,
    NotImplementedError,
)
#: member names taken as data when a zip also holds other files (checksums, readmes)
_DATA_SUFFIXES = (".csv", ".txt", ".tsv", ".parquet", ".feather", ".arrow", ".ipc")


def _open_gzip(p: Path) -> Source:
    try:
        with gzip.open(p, "rb") as fh:
            data = fh.read()
    except _ARCHIVE_ERRORS as exc:
        raise _damaged(p, "gzip", exc) from None
    if not data:
        raise EmptyFileError("file is empty once decompressed", path=p)
    return _classify(Source(p, f"{p}", pa.py_buffer(data)))


def _open_zip(p: Path) -> Source:
    try:
        with zipfile.ZipFile(p) as zf:
            members = [
                i
                for i in zf.infolist()
                if not i.is_dir()
                and not i.filename.startswith("__MACOSX/")
                and not Path(i.filename).name.startswith(".")
            ]
            if len(members) > 1:
                data_like = [
                    i for i in members if Path(i.filename).suffix.lower() in _DATA_SUFFIXES
                ]
                if len(data_like) == 1:
                    members = data_like
            if len(members) != 1:
                names = ", ".join(i.filename for i in members[:5]) or "nothing"
                raise UnknownLayoutError(
                    f"zip holds {len(members)} files ({names}); expected exactly one CSV",
                    path=p,
                    hint="unzip it and ingest the files one by one"
                    if members
                    else "download it again",
                )
            info = members[0]
            if info.flag_bits & 0x1:
                raise ArchiveError(
                    f"zip member {info.filename!r} is encrypted",
                    path=p,
                    hint="unpack it with its password and ingest the data file",
                )
            data = zf.read(info)
    except _ARCHIVE_ERRORS as exc:
        raise _damaged(p, "zip", exc) from None
    if not data:
        raise EmptyFileError(f"zip member {info.filename!r} is empty", path=p)
    return _classify(Source(p, f"{p}:{info.filename}", pa.py_buffer(data), member=info.filename))


def _classify(src: Source) -> Source:
    magic = src.buffer[:8].to_pybytes()
    if magic.startswith(PARQUET_MAGIC):
        src.binary = "parquet"
    elif magic.startswith(ARROW_MAGIC) or magic.startswith(FEATHER_V1_MAGIC):
        src.binary = "feather"
    return src


class RowLocator:
    """Maps a data-row index (0-based, in file order) to the 1-based line number in the file.

    ``first_line`` is the line number of the first data row. Empty lines (which the CSV parser
    skips) are accounted for by scanning the file, which happens only when an error is reported.
    For binary files (parquet/feather) the row number is simply ``index + 1``.
    """

    def __init__(self, src: Source | None, data_offset: int = 0, first_line: int = 1) -> None:
        self.src = src
        self.data_offset = data_offset
        self.first_line = first_line

    def __call__(self, index: int) -> int:
        index = int(index)
        if self.src is None or self.src.binary is not None:
            return index + 1
        data = self.src.buffer.slice(self.data_offset).to_pybytes()
        if not _BLANK_LINE.search(data) and data[:1] not in (b"\n", b"\r"):
            return self.first_line + index  # no blank lines: the parser skipped none
        seen = -1
        line_no = self.first_line - 1
        pos = 0
        n = len(data)
        while pos < n:
            nxt = data.find(b"\n", pos)
            end = n if nxt < 0 else nxt
            line_no += 1
            if data[pos:end].strip(b"\r \t"):
                seen += 1
                if seen == index:
                    return line_no
            if nxt < 0:
                break
            pos = nxt + 1
        return self.first_line + index
