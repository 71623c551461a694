"""configs/ticks.yaml end to end (in process, MLflow on SQLite): bar agents, market makers and
arbitrageurs in one tournament on the bundled Binance captures, ranked on the same 1-minute
bars built from the stored trades."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantarena.actors.driver import run_in_process
from quantarena.config import TournamentConfig
from quantarena.tournaments.setup import prepare
from quantarena.tournaments.tick_rounds import evaluate_tick_round

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> TournamentConfig:
    out = tmp_path_factory.mktemp("ticks_tournament")
    c = TournamentConfig.from_yaml(ROOT / "configs" / "ticks.yaml")
    data = c.data.model_copy(
        update={"files": [f.model_copy(update={"path": ROOT / f.path}) for f in c.data.files]}
    )
    tracking = c.tracking.model_copy(
        update={"output_dir": out, "mlflow_uri": f"sqlite:///{out / 'mlflow.db'}"}
    )
    return c.model_copy(update={"data": data, "tracking": tracking})


def test_bars_from_trades_and_tick_entries(cfg: TournamentConfig):
    inputs = prepare(cfg)
    p = inputs.panel
    assert p.symbols == ["BINANCE-USDM:BTCUSDT", "BINANCE:BTCUSDT"] and p.n_bars == 6
    assert p.interval_ns == 60 * 10**9
    kinds = {e.name: e.ticks for e in inputs.entries}
    assert kinds["trend"] is None
    assert kinds["maker"]["symbols"] == ["BINANCE-USDM:BTCUSDT"]
    assert kinds["pairs"]["symbols"] == ["BINANCE-USDM:BTCUSDT", "BINANCE:BTCUSDT"]
    # a round of the market maker: chosen in sample, OOS returns on the round's bars
    e = next(x for x in inputs.entries if x.name == "glft")
    rnd = inputs.rounds[0]
    res = evaluate_tick_round(p, e, rnd, periods_per_year=inputs.periods_per_year)
    assert res.oos_ts.tolist() == p.ts[rnd.oos_start : rnd.oos_end].tolist()
    assert res.n_trials == 6 and 0 <= res.chosen_index < 6
    assert np.isfinite(res.oos_returns).all() and res.oos_daily_all.shape == (1, 6)
    assert res.is_metrics["n_fills"] > 0


def test_mixed_tournament_runs_end_to_end(cfg: TournamentConfig):
    out = run_in_process(cfg, log_mlflow=True, backend="cpu")
    board = {row["agent"]: row for row in out["leaderboard"]}
    assert set(board) == {"trend", "hodl", "maker", "glft", "pairs", "crossvenue"}
    assert out["rounds"] == 4
    for name in ("maker", "glft", "crossvenue"):  # fills counted as trades
        assert board[name]["n_trades"] > 0, name
    assert board["hodl"]["total_return"] != 0.0  # holds BTC through the rounds
    assert out["run_id"]
    assert Path(cfg.tracking.output_dir, "mlflow.db").is_file()
