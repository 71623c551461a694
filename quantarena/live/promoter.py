"""The live director's promotions and demotions, recorded in Redis (and MLflow).

:class:`Promoter` turns the pure decisions of :mod:`.promotion` into records the director
(:class:`~.service.LiveService`) acts on:

* :meth:`Promoter.promote` — re-reads the newest finished tournament; each selected
  candidate whose account (:func:`.promotion.account_name`) has no record yet is
  **promoted** (a paper trader is started for it). An account demoted before is never
  promoted again; an agent promoted with other parameters is **retired** (demoted with the
  reason ``replaced by ...``) when its new parameter set is promoted;
* :meth:`Promoter.review` — at a reallocation, each promoted account that fails a binding
  live gate after the minimum paper days, or was halted by the drawdown breaker, is
  **demoted** (:func:`.promotion.demotion_reason`): its trader stops and its capital is 0.

Every promotion and demotion is one JSON record: the hash ``{prefix}live:promotions``
(account → its latest record; ``quantarena live status`` shows it) and the stream
``{prefix}live:promotions:log`` (every event, in order).
"""

from __future__ import annotations

import json
import time
from typing import Any

from quantarena.live.promotion import (
    PromoteConfig,
    TournamentOutput,
    demotion_reason,
    read_tournament,
    select,
)

__all__ = ["Promoter", "feed_position"]

NS_PER_DAY = 86_400_000_000_000


class Promoter:
    """Promotion state of one live run (see the module docstring).

    Args:
        cfg: the ``promote:`` section. r: a Redis client. keys: the run's
            :class:`~.redis_io.LiveKeys`. reserved: account names not to use (the agents the
            config lists). tick_feed: the live config's tick feed (market makers and
            arbitrageurs — on their tournament legs — are promoted onto it; None: they are
            skipped with the reason).
    """

    def __init__(
        self, cfg: PromoteConfig, r: Any, keys: Any, reserved: set[str],
        tick_feed: str | None = None,
    ) -> None:  # fmt: skip
        self.cfg = cfg
        #: the live config's tick feed: tick agents are promoted onto it (None: skipped)
        self.tick_feed = tick_feed
        self.r = r
        self.keys = keys
        self.reserved = set(reserved)
        self.events: list[dict[str, Any]] = []  # this run's records, in order
        self.next_day: int | None = None
        self.last: TournamentOutput | None = None

    def records(self) -> dict[str, dict[str, Any]]:
        """account → its latest record (from Redis: survives a director restart)."""
        h = self.r.hgetall(self.keys.promotions())
        return {k.decode(): json.loads(v) for k, v in h.items()}

    def active(self) -> dict[str, dict[str, Any]]:
        """The accounts promoted and not demoted."""
        return {a: rec for a, rec in self.records().items() if rec["state"] == "promoted"}

    def _record(self, account: str, state: str, reason: str, day: int | None, **info: Any) -> None:
        old = self.records().get(account, {})
        rec = {**old, **info, "account": account, "state": state, "reason": reason,
               "day": day, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.keys.promotions(), account, json.dumps(rec))
        pipe.xadd(self.keys.promotion_log(), {"json": json.dumps(rec)})
        pipe.execute()
        self.events.append(rec)

    def due(self, day: int) -> bool:
        """Whether the source is re-read at the reallocation of ``day``."""
        return self.cfg.every_days is None or self.next_day is None or day >= self.next_day

    def promote(self, day: int | None) -> tuple[list[dict[str, Any]], list[str]]:
        """Re-read the newest tournament and promote its new candidates on ``day`` (None: at
        the start). Returns (the new promotions' records, the accounts retired by them)."""
        t = select(read_tournament(self.cfg.source, self.tick_feed), self.cfg.top,
                   self.cfg.require_gates)  # fmt: skip
        self.last = t
        if day is not None and self.cfg.every_days is not None:
            self.next_day = day + max(1, int(round(self.cfg.every_days)))
        recs = self.records()
        new, retired = [], []
        for c in t.candidates:
            acct = c.account
            if not c.promote or acct in recs or acct in self.reserved:
                continue
            for old, rec in recs.items():
                if rec["state"] == "promoted" and rec.get("agent") == c.agent:
                    self._record(old, "demoted", f"replaced by {acct} (parameters changed)", day)
                    retired.append(old)
            info = {"agent": c.agent, "kind": c.kind, "params": c.params, "options": c.options,
                    "stops": c.stops, "leverage": c.leverage, "symbol": c.symbol,
                    "rank": c.rank, "tournament": t.name, "source": str(t.path),
                    "finished_at": t.finished_at}  # fmt: skip
            self._record(acct, "promoted", f"rank {c.rank} of {t.name}", day, **info)
            new.append(self.records()[acct])
        return new, retired

    def review(
        self, gates: dict[str, Any], binding: tuple[str, ...], status: dict[str, dict[str, str]],
        day: int,
    ) -> dict[str, str]:  # fmt: skip
        """Demote the promoted accounts that fail (see :func:`.promotion.demotion_reason`);
        ``gates`` and ``status`` (the traders' status hashes) by account. Returns account →
        reason of the demotions made."""
        out = {}
        for acct in self.active():
            if acct not in gates:
                continue
            st = status.get(acct, {})
            why = demotion_reason(gates[acct], binding, st.get("state", ""), st.get("reason", ""))
            if why:
                self._record(acct, "demoted", why, day)
                out[acct] = why
        return out

    def log_mlflow(self) -> None:
        """Tags ``promotion.{account}`` (state and reason) and the CSV artifact
        ``promotions.csv`` of this run's records (call inside the live MLflow run)."""
        if not self.events:
            return
        import mlflow
        import pandas as pd

        latest = {e["account"]: e for e in self.events}
        mlflow.set_tags(
            {f"promotion.{a}": f"{e['state']} day {e['day']}: {e['reason']}"[:500]
             for a, e in latest.items()}
        )  # fmt: skip
        cols = ["at", "day", "account", "state", "reason", "agent", "kind", "params", "tournament"]
        df = pd.DataFrame(self.events).reindex(columns=cols)
        df["params"] = df["params"].map(lambda p: json.dumps(p) if isinstance(p, dict) else p)
        mlflow.log_text(df.to_csv(index=False), "promotions.csv")


