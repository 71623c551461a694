"""An arbitrage paper trader fed by a Redis tick feed carrying both legs, with the bar and
tick traders' durability protocol (:class:`~.tick_redis.TickRedisTrader`, whose reading,
sequence check, kill switch and commit it reuses).

:class:`ArbRedisTrader` reads the feed through its own consumer group, keeps the quotes and
trades of its two symbols (one :class:`~.tick_feed.EventBuilder` per leg; other symbols are
skipped), runs each batch through an :class:`~.arb_trader.ArbPaperTrader` and makes the
batch's effects durable in one ``MULTI``/``EXEC`` with the events stream, the snapshot, the
status hash (both legs' positions), the daily equity and the ``XACK``; the events reach
``{out}/{agent}/events-{seq}.parquet`` with the traders' Parquet archive (written when due,
re-written from the events stream after a restart). When a read brings nothing new, the quotes the
trader holds back for a later quote of the same time are run and committed (the end of a
replay). A restart reloads the snapshot and re-reads its pending entries first.
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

from quantarena.live.arb_trader import ArbPaperTrader, ArbStep
from quantarena.live.messages import MessageError, QuoteMessage, TradeMessage, decode
from quantarena.live.redis_io import LiveKeys
from quantarena.live.risk import RiskState
from quantarena.live.tick_feed import EventBuilder
from quantarena.live.tick_redis import NS_PER_DAY, TickRedisTrader, TickSeqCheck

__all__ = ["ArbRedisTrader"]


class ArbRedisTrader(TickRedisTrader):
    """Runs one :class:`~.arb_trader.ArbPaperTrader` on a Redis tick feed (see the module
    docstring); arguments as :class:`~.redis_trader.RedisTrader`'s."""

    def __init__(
        self,
        r: Any,
        trader: ArbPaperTrader,
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

    def _load(self) -> None:
        self._daily = {}
        self._sent = []
        blob = self.r.get(self.keys.state(self.name))
        if blob is None:
            self.trader = pickle.loads(pickle.dumps(self._fresh))
            self.seq = TickSeqCheck()  # type: ignore[assignment]
            self.builders = [EventBuilder(s) for s in self.trader.symbols]  # type: ignore[attr-defined]
            self.resume_seen = self._resume_count()
            self._restore_archive(self._fresh_archive())
            return
        snap = pickle.loads(blob)
        self.trader = snap["trader"]
        self.seq = TickSeqCheck()  # type: ignore[assignment]
        self.seq.restore(snap["seq"])
        self.builders = snap["builders"]
        self.resume_seen = snap["resume_seen"]
        self._restore_archive(snap.get("archive"))

    def _on_idle(self) -> None:
        tr: ArbPaperTrader = self.trader  # type: ignore[assignment]
        held = tr.stream.held
        if held[0][0].size == 0 and held[1][0].size == 0:
            return
        events: list[dict[str, Any]] = []
        prev = tr.risk_state
        step = tr.flush()
        events.extend(self._step_events(step, prev, self.seq.seq))  # type: ignore[arg-type]
        self._commit([], events, self.seq.seq, tag="-flush")

    def _apply(self, entries: list[tuple[bytes, dict]]) -> int:
        tr: ArbPaperTrader = self.trader  # type: ignore[assignment]
        events: list[dict[str, Any]] = []
        ids = [e[0] for e in entries]
        first_seq = None
        applied = 0
        legs = {s: k for k, s in enumerate(tr.symbols)}
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
            k = legs.get(msg.symbol)
            if k is not None:
                self.builders[k].add(msg)
            applied += 1
        prev = tr.risk_state
        self._obey_switches(events)
        step = tr.on_events(self.builders[0].take(), self.builders[1].take())
        events.extend(self._step_events(step, prev, self.seq.seq))  # type: ignore[arg-type]
        self._commit(ids, events, first_seq)
        return applied

    def _step_events(self, st: ArbStep, prev: RiskState, seq: int | None) -> list[dict]:  # type: ignore[override]
        out: list[dict[str, Any]] = []
        for o in st.orders:
            out.append({"kind": "order", "id": o.id, "seq": seq, "ts": o.ts, "symbol": o.symbol,
                        "qty": o.qty, "reason": f"market leg, arrives at {o.arrival}"})  # fmt: skip
        for f in st.fills:
            out.append({"kind": "fill", "id": f.id, "seq": seq, "ts": f.ts, "symbol": f.symbol,
                        "qty": f.qty, "price": f.price, "fee": f.fee, "maker": False})  # fmt: skip
        for t, e in st.samples:
            out.append({"kind": "equity", "id": f"equity:{t}", "seq": seq, "ts": t, "equity": e})
            self._daily[str((t - 1) // NS_PER_DAY)] = repr(e)
        for n in st.notes:
            out.append({"kind": "state", "id": f"{seq}:{st.last_ts}:{n}", "seq": seq,
                        "ts": st.last_ts, "reason": n, "equity": st.equity})  # fmt: skip
        if st.state is not prev:
            out.append({"kind": "state", "id": f"{seq}:state", "seq": seq, "ts": st.last_ts,
                        "reason": f"{st.state.value} {st.reason}".strip(),
                        "equity": st.equity})  # fmt: skip
        return out

    def _commit(
        self, ids: list[Any], events: list[dict[str, Any]], first_seq: int | None, tag: str = ""
    ) -> None:
        """One durable commit (:meth:`RedisTrader._transact`); the events reach Parquet with
        the archive. ``tag``: ``"-flush"`` for the held quotes run between messages."""
        tr: ArbPaperTrader = self.trader  # type: ignore[assignment]
        snap = pickle.dumps(
            {"trader": tr, "seq": self.seq.state(), "builders": self.builders,
             "resume_seen": self.resume_seen,
             "archive": self._archive_state(events, first_seq, tag)},
            protocol=pickle.HIGHEST_PROTOCOL,
        )  # fmt: skip
        eq = tr.equity
        status = {
            "equity": repr(eq),
            "capital": repr(tr.capital),
            "pnl": repr(eq - tr.capital),
            "state": tr.risk_state.value,
            "reason": tr.reason,
            "positions": json.dumps(tr.positions),
            "position_units": "base",
            "exposure": repr(tr.exposure()),
            "fees": repr(tr.fees),
            "fills": str(tr.n_fills),
            "orders": str(tr.n_orders),
            "risk_cuts": str(int(tr.account("risk_cuts"))),
            "events": str(tr.n_events),
            "last_ts": str(tr.last_ts if tr.last_ts is not None else 0),
            "updated": str(time.time_ns()),
        }
        self._transact(events, snap, status, ids, first_seq, tag)
        if self.on_commit is not None:
            kinds = [e["kind"] for e in events]
            self.on_commit({"orders": kinds.count("order"), "fills": kinds.count("fill"),
                            "rejections": 0, "equity": eq, "pnl": eq - tr.capital,
                            "exposure": float(status["exposure"]), "latency_s": []})  # fmt: skip
