"""The Parquet store: an append-only, idempotent, atomic home for market data of every kind
(bars, trades, quotes, L2 book; see :mod:`quantarena.data.kinds`).

Layout::

    STORE/
      catalog.json     {"version": 1, "datasets": [{kind, symbol, interval_ns|null, interval,
                        start_ns, end_ns, rows, parts: [{file, start_ns, end_ns, rows}],
                        sources: [{path, sha256, rows, rows_added, layout, ingested_at}]}]}
      .lock            fcntl lock: one writer at a time
      bars/symbol=BTCUSDT/interval=1m/part-<start_ns>-<end_ns>.parquet
      trades/symbol=XRPETH/part-<start_ns>-<end_ns>.parquet
      quotes/symbol=BINANCE-USDM%3ABTCUSDT/part-...parquet    (and book/...)

A dataset is one (kind, symbol, interval) — bars of several intervals of one symbol live
side by side; other kinds have no interval. Each part file holds rows sorted by the kind's
key (``ts`` first; :class:`~quantarena.data.kinds.base.DataKind`) in the kind's schema;
``start_ns``/``end_ns``
(in names and in the catalog) are the first and last row's ``ts`` (inclusive). Readers
trust only the parts listed in ``catalog.json``.

Guarantees of :meth:`Store.ingest` and :meth:`Store.write`:

* **Idempotent.** A file whose sha256 the store has already seen is skipped. Rows that
  are already stored with identical values are counted as "already present" and not
  written again. Rows at new times are appended as a new part file.
* **Conflicts stop everything.** A row whose key (bars: ``ts``; trades: ``ts``,
  ``trade_id`` and its rank among equal keys; quotes: ``ts``, ``update_id`` and rank; book:
  ``ts``, ``update_id``, snapshot flag, ``side``, ``price`` and rank) is stored with
  different values raises
  :class:`~quantarena.data.errors.ConflictError` naming the file, the symbol, the first
  conflicting time (ISO, UTC) and the field. Rows landing wholly after (or before) a
  dataset's stored rows must pass the kind's continuity rule (a book's update ids leave
  no gap).
* **Atomic.** All files of a call are loaded and checked first; then the new parts are
  written to temporary files inside the store, fsynced and renamed into place, and
  ``catalog.json`` is replaced last with :func:`os.replace`. Any error leaves the store
  as it was (new parts and directories are removed again).
* **One writer.** An exclusive :func:`fcntl.flock` on ``STORE/.lock`` is held for the
  whole call; a second writer waits up to ``lock_timeout`` seconds, then gets a
  :class:`~quantarena.data.errors.StoreError`. Readers take no lock.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from quantarena.data.errors import ConflictError, DataError, DuplicateTimestampError, StoreError
from quantarena.data.intervals import interval_str
from quantarena.data.kinds import get_kind
from quantarena.data.schema import LoadedData, schema_for

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

CATALOG_NAME = "catalog.json"
LOCK_NAME = ".lock"
CATALOG_VERSION = 1
ROW_GROUP_SIZE = 131_072
#: file suffixes picked up when a directory is ingested
DATA_SUFFIXES = (
    ".csv",
    ".tsv",
    ".txt",
    ".zip",
    ".gz",
    ".parquet",
    ".pq",
    ".feather",
    ".arrow",
    ".ndjson",
    ".jsonl",
)

ProgressFn = Callable[[str, int, int], None]
Key = tuple[str, str, int | None]


def iso(ts_ns: int | None) -> str:
    """ISO-8601 UTC text of a ns timestamp (``None`` → ``"-"``)."""
    if ts_ns is None:
        return "-"
    sec, ns = divmod(int(ts_ns), 1_000_000_000)
    text = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if ns:
        text += f".{ns:09d}".rstrip("0")
    return text + "Z"


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files to ingest: each path as given, a directory replaced by the data files under
    it (recursively, sorted; hidden files and suffixes outside :data:`DATA_SUFFIXES`
    skipped). A missing path raises ``FileNotFoundError``."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
                and f.suffix.lower() in DATA_SUFFIXES
            )
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory — check the path")
    return out


@dataclass
class FileReport:
    """What one ingested file did to the store.

    ``rows`` are the file's rows (after the loader), ``rows_added`` those newly written,
    ``rows_present`` those already stored with identical values. ``start_ns``/``end_ns``
    are its first and last row times (inclusive). ``skipped_same_hash``: the store had
    already ingested a file with these exact bytes; nothing was read.
    """

    path: str
    sha256: str | None
    kind: str | None = None
    layout: str | None = None
    rows: int = 0
    rows_added: int = 0
    rows_present: int = 0
    symbols: list[str] = field(default_factory=list)
    start_ns: int | None = None
    end_ns: int | None = None
    interval_ns: int | None = None
    notes: list[str] = field(default_factory=list)
    skipped_same_hash: bool = False

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["start"], d["end"] = iso(self.start_ns), iso(self.end_ns)
        d["interval"] = interval_str(self.interval_ns) if self.interval_ns else None
        return d


@dataclass
class IngestReport:
    """The outcome of one :meth:`Store.ingest` / :meth:`Store.write` call."""

    store: str
    files: list[FileReport] = field(default_factory=list)
    changed: bool = False

    @property
    def rows_added(self) -> int:
        return sum(f.rows_added for f in self.files)

    @property
    def rows_present(self) -> int:
        return sum(f.rows_present for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "changed": self.changed,
            "rows_added": self.rows_added,
            "rows_present": self.rows_present,
            "files": [f.as_dict() for f in self.files],
        }


class MissingDataError(StoreError, KeyError):
    """The store holds no data for the requested symbol / kind / interval. A ``KeyError``
    too, whose ``str`` is the one-line message (no quotes)."""

    def __str__(self) -> str:
        return self.message()


def _empty_catalog() -> dict[str, Any]:
    return {"version": CATALOG_VERSION, "datasets": []}


def _key_of(entry: dict[str, Any]) -> Key:
    return (entry["kind"], entry["symbol"], entry.get("interval_ns"))


def dataset_dir(kind: str, symbol: str, interval_ns: int | None) -> str:
    """Directory of a dataset relative to the store root (symbol percent-encoded)."""
    k = get_kind(kind)
    return k.directory(symbol, interval_str(int(interval_ns or 0)) if k.has_interval else None)


def _np(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return (
        col.to_numpy() if isinstance(col, pa.ChunkedArray) else col.to_numpy(zero_copy_only=False)
    )


def _values(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid) of a column; nulls hold an arbitrary value."""
    if col.null_count:
        valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        filled = col.fill_null(0)
        return _np(filled), valid
    return _np(col), np.ones(len(col), dtype=bool)