def feed_position(r: Any, stream: str, start_ts: int, warmup_bars: int) -> tuple[str, Any]:
    """Where a trader promoted at bar time ``start_ts`` starts reading ``stream``: the entry
    id of the last bar before ``start_ts`` (its consumer group then delivers the bars from
    ``start_ts`` on; ``"0"`` when there is none) and a :class:`~quantarena.data.panel.BarPanel`
    of up to ``warmup_bars`` bars before it to warm the agent's indicators (None: none)."""
    import numpy as np

    from quantarena.data.panel import BarPanel
    from quantarena.live.messages import BarsMessage, decode

    start_id, hist, hi = None, [], "+"
    while True:
        chunk = r.xrevrange(stream, max=hi, min="-", count=1000)
        if not chunk:
            break
        for eid, fields in chunk:
            m = decode(fields, f"{stream} entry {eid.decode()}")
            if not isinstance(m, BarsMessage) or m.ts >= start_ts:
                continue
            if start_id is None:
                start_id = eid.decode()
            if len(hist) >= warmup_bars:
                break
            hist.append(m)
        if (start_id is not None and len(hist) >= warmup_bars) or len(chunk) < 1000:
            break
        hi = "(" + chunk[-1][0].decode()
    if start_id is None:
        return "0", None
    if not hist:
        return start_id, None
    hist.reverse()
    m0 = hist[0]
    return start_id, BarPanel.from_arrays(
        np.array([m.ts for m in hist], dtype=np.int64),
        *(np.stack([getattr(m, f) for m in hist]) for f in ("open", "high", "low", "close")),
        np.stack([m.volume for m in hist]),
        symbols=list(m0.symbols),
        interval_ns=m0.interval_ns,
    )
