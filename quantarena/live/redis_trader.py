"""A paper trader fed by a Redis stream, its effects durable before it acknowledges.

:class:`RedisTrader` reads a feed (:mod:`.feed`) through a consumer group of its own (one
group per agent: every agent sees every bar), drives a :class:`~.trader.PaperTrader` and
makes each batch's effects durable in ONE Redis transaction (``MULTI``/``EXEC``): it appends
the batch's events (orders, fills, rejections, gaps, state changes) to the agent's events
stream, stores the trader's snapshot (agent stream, account, risk state, last ``seq``, the
Parquet archive's cursor), updates its status hash and ``XACK``\\ s the batch's entries.

Redis is the durable record; the Parquet files ``{out}/{agent}/events-{seq}.parquet`` (named
after the first message of the batches they hold) are its archive, written after a commit
when due (``archive_s`` seconds since the last one, a new UTC day of the bar clock, and when
:meth:`RedisTrader.run` returns). A restarted trader first re-archives the events committed
after its snapshot's cursor, so once it stops every event is in Parquet, once.

So a message is acknowledged only once its effects are durable, and the snapshot and the
acknowledgement change together: a trader killed at any point restarts from the snapshot,
re-reads its pending (delivered, unacknowledged) entries first, and reproduces exactly the
fills it would have made — none lost, none doubled (client order ids are deterministic). A
lost connection is retried with backoff (:func:`.redis_io.retry`); after it the trader
reloads its snapshot from Redis, so a reply lost in flight cannot fork its state. Redis must
persist (AOF, ``appendfsync always`` for the strongest guarantee) for a Redis restart to
lose nothing.

Kill switch: with every read of the feed (same pipeline, right after ``XREADGROUP``: one
round trip) the trader reads ``{prefix}live:kill:all`` and ``{prefix}live:kill:{agent}``,
so a message published after a kill is applied with it; a present key halts it (flatten at
the next open, then nothing trades). ``quantarena resume`` deletes the key and raises a
resume counter; the trader resumes when it sees the counter grow.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from quantarena.live.events import BAR_LAYOUT, EventLayout, compact, read_events, write_events
from quantarena.live.messages import BarsMessage, MessageError, SeqCheck, decode
from quantarena.live.redis_io import LiveKeys, retry
from quantarena.live.risk import RiskState
from quantarena.live.trader import PaperTrader, TraderStep

__all__ = ["RedisTrader", "read_events"]

log = logging.getLogger("quantarena.live")

NS_PER_DAY = 86_400_000_000_000
#: an archive file is written at the latest when this many events are waiting
ARCHIVE_MAX_EVENTS = 10_000


def _events(step: TraderStep, prev_state: RiskState) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in step.fills:
        out.append({"kind": "fill", "id": f.client_id, "bar": f.bar, "ts": f.ts,
                    "symbol": f.symbol, "qty": f.qty, "price": f.price, "fee": f.fee})  # fmt: skip
        if f.reason:  # a stop exit (stop_loss, take_profit, trailing_stop)
            out[-1]["reason"] = f.reason
    for o in step.orders:
        out.append({"kind": "order", "id": o.client_id, "bar": o.bar, "ts": o.ts,
                    "symbol": o.symbol, "target": o.target})  # fmt: skip
    for r in step.rejections:
        out.append({"kind": "rejection", "id": f"{r.bar}:{r.symbol}", "bar": r.bar, "ts": r.ts,
                    "symbol": r.symbol, "target": r.allowed, "reason": r.reason})  # fmt: skip
    if step.state is not prev_state:
        out.append({"kind": "state", "id": f"{step.bar}:state", "bar": step.bar, "ts": step.ts,
                    "reason": f"{step.state.value} {step.reason}".strip(),
                    "equity": step.equity})  # fmt: skip
    return out


class RedisTrader:
    """Runs one :class:`~.trader.PaperTrader` on a Redis feed (see the module docstring).

    Args:
        r: a Redis client.
        trader: the paper trader to start from when Redis holds no snapshot of this agent.
        feed: the feed's name (stream ``{prefix}feed:{feed}``).
        out_dir: where the Parquet events go (``{out_dir}/{agent}/``).
        keys: the key names (prefix).
        batch: entries read per ``XREADGROUP``.
        start_id: where a new consumer group starts reading (``"0"``: the stream's start).
        compact: compact the finished UTC days' event files into day files
            (:func:`.events.compact`) after each batch that reaches a new UTC day.
        archive_s: the Parquet archive of the events is written after a commit when this
            many seconds (wall clock) have passed since the last one — and at each new UTC
            day of the bar clock, every :data:`ARCHIVE_MAX_EVENTS` events and when
            :meth:`run` returns. ``0``: after every batch. Redis holds every event durably
            from its commit on (the events stream); the Parquet files are its archive.
    """

    #: the columns and read order of this trader's event files
    layout: EventLayout = BAR_LAYOUT

    def __init__(
        self,
        r: Any,
        trader: PaperTrader,
        feed: str,
        out_dir: str | Path,
        *,
        keys: LiveKeys | None = None,
        batch: int = 100,
        start_id: str = "0",
        compact: bool = False,
        archive_s: float = 60.0,
    ) -> None:
        self.r = r
        if not archive_s >= 0:
            raise ValueError(f"archive_s must be >= 0 seconds, got {archive_s!r}")
        self.archive_s = float(archive_s)
        #: events committed to Redis and not yet in a Parquet file; the file's name (the
        #: first message seq of their batches); the events-stream id up to which the Parquet
        #: files hold every event (in each snapshot: a restart archives what follows it)
        self._archive: list[dict[str, Any]] = []
        self._archive_seq: int | None = None
        self._archive_tag = ""
        self._archive_cursor = "0"
        self._last_event_id: str | None = None
        self._archived_at = time.monotonic()
        self._archive_day: int | None = None
        #: the kill-switch keys' values read with the last batch (:meth:`_read`)
        self._switches: list[Any] | None = None
        self.compact = bool(compact)
        #: the UTC day of the bar clock at the last compaction (None: none yet in this run)
        self.compacted_day: int | None = None
        self.compact_hook: Any = None  # test hook, passed to events.compact
        self.name = trader.name
        self.keys = keys or LiveKeys()
        self.stream = self.keys.feed(feed)
        self.group = f"agent:{self.name}"
        self.out = Path(out_dir) / self.name
        self.out.mkdir(parents=True, exist_ok=True)
        self.batch = int(batch)
        self.start_id = start_id
        self._fresh = trader
        self.trader = trader
        self.seq = SeqCheck()
        self.resume_seen = 0
        self.reconnects = 0
        self.fail_before_commit: Any = None  # test hook: called before EXEC
        self._daily: dict[str, str] = {}  # UTC day -> equity at its last bar (this batch)
        self.stop_requested = False  # set from another thread to stop after the batch
        #: when a list: (commit time - the message's ``sent`` field) in ns, per message
        #: (benchmarks: tick -> decision -> durable paper fill latency)
        self.latencies: list[int] | None = None
        self._sent: list[int] = []
        #: called after each durable batch with its figures (Ray metrics: actors/paper.py):
        #: orders, fills, rejections (counts), equity, pnl, exposure, latency_s (a list: the
        #: age of each message when its effects became durable, from its stream entry id)
        self.on_commit: Any = None
        retry(self._setup, f"setting up agent {self.name!r}")
        self._prepare()

    def _prepare(self) -> None:
        """Before the first message: load what the first batch would otherwise load on the
        trading path — the trader's compiled kernels and the Parquet writer."""
        import pyarrow.parquet  # noqa: F401

        prepare = getattr(self.trader, "prepare", None)
        if prepare is None:
            return
        try:
            prepare()
        except Exception as e:  # a warm-up only: the first bar loads them then
            log.warning("agent %r: warming up its kernels failed (%s)", self.name, e)

    # ------------------------------------------------------------------ state

    def _setup(self) -> None:
        import redis

        try:
            self.r.xgroup_create(self.stream, self.group, id=self.start_id, mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self.r.sadd(self.keys.agents(), self.name)
        self._load()

    def _load(self) -> None:
        """Put the trader back to the snapshot in Redis (or the fresh one when none)."""
        self._daily = {}
        self._sent = []
        blob = self.r.get(self.keys.state(self.name))
        if blob is None:
            self.trader = pickle.loads(pickle.dumps(self._fresh))
            self.seq = SeqCheck()
            self.resume_seen = self._resume_count()
            self._restore_archive(self._fresh_archive())
            return
        snap = pickle.loads(blob)
        self.trader = snap["trader"]
        self.seq.restore(snap["seq"])
        self.resume_seen = snap["resume_seen"]
        self._restore_archive(snap.get("archive"))

    def _fresh_archive(self) -> dict[str, Any]:
        """The archive state of a trader without a snapshot: events already in the stream
        (an earlier incarnation of this name) are not this run's to archive."""
        last = self.r.xrevrange(self.keys.events(self.name), count=1)
        return {"id": last[0][0].decode() if last else "0", "seq": None}

    def _restore_archive(self, arch: dict[str, Any] | None) -> None:
        """Take the archive state of a snapshot: the events committed after its cursor (in
        the Redis events stream) wait to be written to Parquet again. A snapshot without
        one (written before the archive existed) wrote its Parquet files before committing."""
        self._archive, self._archive_seq, self._archive_tag = [], None, ""
        self._archived_at = time.monotonic()
        self._archive_day = None
        if arch is None:
            self._archive_cursor, self._last_event_id = "0", None
            return
        self._archive_cursor = self._last_event_id = str(arch["id"])
        if arch["seq"] is None:
            return
        lo = "-" if self._archive_cursor == "0" else "(" + self._archive_cursor
        rows = self.r.xrange(self.keys.events(self.name), min=lo, max="+")
        if rows:
            self._archive = [json.loads(v[b"json"]) for _, v in rows]
            self._archive_seq = int(arch["seq"])
            self._archive_tag = str(arch.get("tag", ""))
            self._last_event_id = rows[-1][0].decode()

    def _archive_state(
        self, events: list[dict[str, Any]], first_seq: int | None, tag: str = ""
    ) -> dict:
        """The archive part of the snapshot committed with a batch of ``events`` (``tag``:
        see :meth:`_archive_add`)."""
        started = self._archive_seq is not None
        seq = self._archive_seq if started else first_seq
        return {"id": self._archive_cursor, "seq": seq if (self._archive or events) else None,
                "tag": self._archive_tag if started else tag}  # fmt: skip

    def _archive_add(
        self, events: list[dict[str, Any]], first_seq: int | None, tag: str = ""
    ) -> None:
        """After a commit: its events wait for the next archive file; write it when due.
        ``tag`` suffixes the file name when these events start a file (a trader's own flush
        between messages, named after the last message's seq, must not replace the file
        that message started)."""
        if events:
            if self._archive_seq is None:
                self._archive_seq, self._archive_tag = first_seq, tag
            if self._archive_seq is not None:
                self._archive.extend(events)
        day = self.clock_day()
        if self._archive_day is None:
            self._archive_day = day
        if (
            time.monotonic() - self._archived_at >= self.archive_s
            or len(self._archive) >= ARCHIVE_MAX_EVENTS
            or day != self._archive_day
        ):
            self.flush_archive()
            self._archive_day = day

    def flush_archive(self) -> None:
        """Write the committed events not yet in Parquet to
        ``{out}/{agent}/events-{first seq}.parquet`` (temp file, then rename; the same events
        re-archived after a restart rewrite the same file or a superset of it)."""
        if self._archive and self._archive_seq is not None:
            name = f"events-{self._archive_seq:012d}{self._archive_tag}.parquet"
            write_events(self.out / name, self._archive, self.layout)
        self._archive, self._archive_seq, self._archive_tag = [], None, ""
        if self._last_event_id is not None:
            self._archive_cursor = self._last_event_id
        self._archived_at = time.monotonic()

    def _resume_count(self) -> int:
        vals = self.r.mget(self.keys.resume(), self.keys.resume(self.name))
        return sum(int(v) for v in vals if v is not None)

    # ------------------------------------------------------------------ the loop

    def run(self, max_messages: int | None = None, idle_stop_s: float | None = None) -> int:
        """Process messages until ``max_messages`` were applied or nothing arrived for
        ``idle_stop_s`` seconds (None: run forever). Pending entries (delivered before a
        restart, never acknowledged) come first. Returns the messages applied."""
        done = 0
        idle_since = time.monotonic()
        pending = True
        try:
            while (max_messages is None or done < max_messages) and not self.stop_requested:
                want = self.batch if max_messages is None else min(self.batch, max_messages - done)
                try:
                    entries = self._read(want, "0" if pending else ">")
                    if entries:
                        done += self._apply(entries)
                except _Resync:
                    pending = True  # the snapshot was reloaded: redo the pending entries
                    continue
                if entries:
                    idle_since = time.monotonic()
                    continue
                if pending:
                    pending = False  # no pending entries left: read new ones
                    continue
                try:
                    self._on_idle()
                except _Resync:
                    pending = True
                    continue
                if idle_stop_s is not None and time.monotonic() - idle_since > idle_stop_s:
                    break
        finally:
            self.flush_archive()  # committed events only: safe whatever ended the loop
        return done

    def _on_idle(self) -> None:
        """Called when a read brought nothing new (a trader holding events back runs them)."""

    def _switch_keys(self) -> tuple[str, str, str, str]:
        return (self.keys.kill(), self.keys.kill(self.name), self.keys.resume(),
                self.keys.resume(self.name))  # fmt: skip

    def _read(self, count: int, start: str) -> list[tuple[bytes, dict]]:
        """Up to ``count`` entries from ``start`` ("0": the pending ones, ">": new ones,
        blocking up to 200 ms) and, in the same pipeline right after the read, the kill
        switch and resume counters: Redis runs them in order, so the switch is read after the
        entries were delivered — a kill set before a message was published is always seen
        with it. One round trip."""

        def go() -> list[tuple[bytes, dict]]:
            pipe = self.r.pipeline(transaction=False)
            pipe.xreadgroup(
                self.group, self.name, {self.stream: start}, count=count,
                block=None if start == "0" else 200,
            )  # fmt: skip
            pipe.mget(*self._switch_keys())
            res, switches = pipe.execute()
            self._switches = list(switches)
            return res[0][1] if res else []

        return self._retry(go, "reading the feed")

    def _switch_values(self) -> list[Any]:
        """The kill switches and resume counters (all, this agent's; kill, then resume) read
        with the current batch (read now when there is none)."""
        if self._switches is None:
            self._switches = list(self._retry(lambda: self.r.mget(*self._switch_keys()),
                                              "reading the kill switch"))  # fmt: skip
        return self._switches

    def _retry(self, fn: Any, what: str) -> Any:
        lost = []

        def note(attempt: int, e: Exception) -> None:
            lost.append(e)

        out = retry(fn, f"{what} for agent {self.name!r}", on_retry=note)
        if lost:
            self.reconnects += 1
            retry(self._load, "reloading the snapshot")  # a reply lost in flight: re-sync
            raise _Resync()
        return out

    def _apply(self, entries: list[tuple[bytes, dict]]) -> int:
        tr = self.trader
        events: list[dict[str, Any]] = []
        ids = [e[0] for e in entries]
        first_seq = None
        applied = 0
        for eid, fields in entries:
            where = f"{self.stream} entry {eid.decode() if isinstance(eid, bytes) else eid}"
            try:
                msg = decode(fields, where)
            except MessageError as e:
                events.append(
                    {"kind": "refused", "id": where, "bar": tr.exchange.n_bars, "reason": str(e)}
                )
                continue
            if not isinstance(msg, BarsMessage):
                continue  # trades are not traded by bar agents
            if first_seq is None:
                first_seq = msg.seq
            try:
                gaps = self.seq.check(msg)
            except MessageError as e:  # a duplicate or a late message: reported, never used
                events.append(
                    {"kind": "refused", "id": where, "bar": tr.exchange.n_bars, "reason": str(e)}
                )
                continue
            if list(msg.symbols) != tr.symbols:
                events.append({"kind": "refused", "id": where, "bar": tr.exchange.n_bars,
                               "reason": f"symbols {msg.symbols} are not the agent's {tr.symbols}"})  # fmt: skip
                continue
            for g in gaps:
                events.append(
                    {
                        "kind": "gap",
                        "id": f"{msg.seq}:{g}",
                        "bar": tr.exchange.n_bars,
                        "ts": msg.ts,
                        "reason": g,
                    }
                )
            n_missing = (msg.ts - (self.seq_prev_ts(msg))) // msg.interval_ns - 1 if gaps else 0
            nan = np.full(len(tr.symbols), np.nan)
            for k in range(max(0, int(n_missing))):  # missing bars: masked, as in a backtest
                ts_k = msg.ts - (n_missing - k) * msg.interval_ns
                st = tr.on_bar(ts_k, nan, nan, nan, nan, nan)
                events.extend(_events(st, st.state))
            prev = tr.risk.state
            self._obey_switches(events)
            st = tr.on_bar(msg.ts, msg.open, msg.high, msg.low, msg.close, msg.volume)
            events.extend(_events(st, prev))
            if self.latencies is not None and b"sent" in fields:
                self._sent.append(int(fields[b"sent"]))
            self._daily[str(msg.ts // NS_PER_DAY)] = repr(st.equity)
            applied += 1
        self._commit(ids, events, first_seq)
        return applied

    def clock_day(self) -> int | None:
        """The UTC day of the trader's bar clock (None before its first bar)."""
        ex = self.trader.exchange
        return int(ex._ts) // NS_PER_DAY if ex.n_bars else None

    def _transact(
        self,
        events: list[dict],
        snap: Any,
        status: dict,
        ids: list,
        first_seq: int | None,
        tag: str = "",
    ) -> None:
        """Make a batch's effects durable in ONE Redis transaction — its events, the trader's
        snapshot (with :meth:`_archive_state`), status and daily marks, and the XACK of its
        entries — retried with backoff; then queue its events for the Parquet archive (written
        when due) and compact finished days (when on). The bar and tick traders' one commit
        path; ``first_seq``: the batch's first message seq (names its archive file)."""
        if self.fail_before_commit is not None:
            self.fail_before_commit()

        def commit() -> None:
            pipe = self.r.pipeline(transaction=True)
            for ev in events:
                pipe.xadd(self.keys.events(self.name), {"json": json.dumps(ev, default=float)})
            pipe.set(self.keys.state(self.name), snap)
            pipe.hset(self.keys.status(self.name), mapping=status)
            if self._daily:
                pipe.hset(self.keys.daily(self.name), mapping=self._daily)
            if ids:
                pipe.xack(self.stream, self.group, *ids)
            res = pipe.execute()
            if events:
                last = res[len(events) - 1]
                self._last_event_id = last.decode() if isinstance(last, bytes) else str(last)

        self._retry(commit, "committing a batch")
        self._daily = {}
        self._archive_add(events, first_seq, tag)
        self._compact_finished_days()

    def _compact_finished_days(self) -> None:
        """After a durable batch: when the bar clock reached a new UTC day (or at the first
        batch of this run), compact the days before it into day files. Between batches
        nothing else writes the folder; a crash mid-way is one of compaction's crash points
        (read_events reads every event once, the next compaction finishes). A failure is
        logged, never fatal: the batch files stay readable as they are."""
        day = self.clock_day()
        if not self.compact or day is None:
            return
        if self.compacted_day is not None and day <= self.compacted_day:
            return
        self.compacted_day = day
        self.flush_archive()  # the finished days' events into Parquet first
        try:
            compact(self.out.parent, self.name, before_day=day, layout=self.layout,
                    hook=self.compact_hook)  # fmt: skip
        except (OSError, ValueError) as e:
            log.warning("agent %r: compacting the event files failed (%s); "
                        "they stay as batch files", self.name, e)  # fmt: skip

    def seq_prev_ts(self, msg: BarsMessage) -> int:
        """The bar time before ``msg`` that the trader last saw (for filling gaps)."""
        return self.trader.exchange._ts if self.trader.exchange.n_bars else msg.ts - msg.interval_ns

    def _obey_switches(self, events: list[dict[str, Any]]) -> None:
        tr = self.trader

        k_all, k_one, r_all, r_one = self._switch_values()
        resumes = sum(int(v) for v in (r_all, r_one) if v is not None)
        if resumes > self.resume_seen:
            self.resume_seen = resumes
            if tr.risk.state is RiskState.HALTED and k_all is None and k_one is None:
                tr.resume()
                events.append({"kind": "state", "id": f"{tr.exchange.n_bars}:resume",
                               "bar": tr.exchange.n_bars, "reason": "resumed"})  # fmt: skip
        kill = k_one if k_one is not None else k_all
        if kill is not None and not (
            tr.risk.state is RiskState.HALTED and tr.risk.reason.startswith("kill")
        ):
            reason = kill.decode() if isinstance(kill, bytes) else str(kill)
            tr.kill(f"kill switch: {reason}")

    def _commit(self, ids: list[Any], events: list[dict[str, Any]], first_seq: int | None) -> None:
        tr = self.trader
        snap = pickle.dumps(
            {"trader": tr, "seq": self.seq.state(), "resume_seen": self.resume_seen,
             "archive": self._archive_state(events, first_seq)},
            protocol=pickle.HIGHEST_PROTOCOL,
        )  # fmt: skip
        ex = tr.exchange
        w = ex.weights()
        status = {
            "equity": repr(ex.equity),
            "capital": repr(ex.init_cash),
            "pnl": repr(ex.equity - ex.init_cash),
            "state": tr.risk.state.value,
            "reason": tr.risk.reason,
            "positions": json.dumps(dict(zip(tr.symbols, map(float, w), strict=True))),
            "exposure": repr(float(np.abs(w).sum())),
            "fees": repr(ex.fees),
            "bars": str(ex.n_bars),
            "last_ts": str(ex._ts),
            "rejections": str(tr.n_rejections),
            "updated": str(time.time_ns()),
        }
        self._transact(events, snap, status, ids, first_seq)
        if self.on_commit is not None:
            now_ms = time.time() * 1e3
            ages = []
            for i in ids:
                sid = i.decode() if isinstance(i, bytes) else str(i)
                ages.append(max(0.0, (now_ms - int(sid.split("-")[0])) / 1e3))
            kinds = [e["kind"] for e in events]
            self.on_commit({
                "orders": kinds.count("order"), "fills": kinds.count("fill"),
                "rejections": kinds.count("rejection"), "equity": ex.equity,
                "pnl": ex.equity - ex.init_cash, "exposure": float(np.abs(w).sum()),
                "latency_s": ages,
            })  # fmt: skip
        if self.latencies is not None:
            now = time.time_ns()
            self.latencies.extend(now - x for x in self._sent)
            self._sent = []


class _Resync(Exception):
    """The connection was lost mid-call: the trader reloaded its snapshot; start the batch
    over from the pending entries."""