def _sort(table: pa.Table, kind: str) -> pa.Table:
    """Rows of one symbol sorted by the kind's key (stable)."""
    return get_kind(kind).sort(table)


def _split_symbols(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """(symbol, rows) pairs; zero-copy slices when the table is sorted by symbol."""
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return []
    enc = pc.dictionary_encode(table.column("symbol")).combine_chunks()
    names = enc.dictionary.to_pylist()
    if len(names) == 1:
        return [(str(names[0]), table)]
    idx = enc.indices.to_numpy(zero_copy_only=False)
    if np.all(idx[1:] >= idx[:-1]):
        bounds = np.r_[np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]]), idx.size]
        return [
            (str(names[idx[a]]), table.slice(int(a), int(b - a)))
            for a, b in zip(bounds[:-1], bounds[1:], strict=False)
        ]
    order = np.argsort(idx, kind="stable")
    counts = np.bincount(idx, minlength=len(names))
    bounds = np.r_[0, np.cumsum(counts)]
    return [
        (str(names[j]), table.take(pa.array(order[bounds[j] : bounds[j + 1]])))
        for j in range(len(names))
        if counts[j]
    ]


def _infer_interval(ts: np.ndarray, path: str, symbol: str) -> int:
    d = np.diff(ts)
    d = d[d > 0]
    if d.size == 0:
        raise DataError(
            f"cannot tell the bar interval of symbol {symbol} from a single bar",
            path=path,
            hint="ingest a file holding at least two bars",
        )
    vals, counts = np.unique(d, return_counts=True)
    return int(vals[np.argmax(counts)])


