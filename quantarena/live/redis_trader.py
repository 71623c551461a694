"""A paper trader fed by a Redis stream, its effects durable before it acknowledges.

:class:`RedisTrader` reads a feed (:mod:`.feed`) through a consumer group of its own (one
group per agent: every agent sees every bar), drives a :class:`~.trader.PaperTrader` and
makes each batch's effects durable in this order:

1. the batch's events (orders, fills, rejections, gaps, state changes) are written to a
   Parquet file named after the batch's first message (``{out}/{agent}/events-{seq}.parquet``;
   re-processing the same batch rewrites the same file);
2. one Redis transaction (``MULTI``/``EXEC``) appends the events to the agent's events
   stream, stores the trader's snapshot (agent stream, account, risk state, last ``seq``),
   updates its status hash and ``XACK``\\ s the batch's entries.

So a message is acknowledged only once its effects are durable, and the snapshot and the
acknowledgement change together: a trader killed at any point restarts from the snapshot,
re-reads its pending (delivered, unacknowledged) entries first, and reproduces exactly the
fills it would have made — none lost, none doubled (client order ids are deterministic). A
lost connection is retried with backoff (:func:`.redis_io.retry`); after it the trader
reloads its snapshot from Redis, so a reply lost in flight cannot fork its state. Redis must
persist (AOF, ``appendfsync always`` for the strongest guarantee) for a Redis restart to
lose nothing.

Kill switch: before every message the trader reads ``{prefix}live:kill:all`` and
``{prefix}live:kill:{agent}``; a present key halts it (flatten at the next open, then
nothing trades). ``quantarena resume`` deletes the key and raises a resume counter; the
trader resumes when it sees the counter grow.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantarena.live.events import BAR_LAYOUT, EVENT_COLUMNS, EventLayout, compact, read_events
from quantarena.live.messages import BarsMessage, MessageError, SeqCheck, decode
from quantarena.live.redis_io import LiveKeys, retry
from quantarena.live.risk import RiskState
from quantarena.live.trader import PaperTrader, TraderStep

__all__ = ["RedisTrader", "read_events"]

log = logging.getLogger("quantarena.live")

NS_PER_DAY = 86_400_000_000_000


def _events(step: TraderStep, prev_state: RiskState) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in step.fills:
        out.append({"kind": "fill", "id": f.client_id, "bar": f.bar, "ts": f.ts,
                    "symbol": f.symbol, "qty": f.qty, "price": f.price, "fee": f.fee})  # fmt: skip
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
    ) -> None:
        self.r = r
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
            return
        snap = pickle.loads(blob)
        self.trader = snap["trader"]
        self.seq.restore(snap["seq"])
        self.resume_seen = snap["resume_seen"]

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
        return done

    def _on_idle(self) -> None:
        """Called when a read brought nothing new (a trader holding events back runs them)."""

    def _read(self, count: int, start: str) -> list[tuple[bytes, dict]]:
        def go() -> list[tuple[bytes, dict]]:
            res = self.r.xreadgroup(
                self.group, self.name, {self.stream: start}, count=count,
                block=None if start == "0" else 200,
            )  # fmt: skip
            return res[0][1] if res else []

        return self._retry(go, "reading the feed")

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

    def _transact(self, events: list[dict], snap: Any, status: dict, ids: list) -> None:
        """Make a batch's effects durable in ONE Redis transaction — its events, the trader's
        snapshot, status and daily marks, and the XACK of its entries — retried with backoff;
        then compact finished days (when on). The bar and tick traders' one commit path."""
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
            pipe.execute()

        self._retry(commit, "committing a batch")
        self._daily = {}
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

        def read() -> list[Any]:
            return self.r.mget(
                self.keys.kill(), self.keys.kill(self.name), self.keys.resume(),
                self.keys.resume(self.name),
            )  # fmt: skip

        k_all, k_one, r_all, r_one = self._retry(read, "reading the kill switch")
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
        if events and first_seq is not None:
            df = pd.DataFrame(events).reindex(columns=EVENT_COLUMNS)
            tmp = self.out / f".events-{first_seq:012d}.parquet.tmp"
            df.to_parquet(tmp, index=False)
            tmp.replace(self.out / f"events-{first_seq:012d}.parquet")
        snap = pickle.dumps(
            {"trader": tr, "seq": self.seq.state(), "resume_seen": self.resume_seen},
            protocol=pickle.HIGHEST_PROTOCOL,
        )
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
        self._transact(events, snap, status, ids)
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
