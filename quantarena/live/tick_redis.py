"""A tick paper trader fed by a Redis tick feed, with the bar trader's durability protocol.

:class:`TickRedisTrader` reads a tick feed (:mod:`.tick_feed`) through a consumer group of its
own, keeps the quotes and trades of its symbol, runs each batch through a
:class:`~.tick_trader.TickPaperTrader` and makes the batch's effects durable exactly as
:class:`~.redis_trader.RedisTrader` does (it reuses its reading, retry and resync loop):

1. one ``MULTI``/``EXEC``: the events (fills, equity samples, gaps, refusals, state changes)
   to the events stream, the snapshot (trader + last ``seq`` + archive cursor), the status
   hash, the daily equity and the ``XACK`` of the batch's entries;
2. when due, the Parquet archive ``{out}/{agent}/events-{seq}.parquet`` of the events
   committed since the last one (named after the first message of their batches).

A restart reloads the snapshot and re-reads the pending entries first, so the fills are
those of an uninterrupted run. Kill switch and resume: the same keys as the bar traders
(flattening as :mod:`.tick_trader` describes), checked before every batch.
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

import pandas as pd

from quantarena.engine.tick.core import A_MID
from quantarena.live.events import TICK_EVENT_COLUMNS, TICK_LAYOUT, read_events
from quantarena.live.messages import MessageError, QuoteMessage, TradeMessage, decode
from quantarena.live.redis_io import LiveKeys
from quantarena.live.redis_trader import RedisTrader
from quantarena.live.risk import RiskState
from quantarena.live.tick_feed import EventBuilder
from quantarena.live.tick_trader import TickPaperTrader, TickStep

__all__ = ["TICK_EVENT_COLUMNS", "TickRedisTrader", "TickSeqCheck", "read_tick_events"]

NS_PER_DAY = 86_400_000_000_000


class TickSeqCheck:
    """A tick feed's ``seq`` must grow (one counter for every message of the feed); a skipped
    ``seq`` is reported as a gap, a repeated or older one is refused."""

    def __init__(self) -> None:
        self.seq: int | None = None

    def state(self) -> dict[str, Any]:
        return {"seq": self.seq}

    def restore(self, d: dict[str, Any]) -> None:
        self.seq = d["seq"]

    def check(self, seq: int) -> list[str]:
        gaps = []
        if self.seq is not None:
            if seq <= self.seq:
                raise MessageError(
                    f"message seq {seq} is not after seq {self.seq}: repeated or out of order — "
                    "refused"
                )
            if seq != self.seq + 1:
                gaps.append(f"gap: messages {self.seq + 1}..{seq - 1} missing")
        self.seq = seq
        return gaps


def read_tick_events(out_dir: str | Path, agent: str) -> pd.DataFrame:
    """All Parquet events of tick agent ``agent`` under ``out_dir`` in feed order (a batch
    written twice by a restart counts once; batch and compacted day files,
    :func:`.events.read_events`)."""
    return read_events(out_dir, agent, TICK_LAYOUT)


class TickRedisTrader(RedisTrader):
    """Runs one :class:`~.tick_trader.TickPaperTrader` on a Redis tick feed (see the module
    docstring); arguments as :class:`~.redis_trader.RedisTrader`'s."""

    def __init__(
        self,
        r: Any,
        trader: TickPaperTrader,
        feed: str,
        out_dir: str | Path,
        *,
        keys: LiveKeys | None = None,
        batch: int = 1000,
        start_id: str = "0",
        compact: bool = False,
        archive_s: float = 60.0,
    ) -> None:
        super().__init__(r, trader, feed, out_dir, keys=keys, batch=batch, start_id=start_id,
                         compact=compact, archive_s=archive_s)  # type: ignore[arg-type]  # fmt: skip

    layout = TICK_LAYOUT

    def clock_day(self) -> int | None:
        """The UTC day of the last event applied (None before the first)."""
        t = self.trader.last_ts  # type: ignore[attr-defined]
        return None if t is None else int(t) // NS_PER_DAY

    def _load(self) -> None:
        self._daily = {}
        self._sent = []
        blob = self.r.get(self.keys.state(self.name))
        if blob is None:
            self.trader = pickle.loads(pickle.dumps(self._fresh))
            self.seq = TickSeqCheck()  # type: ignore[assignment]
            self.builder = EventBuilder(self.trader.symbol)
            self.resume_seen = self._resume_count()
            self._restore_archive(self._fresh_archive())
            return
        snap = pickle.loads(blob)
        self.trader = snap["trader"]
        self.seq = TickSeqCheck()  # type: ignore[assignment]
        self.seq.restore(snap["seq"])
        self.builder = snap["builder"]
        self.resume_seen = snap["resume_seen"]
        self._restore_archive(snap.get("archive"))

    def _apply(self, entries: list[tuple[bytes, dict]]) -> int:
        tr: TickPaperTrader = self.trader  # type: ignore[assignment]
        events: list[dict[str, Any]] = []
        ids = [e[0] for e in entries]
        first_seq = None
        applied = 0
        for eid, fields in entries:
            where = f"{self.stream} entry {eid.decode() if isinstance(eid, bytes) else eid}"
            try:
                msg = decode(fields, where)
                if not isinstance(msg, QuoteMessage | TradeMessage):
                    raise MessageError(f"{where}: a {type(msg).__name__} on a tick feed")
                gaps = self.seq.check(msg.seq)  # type: ignore[arg-type]
            except MessageError as e:
                events.append({"kind": "refused", "id": where, "seq": self.seq.seq,
                               "reason": str(e)})  # fmt: skip
                continue
            if first_seq is None:
                first_seq = msg.seq
            for g in gaps:
                events.append({"kind": "gap", "id": f"{msg.seq}:{g}", "seq": msg.seq,
                               "ts": msg.ts, "reason": g})  # fmt: skip
            if msg.symbol == tr.symbol:
                self.builder.add(msg)
            applied += 1
        prev = tr.risk_state
        self._obey_switches(events)
        step = tr.on_events(self.builder.take())
        events.extend(self._step_events(step, prev, self.seq.seq))
        self._commit(ids, events, first_seq)
        return applied

    def _step_events(self, st: TickStep, prev: RiskState, seq: int | None) -> list[dict]:
        tr: TickPaperTrader = self.trader  # type: ignore[assignment]
        out: list[dict[str, Any]] = []
        for f in st.fills:
            out.append({"kind": "fill", "id": f.id, "seq": seq, "ts": f.ts, "symbol": tr.symbol,
                        "qty": f.qty, "price": f.price, "fee": f.fee, "maker": f.maker})  # fmt: skip
        for t, e in st.samples:
            out.append({"kind": "equity", "id": f"equity:{t}", "seq": seq, "ts": t, "equity": e})
            self._daily[str((t - 1) // NS_PER_DAY)] = repr(e)
        for n in st.notes:
            out.append({"kind": "state", "id": f"{seq}:{n}", "seq": seq, "ts": st.last_ts,
                        "reason": n, "equity": st.equity})  # fmt: skip
        if st.state is not prev:
            out.append({"kind": "state", "id": f"{seq}:state", "seq": seq, "ts": st.last_ts,
                        "reason": f"{st.state.value} {st.reason}".strip(),
                        "equity": st.equity})  # fmt: skip
        return out

    def _obey_switches(self, events: list[dict[str, Any]]) -> None:
        tr: TickPaperTrader = self.trader  # type: ignore[assignment]

        k_all, k_one, r_all, r_one = self._switch_values()
        resumes = sum(int(v) for v in (r_all, r_one) if v is not None)
        if resumes > self.resume_seen:
            self.resume_seen = resumes
            if tr.risk_state is RiskState.HALTED and k_all is None and k_one is None:
                tr.resume()
                events.append({"kind": "state", "id": f"{self.seq.seq}:resume",
                               "seq": self.seq.seq, "reason": "resume requested"})  # fmt: skip
        kill = k_one if k_one is not None else k_all
        if kill is not None and tr.risk_state is not RiskState.HALTED:
            reason = kill.decode() if isinstance(kill, bytes) else str(kill)
            tr.kill(f"kill switch: {reason}")

    def _commit(self, ids: list[Any], events: list[dict[str, Any]], first_seq: int | None) -> None:
        tr: TickPaperTrader = self.trader  # type: ignore[assignment]
        snap = pickle.dumps(
            {"trader": tr, "seq": self.seq.state(), "builder": self.builder,
             "resume_seen": self.resume_seen, "archive": self._archive_state(events, first_seq)},
            protocol=pickle.HIGHEST_PROTOCOL,
        )  # fmt: skip
        eq = tr.equity
        status = {
            "equity": repr(eq),
            "capital": repr(tr.capital),
            "pnl": repr(eq - tr.capital),
            "state": tr.risk_state.value,
            "reason": tr.reason,
            "positions": json.dumps({tr.symbol: tr.position}),
            "position_units": "base",
            "exposure": repr(abs(tr.position) * float(tr.state.AC[0, A_MID]) / tr.capital),
            "fees": repr(tr.fees),
            "fills": str(tr.n_fills),
            "events": str(tr.n_events),
            "last_ts": str(tr.last_ts if tr.last_ts is not None else 0),
            "updated": str(time.time_ns()),
        }
        self._transact(events, snap, status, ids, first_seq)
        if self.on_commit is not None:
            kinds = [e["kind"] for e in events]
            self.on_commit({"orders": 0, "fills": kinds.count("fill"), "rejections": 0,
                            "equity": eq, "pnl": eq - tr.capital,
                            "exposure": float(status["exposure"]), "latency_s": []})  # fmt: skip
