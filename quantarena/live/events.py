"""A paper trader's Parquet events: read them, and compact the batch files into day files.

A :class:`~.redis_trader.RedisTrader` writes one file per batch,
``{out}/{agent}/events-{first seq:012d}.parquet`` — many small files. :func:`compact` merges
them into one file per UTC day of the events' bar time, ``day-{YYYYMMDD}-{gen:04d}.parquet``
(``gen`` grows each time a day is compacted again, e.g. after more batches of that day came).

Exactly once, whatever the crash point. Each day file names, in its Parquet metadata, the
day and the files it merged (batch files and earlier day files of that day). A compaction

1. writes each day file to a temporary name (``.day-….tmp``, never read; removed by the next
   compaction) and renames it into place (atomic);
2. only then deletes the merged files whose every row is now in a day file.

:func:`read_events` drops, from a file that a day file of day D lists as merged, the rows of
day D — they are in that day file — and keeps its other rows. So after a crash between
steps (some day files renamed, sources not deleted yet) every event is read once; a later
:func:`compact` finishes the job. Events are also de-duplicated by ``(kind, id)`` (a batch
re-written by a restarted trader counts once). Pure: no Redis, no Ray.

The traders compact their own files (``compact: true``, the default of a live config): after
a batch whose bars (ticks) reach a new UTC day they compact the days before it
(``before_day``), between two batches — so nothing writes while they compact, and a crash
mid-compaction is one of the crash points above. A tick trader's files have the columns of
:data:`TICK_EVENT_COLUMNS` (``seq`` in place of ``bar``); both kinds are told apart by it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BAR_LAYOUT", "EVENT_COLUMNS", "TICK_EVENT_COLUMNS", "TICK_LAYOUT", "EventLayout",
    "compact", "read_events", "write_events",
]  # fmt: skip

NS_PER_DAY = 86_400_000_000_000
META_KEY = b"quantarena.compact"

EVENT_COLUMNS = [
    "kind", "id", "bar", "ts", "symbol", "qty", "price", "fee", "target", "reason", "equity",
]  # fmt: skip

#: a tick trader's events (:mod:`.tick_redis`): ``seq`` (the feed's message number) instead
#: of ``bar``, ``maker`` instead of ``target``
TICK_EVENT_COLUMNS = [
    "kind", "id", "seq", "ts", "symbol", "qty", "price", "fee", "maker", "reason", "equity",
]  # fmt: skip


@dataclass(frozen=True)
class EventLayout:
    """The columns of an agent's event files and the order its events are read in."""

    columns: tuple[str, ...]
    order: tuple[str, ...]


BAR_LAYOUT = EventLayout(tuple(EVENT_COLUMNS), ("bar", "kind"))
TICK_LAYOUT = EventLayout(tuple(TICK_EVENT_COLUMNS), ("seq", "ts"))

_TEXT = ("kind", "id", "symbol", "reason")
_INT = ("bar", "seq", "ts")  # int64 columns (null where an event has none); "maker": bool


def _arrow_type(col: str) -> Any:
    import pyarrow as pa

    if col in _TEXT:
        return pa.string()
    if col in _INT:
        return pa.int64()
    return pa.bool_() if col == "maker" else pa.float64()