class Store:
    """A Parquet store at ``root`` (see the module doc for layout and guarantees).

    ``Store(root)`` touches nothing; :meth:`ingest` and :meth:`write` create the
    directory on first use.
    """

    def __init__(self, root: str | Path, *, lock_timeout: float = 60.0) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ------------------------------------------------------------------ catalog
    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG_NAME

    def exists(self) -> bool:
        """True when the store has a catalog (something was ingested)."""
        return self.catalog_path.is_file()

    def _read_catalog(self) -> dict[str, Any]:
        path = self.catalog_path
        if not path.exists():
            if self.root.exists() and not self.root.is_dir():
                raise StoreError(
                    "is not a directory", path=self.root, hint="pick a store directory"
                )
            return _empty_catalog()
        try:
            cat = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(cat, dict) or not isinstance(cat.get("datasets"), list):
                raise ValueError("no 'datasets' list")
        except (ValueError, UnicodeDecodeError) as exc:
            raise StoreError(
                f"damaged catalog ({exc})".replace("\n", " "),
                path=path,
                hint="restore catalog.json from a backup or re-ingest into a new store",
            ) from None
        if cat.get("version") != CATALOG_VERSION:
            raise StoreError(
                f"catalog version {cat.get('version')!r} is not supported (expected {CATALOG_VERSION})",
                path=path,
                hint="use the quantarena version that wrote this store",
            )
        return cat

    def catalog(self) -> list[dict[str, Any]]:
        """The dataset entries of ``catalog.json`` (copies), sorted by kind, symbol, interval."""
        return copy.deepcopy(self._read_catalog()["datasets"])

    def datasets(
        self, kind: str | None = None, symbol: str | None = None, interval_ns: int | None = None
    ) -> list[dict[str, Any]]:
        """Catalog entries filtered by kind, symbol and interval (``None`` = any)."""
        return [
            d
            for d in self.catalog()
            if (kind is None or d["kind"] == kind)
            and (symbol is None or d["symbol"] == symbol)
            and (interval_ns is None or d.get("interval_ns") == interval_ns)
        ]

    def info(self) -> pd.DataFrame:
        """One row per dataset: kind, symbol, interval, first, last (ISO UTC), rows,
        parts, sources."""
        import pandas as pd

        rows = [
            {
                "kind": d["kind"],
                "symbol": d["symbol"],
                "interval": interval_str(d["interval_ns"]) if d.get("interval_ns") else "-",
                "first": iso(d["start_ns"]),
                "last": iso(d["end_ns"]),
                "rows": int(d["rows"]),
                "parts": len(d["parts"]),
                "sources": len(d["sources"]),
            }
            for d in self.catalog()
        ]
        cols = ["kind", "symbol", "interval", "first", "last", "rows", "parts", "sources"]
        return pd.DataFrame(rows, columns=cols)

    # ------------------------------------------------------------------ reading
    def entry(self, kind: str, symbol: str, interval_ns: int | None = None) -> dict[str, Any]:
        """The catalog entry of one dataset; ``KeyError`` (one line) when absent."""
        found = self.datasets(kind, symbol, interval_ns if get_kind(kind).has_interval else None)
        if not found:
            have = sorted({d["symbol"] for d in self.datasets(kind)})
            raise MissingDataError(
                f"no {kind} for symbol {symbol!r}"
                + (f" at {interval_str(interval_ns)}" if interval_ns else "")
                + f" (the store holds {kind} of: {', '.join(have) or 'nothing'})",
                path=self.root,
                hint="check the symbol, or ingest its data first",
            )
        if len(found) > 1:
            ivs = ", ".join(interval_str(d["interval_ns"]) for d in found)
            raise MissingDataError(
                f"symbol {symbol!r} has {kind} at several intervals ({ivs})",
                path=self.root,
                hint="pick one interval",
            )
        return found[0]

    def read_table(
        self,
        kind: str,
        symbol: str,
        interval_ns: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        columns: Sequence[str] | None = None,
        *,
        entry: dict[str, Any] | None = None,
        use_threads: bool = True,
    ) -> pa.Table:
        """Rows of one dataset with ``start_ns <= ts < end_ns``, sorted by ts.

        Only parts overlapping the range are opened, and within them only row groups
        whose ``ts`` statistics overlap it are read.
        """
        import pyarrow.parquet as pq

        if entry is None:
            entry = self.entry(kind, symbol, interval_ns)
        schema = schema_for(kind)  # type: ignore[arg-type]
        cols = list(columns) if columns is not None else list(schema.names)
        read_cols = cols if "ts" in cols else ["ts", *cols]
        lo = -(2**63) if start_ns is None else int(start_ns)
        hi = 2**63 - 1 if end_ns is None else int(end_ns)
        tables = []
        for part in entry["parts"]:
            if part["end_ns"] < lo or part["start_ns"] >= hi:
                continue
            path = self.root / part["file"]
            inside = part["start_ns"] >= lo and part["end_ns"] < hi
            try:
                filters = None if inside else [("ts", ">=", lo), ("ts", "<", hi)]
                t = pq.read_table(path, columns=read_cols, filters=filters, use_threads=use_threads)
            except (OSError, pa.ArrowInvalid) as exc:
                raise StoreError(
                    f"cannot read part file ({exc})".replace("\n", " "),
                    path=path,
                    hint="the store is damaged: re-ingest into a new store",
                ) from None
            tables.append(t)
        if not tables:
            return schema.empty_table().select(read_cols)
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if len(tables) > 1:
            key = get_kind(kind).key
            if not set(key) <= set(read_cols):
                table = table.take(pa.array(np.argsort(_np(table.column("ts")), kind="stable")))
            else:
                table = _sort(table, kind)
        return table.select(cols)

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreError(
                            f"store is locked by another writer for more than {self.lock_timeout:g} s",
                            path=self.root,
                            hint="wait for the other ingest to finish, then retry",
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def ingest(
        self,
        paths: str | Path | Iterable[str | Path],
        *,
        format: str = "auto",
        symbol: str | None = None,
        mapping: dict[str, str] | None = None,
        fill: str = "none",
        progress: ProgressFn | None = None,
    ) -> IngestReport:
        """Load files (or the data files of directories) with
        :func:`quantarena.data.loaders.load_file_kinds` and add their rows to the store.
        A file holding several kinds (a websocket capture: book, quotes and trades) adds
        one :class:`FileReport` per kind.

        All files are loaded and checked before anything is written; any
        :class:`~quantarena.data.errors.DataError` leaves the store unchanged.
        ``progress(path, done, total)`` is called after each file.
        """
        from quantarena.data.loaders import load_file_kinds

        if isinstance(paths, str | Path):
            paths = [paths]
        files = expand_paths(paths)
        kwargs: dict[str, Any] = {"symbol": symbol, "mapping": mapping, "fill": fill}
        report = IngestReport(store=str(self.root))
        with self._locked():
            batch = _Batch(self, self._read_catalog())
            with ThreadPoolExecutor(1) as hasher:
                for i, path in enumerate(files, 1):
                    digest = hasher.submit(sha256_file, path)
                    # small files: hash first and skip known ones without parsing; large
                    # files: hash while the loader parses (hashlib releases the GIL)
                    sha = digest.result() if path.stat().st_size < (1 << 22) else None
                    if sha is None or not batch.seen(sha):
                        loaded = load_file_kinds(path, format, **kwargs)
                        sha = digest.result()
                    if batch.seen(sha):
                        report.files.append(FileReport(str(path), sha, skipped_same_hash=True))
                    else:
                        report.files.extend(batch.add(item, sha) for item in loaded)
                    if progress:
                        progress(str(path), i, len(files))
            report.changed = batch.commit()
        return report

    def write(
        self, loaded: LoadedData | Sequence[LoadedData], *, progress: ProgressFn | None = None
    ) -> IngestReport:
        """Add generated rows (e.g. synthetic bars) with the same guarantees as
        :meth:`ingest`; the source is recorded under ``loaded.path`` without a hash."""
        items = [loaded] if isinstance(loaded, LoadedData) else list(loaded)
        report = IngestReport(store=str(self.root))
        with self._locked():
            batch = _Batch(self, self._read_catalog())
            for i, item in enumerate(items, 1):
                report.files.append(batch.add(item, None))
                if progress:
                    progress(item.path, i, len(items))
            report.changed = batch.commit()
        return report


class _Batch:
    """The rows and sources of one ingest call, checked against the store and against
    each other, committed atomically by :meth:`commit`."""

    def __init__(self, store: Store, catalog: dict[str, Any]) -> None:
        self.store = store
        self.catalog = catalog
        self.entries: dict[Key, dict[str, Any]] = {_key_of(d): d for d in catalog["datasets"]}
        self.hashes: set[str] = {
            s["sha256"] for d in catalog["datasets"] for s in d["sources"] if s.get("sha256")
        }
        self.pending: dict[Key, list[pa.Table]] = {}
        self.sources: dict[Key, list[dict[str, Any]]] = {}

    def seen(self, sha: str | None) -> bool:
        return sha is not None and sha in self.hashes

    # ---------------------------------------------------------------- checking
    def add(self, loaded: LoadedData, sha: str | None) -> FileReport:
        kind = loaded.kind
        dkind = get_kind(kind)
        schema = dkind.schema
        path = str(loaded.path)
        try:
            table = loaded.table.select(list(schema.names)).cast(schema)
        except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
            raise DataError(
                f"rows do not fit the {kind} schema ({exc})".replace("\n", " "),
                path=path,
                hint="this is a loader bug: report it with the file",
            ) from None
        rep = FileReport(
            path=path,
            sha256=sha,
            kind=kind,
            layout=loaded.layout,
            rows=table.num_rows,
            notes=list(loaded.notes),
            interval_ns=loaded.interval_ns,
        )
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for sym, rows in _split_symbols(table):
            rows = _sort(rows, kind)
            ts = _np(rows.column("ts"))
            ivl: int | None = None
            if dkind.has_interval:
                ivl = loaded.interval_ns or _infer_interval(ts, path, sym)
                rep.interval_ns = rep.interval_ns or ivl
                if ts.size > 1 and not np.all(ts[1:] > ts[:-1]):
                    i = int(np.flatnonzero(ts[1:] <= ts[:-1])[0])
                    raise DuplicateTimestampError(
                        f"symbol {sym} has two bars at {iso(int(ts[i]))}",
                        path=path,
                        field="ts",
                        hint="drop the duplicate rows, then ingest again",
                    )
            key: Key = (kind, sym, ivl)
            new_mask, present = self._dedupe(key, rows, ts, path)
            added = rows.num_rows - present
            if added:
                new_rows = rows if added == rows.num_rows else rows.filter(pa.array(new_mask))
                if dkind.check_append is not None:
                    self._check_continuity(dkind, key, new_rows, path)
                self.pending.setdefault(key, []).append(new_rows)
            self.sources.setdefault(key, []).append(
                {
                    "path": os.path.abspath(path) if os.path.exists(path) else path,
                    "sha256": sha,
                    "rows": rows.num_rows,
                    "rows_added": added,
                    "layout": loaded.layout,
                    "ingested_at": now,
                }
            )
            rep.rows_added += added
            rep.rows_present += present
            rep.symbols.append(sym)
            if ts.size:
                rep.start_ns = int(ts[0]) if rep.start_ns is None else min(rep.start_ns, int(ts[0]))
                rep.end_ns = int(ts[-1]) if rep.end_ns is None else max(rep.end_ns, int(ts[-1]))
        if sha is not None:
            self.hashes.add(sha)
        return rep

    def _edge(self, key: Key, last: bool) -> pa.Table | None:
        """Stored and pending rows of ``key`` at its last (or first) time; None when none."""
        i, pick = (-1, max) if last else (0, min)
        times = [int(_np(t.column("ts"))[i]) for t in self.pending.get(key, []) if t.num_rows]
        entry = self.entries.get(key)
        if entry is not None and entry[("end_ns" if last else "start_ns")] is not None:
            times.append(int(entry["end_ns" if last else "start_ns"]))
        if not times:
            return None
        t = pick(times)
        return self._overlapping(key, t, t)

    def _check_continuity(self, dkind: Any, key: Key, new_rows: pa.Table, path: str) -> None:
        """The kind's continuity rule where new rows land wholly after or before the
        stored (and pending) rows; rows landing in between are not checked."""
        ts = _np(new_rows.column("ts"))
        tail = self._edge(key, last=True)
        if tail is None:
            return
        if int(ts[0]) > int(_np(tail.column("ts"))[-1]):
            dkind.check_append(tail, new_rows, path, True)
            return
        head = self._edge(key, last=False)
        if head is not None and int(ts[-1]) < int(_np(head.column("ts"))[0]):
            t_last = int(ts[-1])
            dkind.check_append(new_rows.slice(int(np.searchsorted(ts, t_last))), head, path, False)

    def _overlapping(self, key: Key, lo: int, hi: int) -> pa.Table | None:
        """Stored and pending rows of ``key`` with ``lo <= ts <= hi``."""
        kind = key[0]
        tables = []
        entry = self.entries.get(key)
        if entry is not None and not (entry["end_ns"] < lo or entry["start_ns"] > hi):
            t = self.store.read_table(kind, key[1], key[2], lo, hi + 1, entry=entry)
            if t.num_rows:
                tables.append(t)
        for t in self.pending.get(key, []):
            ts = _np(t.column("ts"))
            a, b = np.searchsorted(ts, lo, "left"), np.searchsorted(ts, hi, "right")
            if b > a:
                tables.append(t.slice(int(a), int(b - a)))
        if not tables:
            return None
        return _sort(pa.concat_tables(tables), kind) if len(tables) > 1 else tables[0]

    def _dedupe(
        self, key: Key, rows: pa.Table, ts: np.ndarray, path: str
    ) -> tuple[np.ndarray, int]:
        """Mask of rows not yet stored, and the count of identical rows already stored;
        raises ConflictError on a stored row with different values."""
        n = rows.num_rows
        mask = np.ones(n, dtype=bool)
        if n == 0:
            return mask, 0
        old = self._overlapping(key, int(ts[0]), int(ts[-1]))
        if old is None or old.num_rows == 0:
            return mask, 0
        kind = key[0]
        dkind = get_kind(kind)
        k_new, k_old = dkind.keys(rows), dkind.keys(old)
        _, i_new, i_old = np.intersect1d(k_new, k_old, assume_unique=True, return_indices=True)
        if i_new.size == 0:
            return mask, 0
        order = np.argsort(i_new, kind="stable")  # file order == time order
        i_new, i_old = i_new[order], i_old[order]
        bad_first: tuple[int, str] | None = None
        for name in rows.schema.names:
            if name in ("symbol", "ts"):
                continue
            a, va = _values(rows.column(name))
            b, vb = _values(old.column(name))
            a, va, b, vb = a[i_new], va[i_new], b[i_old], vb[i_old]
            same = (va == vb) & ((a == b) | ~va)
            if a.dtype.kind == "f":
                same |= va & vb & np.isnan(a) & np.isnan(b)
            if not np.all(same):
                j = int(np.flatnonzero(~same)[0])
                if bad_first is None or j < bad_first[0]:
                    bad_first = (j, name)
        if bad_first is not None:
            j, name = bad_first
            a, va = _values(rows.column(name))
            b, vb = _values(old.column(name))
            new_v = a[i_new[j]] if va[i_new[j]] else None
            old_v = b[i_old[j]] if vb[i_old[j]] else None
            raise ConflictError(
                f"symbol {key[1]}: the {dkind.row_noun} at {iso(int(ts[i_new[j]]))} differs from the "
                f"stored one in field {name!r} (store {old_v}, file {new_v})",
                path=path,
                field=name,
                hint="nothing was written; fix the file or ingest it into another store",
            )
        mask[i_new] = False
        return mask, int(i_new.size)

    # ---------------------------------------------------------------- commit
    def commit(self) -> bool:
        """Write pending parts and the new catalog atomically. Returns True when the
        store changed."""

        if not self.pending and not self.sources:
            return False
        root = self.store.root
        catalog = copy.deepcopy(self.catalog)
        entries = {_key_of(d): d for d in catalog["datasets"]}
        tmp_final: list[tuple[Path, Path]] = []
        jobs: list[tuple[pa.Table, Path]] = []
        renamed: list[Path] = []
        created: list[Path] = []
        cat_tmp = root / f".{CATALOG_NAME}.tmp-{uuid.uuid4().hex}"
        try:
            for key in self.sources:
                kind, sym, ivl = key
                entry = entries.get(key)
                if entry is None:
                    entry = {
                        "kind": kind,
                        "symbol": sym,
                        "interval_ns": ivl,
                        "interval": interval_str(ivl) if ivl else None,
                        "start_ns": None,
                        "end_ns": None,
                        "rows": 0,
                        "parts": [],
                        "sources": [],
                    }
                    entries[key] = entry
                    catalog["datasets"].append(entry)
                entry["sources"].extend(self.sources[key])
                tables = self.pending.get(key)
                if not tables:
                    continue
                table = _sort(pa.concat_tables(tables), kind) if len(tables) > 1 else tables[0]
                table = table.combine_chunks()
                ts = _np(table.column("ts"))
                start, end = int(ts[0]), int(ts[-1])
                rel_dir = dataset_dir(kind, sym, ivl)
                d = root / rel_dir
                missing = []
                p = d
                while not p.exists():
                    missing.append(p)
                    p = p.parent
                for p in reversed(missing):
                    p.mkdir()
                    created.append(p)
                name = f"part-{start}-{end}.parquet"
                n = 1
                while (d / name).exists() or any(f == d / name for _, f in tmp_final):
                    name = f"part-{start}-{end}-{n}.parquet"
                    n += 1
                tmp = d / f".{name}.tmp-{uuid.uuid4().hex}"
                tmp_final.append((tmp, d / name))
                jobs.append((table, tmp))
                entry["parts"].append(
                    {
                        "file": f"{rel_dir}/{name}",
                        "start_ns": start,
                        "end_ns": end,
                        "rows": table.num_rows,
                    }
                )
                entry["rows"] += table.num_rows
                entry["start_ns"] = (
                    start if entry["start_ns"] is None else min(entry["start_ns"], start)
                )
                entry["end_ns"] = end if entry["end_ns"] is None else max(entry["end_ns"], end)
            if jobs:  # Parquet encoding releases the GIL: write parts side by side
                with ThreadPoolExecutor(min(len(jobs), os.cpu_count() or 1)) as pool:
                    list(pool.map(_write_part, jobs))
            catalog["datasets"].sort(
                key=lambda e: (e["kind"], e["symbol"], e.get("interval_ns") or 0)
            )
            for tmp, final in tmp_final:
                if final.exists():  # pragma: no cover - guarded by the lock and the name loop
                    raise StoreError(
                        "part file already exists", path=final, hint="retry the ingest"
                    )
                os.rename(tmp, final)
                renamed.append(final)
            with open(cat_tmp, "w", encoding="utf-8") as f:
                json.dump(catalog, f, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(cat_tmp, root / CATALOG_NAME)
        except BaseException:
            for tmp, _ in tmp_final:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            for final in renamed:
                with contextlib.suppress(OSError):
                    final.unlink()
            with contextlib.suppress(OSError):
                cat_tmp.unlink()
            for p in reversed(created):
                with contextlib.suppress(OSError):
                    p.rmdir()
            raise
        _fsync_dir(root)
        self.catalog = catalog
        return True


def _write_part(job: tuple[pa.Table, Path]) -> None:
    import pyarrow.parquet as pq

    table, path = job
    pq.write_table(
        table,
        path,
        row_group_size=ROW_GROUP_SIZE,
        compression="snappy",
        use_dictionary=["symbol"],
        write_statistics=["ts"],
    )
    _fsync(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync(path)
