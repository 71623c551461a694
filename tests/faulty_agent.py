"""Test agents that fail on purpose (chaos tests): buy-and-hold that raises while computing
the round whose window ends at ``QA_FAIL_END_NS`` (bar open time, ns UTC, the last bar the
agent is given). ``QA_FAIL_ONCE`` set to a file path: raise only while that file does not
exist (the first attempt creates it), so a retry succeeds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from quantarena.strategies.buy_hold import BuyHold


class FailingBuyHold(BuyHold):
    name = "failing_buy_hold"

    def indicators(self, bars, params, xp=np):
        end = os.environ.get("QA_FAIL_END_NS")
        if end and bars.n_bars and int(bars.ts[-1]) == int(end):
            once = os.environ.get("QA_FAIL_ONCE")
            if not once:
                raise RuntimeError("planted failure: agent broke on this round")
            marker = Path(once)
            if not marker.exists():
                marker.write_text("failed once")
                raise RuntimeError("planted failure: agent broke once")
        return super().indicators(bars, params, xp)


def register() -> None:
    """Register :class:`FailingBuyHold` (a Ray ``worker_process_setup_hook``)."""
    from quantarena.strategies import registry

    registry._load_builtins()
    registry._REGISTRY.setdefault(FailingBuyHold.name, FailingBuyHold)