def write_events(path: Path, events: list[dict[str, Any]], layout: EventLayout) -> None:
    """Write ``events`` (dicts, missing keys null) as one Parquet events file at ``path``
    with ``layout``'s columns: to a temp name (``.{name}.tmp``, never read), then renamed
    into place, so a reader sees the whole file or none. Built with pyarrow directly (no
    pandas frame per file: this runs once per batch on the trading path)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, _arrow_type(c)) for c in layout.columns])
    table = pa.Table.from_pylist(events, schema=schema)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


_DAY = re.compile(r"^day-(\d{8})-(\d{4})\.parquet$")


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("events-*.parquet")) + sorted(folder.glob("day-*.parquet"))


def _layout(files: list[Path]) -> EventLayout:
    """A tick trader's files (a ``seq`` column) or a bar trader's."""
    if not files:
        return BAR_LAYOUT
    import pyarrow.parquet as pq

    return TICK_LAYOUT if "seq" in pq.read_schema(files[0]).names else BAR_LAYOUT


def _meta(path: Path) -> dict[str, Any] | None:
    """A day file's ``{"day": int, "sources": [names]}``; None for a batch file."""
    if not path.name.startswith("day-"):
        return None
    import pyarrow.parquet as pq

    md = pq.read_schema(path).metadata or {}
    if META_KEY not in md:
        raise ValueError(f"{path}: a day file without its compaction record — move it away")
    return json.loads(md[META_KEY])


def _days(df: pd.DataFrame) -> np.ndarray:
    """The UTC day (days since the epoch) of each row: its ``ts``, or — for an event without
    one (a refused message) — the nearest earlier (else later) row's; -1 when none has one."""
    ts = pd.to_numeric(df["ts"], errors="coerce") if "ts" in df else pd.Series(np.nan, df.index)
    ts = ts.ffill().bfill()
    return np.where(ts.notna(), ts.fillna(0).to_numpy(np.float64) // NS_PER_DAY, -1).astype(
        np.int64
    )


def _covered(metas: dict[Path, dict[str, Any]]) -> dict[str, set[int]]:
    """File name -> the days of it already in a day file."""
    covered: dict[str, set[int]] = {}
    for m in metas.values():
        for src in m["sources"]:
            covered.setdefault(src, set()).add(int(m["day"]))
    return covered


def _rows(f: Path, covered: dict[str, set[int]]) -> pd.DataFrame:
    """The live rows of file ``f`` (the rows of days a day file holds dropped), with ``_day``."""
    df = pd.read_parquet(f)
    for c in _TEXT:  # one dtype whatever the file (an all-null column reads as null)
        if c in df:
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    df["_day"] = _days(df)
    gone = covered.get(f.name)
    if gone:
        df = df[~df["_day"].isin(sorted(gone))]
    return df


def _state(folder: Path) -> tuple[dict[Path, pd.DataFrame], dict[Path, dict[str, Any]]]:
    """Every live row of the folder's files (merged rows dropped), per file; and the day
    files' records."""
    files = _files(folder)
    metas = {f: m for f in files if (m := _meta(f)) is not None}
    covered = _covered(metas)
    return {f: _rows(f, covered) for f in files}, metas


def read_events(out_dir: str | Path, agent: str, layout: EventLayout | None = None) -> pd.DataFrame:
    """All Parquet events of ``agent`` under ``out_dir`` (batch and day files), in bar order
    (a tick agent's: feed order), one row per event: rows a day file holds are read from it
    only, and a batch written twice by a restart counts once. ``layout``: the files' (default:
    told by their columns)."""
    folder = Path(out_dir, agent)
    rows, _ = _state(folder) if folder.is_dir() else ({}, {})
    layout = layout or _layout(list(rows))
    frames = [df for df in rows.values() if len(df)]
    if not frames:
        return pd.DataFrame(columns=list(layout.columns))
    df = pd.concat(frames, ignore_index=True).drop(columns="_day")
    df = df.drop_duplicates(subset=["kind", "id"], keep="last")
    return df.sort_values(list(layout.order), kind="stable").reset_index(drop=True)


