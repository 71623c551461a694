"""``make demo`` (quantarena/demo.py, configs/demo.yaml): the config keeps its promises (a year
of out-of-sample history, tuned and ML agents, production gates) and a few rounds of it run
in-process, with and without torch."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena import demo
from quantarena.config import TournamentConfig
from quantarena.tournaments.gates import GateConfig

ROOT = Path(__file__).resolve().parent.parent
DAY_NS = 86_400 * 10**9


@pytest.fixture()
def cfg(monkeypatch: pytest.MonkeyPatch) -> TournamentConfig:
    monkeypatch.chdir(ROOT)
    return TournamentConfig.from_yaml(ROOT / "configs" / "demo.yaml", check_paths=True)


def test_the_demo_config_has_a_year_of_weekly_rounds_and_production_gates(cfg) -> None:
    from quantarena.tournaments.setup import prepare

    rounds = prepare(cfg).rounds
    assert cfg.schedule.round == 7 * DAY_NS
    assert len(rounds) >= 53
    oos_days = (rounds[-1].oos_end_ns - rounds[0].oos_start_ns) / DAY_NS
    assert oos_days >= 365  # the history gate can pass
    kinds = {a.kind for a in cfg.agents}
    assert {"ml", "buy_hold"} <= kinds
    assert any(a.tuning is not None for a in cfg.agents)
    prod = GateConfig()
    assert cfg.gates == prod  # nothing relaxed
    assert cfg.gates.min_history_days <= oos_days


def test_adjust_config_caps_rounds_moves_outputs_and_drops_ml_without_torch(
    cfg, tmp_path: Path
) -> None:
    new, skipped = demo.adjust_config(cfg, max_rounds=2, output_dir=tmp_path, with_torch=False)
    assert skipped == ["learner"]
    assert [a.name for a in new.agents] == [a.name for a in cfg.agents if a.kind != "ml"]
    assert new.schedule.max_rounds == 2
    assert Path(new.tracking.output_dir) == tmp_path
    assert new.tracking.mlflow_uri == f"sqlite:///{tmp_path}/mlflow.db"
    same, none = demo.adjust_config(cfg)
    assert same == cfg and none == []


def test_weights_story_counts_changes_and_rounds_held(tmp_path: Path) -> None:
    w = pd.DataFrame(
        {"a": [0.0, 0.0, 0.5, 0.5, 0.0], "b": [0.0, 0.3, 0.3, 0.0, 0.0]},
        index=pd.Index(range(5), name="round"),
    )
    w.to_csv(tmp_path / "w.csv")
    line = demo.weights_story(tmp_path / "w.csv")
    # changes at 0→1 (b), 1→2 (a), 2→3 (b), 3→4 (a): 4 of 4; a held 2 rounds, b 2; cash 2
    assert line.startswith("the weights changed in 4 of 4 round transitions")
    assert "a 2, b 2" in line and "all in cash: 2 rounds" in line


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], rounds: int) -> tuple[str, Path]:
    out = tmp_path / "out"
    rc = demo.main(["--no-ray", "--max-rounds", str(rounds), "--output-dir", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    return text, out


def test_a_few_rounds_of_the_demo_run_in_process(tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)  # the demo finds its files from the repository itself
    text, out = _run(tmp_path, capsys, 3)
    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board["agent"]) == {
        "trend",
        "reversion",
        "breakout",
        "trend-tuned",
        "learner",
        "hodl",
    }
    assert np.isfinite(board["sharpe"]).all()
    w = pd.read_csv(out / "weights_kelly.csv", index_col=0)
    assert len(w) == 3
    for name in ("weights.png", "equity_portfolio.png", "leaderboard.html", "mlflow.db"):
        assert (out / name).is_file(), name
    assert "demo — 3 rounds" in text and "4. what to look at" in text
    assert f"{out / 'weights.png'}" in text.replace("\n", "")
    assert "skipped" not in text


def test_the_demo_runs_without_torch_and_says_the_ml_agent_was_skipped(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails, find_spec says None
    assert not demo.torch_available()
    text, out = _run(tmp_path, capsys, 2)
    assert "torch is not installed: the ML agent 'learner' is skipped" in text
    board = pd.read_csv(out / "leaderboard.csv")
    assert "learner" not in set(board["agent"]) and len(board) == 5


def test_the_equities_config_trades_six_stocks_on_the_nyse_calendar(monkeypatch) -> None:
    from quantarena.tournaments.setup import prepare

    monkeypatch.chdir(ROOT)
    cfg = TournamentConfig.from_yaml(ROOT / "configs" / "stocks.yaml", check_paths=True)
    inputs = prepare(cfg)
    assert inputs.periods_per_year == 252  # NYSE sessions, not 365 days
    assert inputs.panel.n_assets == 6
    rounds = inputs.rounds
    assert (rounds[-1].oos_end_ns - rounds[0].oos_start_ns) / DAY_NS >= 365
    assert cfg.gates == GateConfig()


def test_gates_line_names_every_enabled_gate_and_marks_the_binding_ones(cfg) -> None:
    assert demo.gates_line(cfg.gates) == (
        "sharpe > 1.5*, max_drawdown < 0.2*, win_rate > 0.52, history >= 365, paper >= 7"
        " (* binding: an agent failing it gets no capital)"
    )
    off = cfg.gates.model_copy(update={"min_win_rate": None, "binding": ("sharpe",)})
    assert demo.gates_line(off).startswith("sharpe > 1.5*, max_drawdown < 0.2, history")