def compact(
    out_dir: str | Path,
    agent: str,
    *,
    include_last_day: bool = False,
    before_day: int | None = None,
    layout: EventLayout | None = None,
    hook: Callable[[str, Path], None] | None = None,
) -> dict[str, int]:
    """Merge ``agent``'s batch files into one Parquet file per UTC day (see the module).

    Args:
        out_dir: the traders' ``--out`` folder (files under ``{out_dir}/{agent}/``).
        agent: the agent's name.
        include_last_day: also compact the newest day (by default it is left alone: a
            running trader may still be writing it).
        before_day: compact only the UTC days (days since the epoch) before this one — a
            running trader passes the day of its bar clock: the days before are finished.
        layout: the files' columns and order (default: told by their columns; a tick
            trader's have ``seq``).
        hook: test hook, called as ``hook(stage, path)`` at ``"written"`` (temp file
            complete), ``"renamed"`` (day file in place) and ``"deleted"`` (a source gone);
            raising there simulates a crash at that point.

    Returns:
        ``{"days": day files written, "merged": files merged, "deleted": files deleted}``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(out_dir, agent)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no events of agent {agent!r} — check --out / --agent")
    for tmp in folder.glob(".day-*.tmp"):  # left by a compaction that crashed
        tmp.unlink()
    # only the batch files are read whole; a day file holds the rows of its day (its record
    # says which), read when that day is compacted again — so a trader compacting every day
    # reads its new batch files, not its history
    files = _files(folder)
    metas = {f: m for f in files if (m := _meta(f)) is not None}
    covered = _covered(metas)
    rows = {f: _rows(f, covered) for f in files if f not in metas}
    layout = layout or _layout(files)
    days_of = {f: set(df["_day"].tolist()) for f, df in rows.items()}
    for f, m in metas.items():  # a day file a newer one merged holds no live row
        d = int(m["day"])
        days_of[f] = set() if d in covered.get(f.name, set()) else {d}
    days_of = {f: days_of[f] for f in files}  # the folder's order: batch files, then day files
    all_days = sorted(set().union(*days_of.values())) if days_of else []
    last = all_days[-1] if all_days else None
    gens: dict[int, int] = {}
    for f in metas:
        m = _DAY.match(f.name)
        if m:
            d = int(m.group(1))
            gens[d] = max(gens.get(d, 0), int(m.group(2)))
    todo = []
    for day in all_days:
        if day < 0 or (before_day is not None and day >= before_day):
            continue
        if before_day is None and day == last and not include_last_day:
            continue
        srcs = [f for f in days_of if day in days_of[f]]
        if len(srcs) == 1 and srcs[0] in metas and days_of[srcs[0]] == {day}:
            continue  # already one day file
        todo.append((day, srcs))
    written: dict[int, list[Path]] = {}
    for day, srcs in todo:
        for f in srcs:
            if f not in rows:
                rows[f] = _rows(f, covered)
        part = pd.concat([rows[f][rows[f]["_day"] == day] for f in srcs], ignore_index=True)
        part = part.drop(columns="_day").drop_duplicates(subset=["kind", "id"], keep="last")
        part = part.sort_values(list(layout.order), kind="stable").reset_index(drop=True)
        part = part.reindex(columns=list(layout.columns))
        stamp = pd.Timestamp(day * NS_PER_DAY, tz="UTC").strftime("%Y%m%d")
        gen = gens.get(int(stamp), 0) + 1
        name = f"day-{stamp}-{gen:04d}.parquet"
        table = pa.Table.from_pandas(part, preserve_index=False)
        record = json.dumps({"day": day, "sources": sorted(f.name for f in srcs)})
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: record})
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        if hook is not None:
            hook("written", tmp)
        tmp.replace(folder / name)
        if hook is not None:
            hook("renamed", folder / name)
        written[day] = srcs
    # a source goes once every day it holds rows of is in a day file written now; a file
    # with no rows left (all in day files, e.g. after a crash before this step) goes too
    done_days = set(written)
    merged = {f for srcs in written.values() for f in srcs}
    spent = {f for f, d in days_of.items() if not d}
    deleted = 0
    for f in sorted(merged | spent):
        if days_of[f] <= done_days:
            f.unlink()
            deleted += 1
            if hook is not None:
                hook("deleted", f)
    return {"days": len(written), "merged": len(merged), "deleted": deleted}
