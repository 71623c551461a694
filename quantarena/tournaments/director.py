"""The tournament director's logic: rounds → OOS records → ranking, gates, overfitting, capital.

Pure and Ray-free: :func:`run_tournament` takes an ``evaluate(round) -> {agent: RoundResult}``
callable. In a test it is a plain function; in a tournament it fans the round out to Ray agent
actors (see :mod:`quantarena.actors`). Everything here uses **out-of-sample** results only.

Per round ``k`` (weekly by default):

1. **Weights first.** The capital weights for round ``k`` are decided before it starts, from
   the OOS returns of rounds ``< k`` only (the last ``estimation_window`` rounds, as daily
   returns): fractional Kelly (f = fraction · Σ⁻¹μ, Ledoit–Wolf shrunk Σ, long-only, capped)
   over the agents that pass the allocation gates and have a positive edge; equal weight and
   inverse volatility over all agents as baselines. Before ``min_rounds`` rounds of history the
   Kelly portfolio holds cash.
2. **Evaluate.** Every agent picks parameters in sample and trades the round out of sample.
3. **Portfolio.** The round's per-bar portfolio return is ``Σ_i w_i r_{i,t}`` (weights are
   rebalanced to target every bar; switching costs between agents are not charged).
4. **Record.** Per agent, the OOS track record so far: annualised Sharpe of per-bar returns,
   max drawdown, win rate over all OOS trades, calendar days of OOS history (first OOS bar to
   the end of the last); the deflated Sharpe ratio of the daily OOS record with N = every
   parameter set tried so far and V = the variance of the daily OOS Sharpe of every set of the
   population over the same days (:class:`~quantarena.tournaments.record.TrackRecord`); gates;
   a per-round and a cumulative leaderboard.

At the end, the probability of backtest overfitting (CSCV) of each agent's population is
computed from its daily OOS returns of every parameter set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from quantarena.tournaments.allocation import equal_weights, inverse_vol_weights, kelly_weights
from quantarena.tournaments.gates import BINDING, GateConfig, GateStatus, evaluate_gates
from quantarena.tournaments.overfitting import pbo
from quantarena.tournaments.ranking import cumulative_leaderboard, rank_agents
from quantarena.tournaments.record import TrackRecord
from quantarena.tournaments.rounds import RoundResult, daily_returns
from quantarena.tournaments.schedule import Round

__all__ = [
    "AllocationConfig",
    "RoundReport",
    "TournamentResult",
    "agent_record",
    "run_tournament",
]

DAY_NS = 86_400 * 1_000_000_000
METHODS = ("kelly", "equal", "inverse_vol")


def check_shrinkage(v: Any) -> str | float:
    """A covariance shrinkage setting: ``"ledoit-wolf"``, ``"none"`` or a float in [0, 1]
    (``_`` and case ignored in the names); raises ``ValueError`` otherwise."""
    if isinstance(v, str):
        key = v.lower().replace("_", "-")
        if key in ("ledoit-wolf", "none"):
            return key
    elif not isinstance(v, bool) and isinstance(v, int | float) and 0 <= v <= 1:
        return float(v)
    raise ValueError("must be 'ledoit-wolf', 'none' or a number in [0, 1]")


@dataclass(frozen=True)
class AllocationConfig:
    """How capital moves between agents.

    Attributes:
        method: the tournament portfolio's rule (``kelly``, ``equal``, ``inverse_vol``); the
            other two are always computed as baselines.
        kelly_fraction: multiplies full Kelly (0.5 = half Kelly).
        shrinkage: covariance shrinkage (``"ledoit-wolf"``, ``"none"`` or a float in [0, 1]).
        cap_per_agent: largest weight of one agent. gross_cap: largest total weight.
        estimation_window: rounds of OOS history used to estimate μ and Σ.
        min_rounds: rounds of OOS history before any non-zero Kelly weight.
        long_only: Kelly weights in ``[0, cap]`` for agents with a positive OOS Sharpe;
            ``False``: weights in ``[−cap, cap]`` with ``Σ|w| <= gross_cap`` over every gated
            agent (a losing agent may be sold short).
        gated_by: gates an agent must pass to get Kelly capital (a tournament config's
            ``gates.binding``; the history and paper-trading gates decide graduation to
            paper trading, not capital).
    """

    method: Literal["kelly", "equal", "inverse_vol"] = "kelly"
    kelly_fraction: float = field(default=0.5, metadata={"gt": 0, "le": 1})
    shrinkage: str | float = field(default="ledoit-wolf", metadata={"check": check_shrinkage})
    cap_per_agent: float = field(default=0.5, metadata={"gt": 0, "le": 1})
    gross_cap: float = field(default=1.0, metadata={"gt": 0})
    estimation_window: int = field(default=12, metadata={"ge": 2})
    min_rounds: int = field(default=2, metadata={"ge": 0})
    long_only: bool = True
    gated_by: tuple[str, ...] = field(default=BINDING, metadata={"config": False})


@dataclass
class RoundReport:
    """What the director knows after a round (handed to ``on_round`` for logging/progress)."""

    round: Round
    results: dict[str, RoundResult]
    weights: dict[str, dict[str, float]]  # method → agent → weight used this round
    portfolio: dict[str, dict[str, float]]  # method → metrics of this round's portfolio
    leaderboard: pd.DataFrame  # this round's OOS leaderboard
    cumulative: pd.DataFrame  # the record so far, one row per agent
    gates: dict[str, GateStatus]
    replayed: bool = False  # a round of a resumed run's checkpoint, not played again


@dataclass
class TournamentResult:
    """The whole tournament: per-round reports plus the final record.

    Attributes:
        agents: entrant names. rounds: the schedule.
        reports: one :class:`RoundReport` per round.
        oos_ts: ``(n,)`` all OOS bar times, in order.
        agent_returns: ``(n, N)`` per-bar OOS returns of each agent's chosen parameters.
        portfolio_returns: method → ``(n,)`` per-bar returns of that portfolio.
        weights: method → DataFrame (rounds × agents).
        leaderboard: the final record (one row per agent, best first).
        pbo: agent → probability of backtest overfitting (NaN when too little history).
    """

    agents: list[str]
    rounds: list[Round]
    reports: list[RoundReport]
    oos_ts: np.ndarray
    agent_returns: np.ndarray
    portfolio_returns: dict[str, np.ndarray]
    weights: dict[str, pd.DataFrame]
    leaderboard: pd.DataFrame
    pbo: dict[str, float]
    gates: dict[str, GateStatus] = field(default_factory=dict)

    def portfolio_metrics(self, periods_per_year: float) -> pd.DataFrame:
        """Metrics of each allocation rule's portfolio over all OOS bars."""
        return pd.DataFrame(
            {m: _series_metrics(r, periods_per_year) for m, r in self.portfolio_returns.items()}
        ).T


def _series_metrics(r: np.ndarray, ppy: float) -> dict[str, float]:
    """Total return, annualised Sharpe (ddof=1, rf=0), max drawdown (positive fraction)."""
    r = np.asarray(r, dtype=np.float64)
    if r.size == 0:
        return {"total_return": 0.0, "sharpe": float("nan"), "max_drawdown": 0.0}
    eq = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.r_[1.0, eq])[1:]
    sd = r.std(ddof=1) if r.size > 1 else 0.0
    return {
        "total_return": float(eq[-1] - 1.0),
        "sharpe": float(r.mean() / sd * np.sqrt(ppy)) if sd > 0 else float("nan"),
        "max_drawdown": float(np.max(1.0 - eq / peak)),
    }


def agent_record(results: Sequence[RoundResult], periods_per_year: float) -> dict[str, float]:
    """An agent's OOS track record over the given rounds.

    Returns ``sharpe`` (annualised, of per-bar OOS returns), ``total_return``,
    ``max_drawdown`` (positive fraction), ``win_rate`` (winning / closed OOS trades over all
    rounds), ``n_trades``, ``history_days`` (calendar days from the first OOS bar's open to the
    end of the last OOS bar), ``n_trials`` (every parameter set tried so far), ``dsr``
    (deflated Sharpe probability of the daily OOS record with that N and ``var_trials_sharpe``
    = V, the variance of the per-day OOS Sharpe of every set of the population over the same
    days), ``sharpe_pp`` (per-bar Sharpe), ``skew``, ``kurt`` (of the per-bar returns),
    ``n_obs`` (bars).
    """
    track = TrackRecord()
    for x in results:
        track.add(x, periods_per_year)
    return track.stats(periods_per_year)


def _pbo_of(results: Sequence[RoundResult]) -> float:
    """PBO of an agent's population from daily OOS returns of every set (NaN if < 8 days)."""
    mats = [x.oos_daily_all for x in results if x.oos_daily_all.size]
    if not mats or len({m.shape[1] for m in mats}) != 1:
        return float("nan")
    perf = np.concatenate(mats, axis=0)
    days, n = perf.shape
    if n < 2 or days < 8:
        return float("nan")
    s = min(16, (days // 2) // 2 * 2)  # even, at least 2 days per block
    if s < 4:
        return float("nan")
    return float(pbo(perf, n_splits=s).pbo)


def _weights_for(
    history: list[dict[str, RoundResult]],
    agents: list[str],
    eligible: np.ndarray,
    cfg: AllocationConfig,
) -> dict[str, np.ndarray]:
    n = len(agents)
    zeros = np.zeros(n)
    if not history:
        return {
            "kelly": zeros,
            "equal": equal_weights(np.ones(n, bool), cfg.gross_cap),
            "inverse_vol": equal_weights(np.ones(n, bool), cfg.gross_cap),
        }
    recent = history[-cfg.estimation_window :]
    daily = np.column_stack(
        [
            np.concatenate([daily_returns(rr[a].oos_ts, rr[a].oos_returns) for rr in recent])
            for a in agents
        ]
    )
    everyone = np.ones(n, bool)
    kelly = (
        kelly_weights(
            daily,
            fraction=cfg.kelly_fraction,
            shrinkage=cfg.shrinkage,
            cap=cfg.cap_per_agent,
            gross_cap=cfg.gross_cap,
            eligible=eligible,
            long_only=cfg.long_only,
        )
        if len(history) >= cfg.min_rounds
        else zeros
    )
    return {
        "kelly": kelly,
        "equal": equal_weights(everyone, cfg.gross_cap),
        "inverse_vol": inverse_vol_weights(daily, everyone, cfg.gross_cap),
    }


def run_tournament(
    rounds: Sequence[Round],
    agents: Sequence[str],
    evaluate: Callable[[Round], dict[str, RoundResult]],
    *,
    periods_per_year: float,
    allocation: AllocationConfig | None = None,
    gates: GateConfig | None = None,
    score: str = "dsr",
    paper_days: dict[str, float] | None = None,
    on_round: Callable[[RoundReport], None] | None = None,
    done: Sequence[dict[str, RoundResult]] = (),
) -> TournamentResult:
    """Run the walk-forward rounds and allocate capital out of sample.

    Args:
        rounds: the schedule (:func:`quantarena.tournaments.schedule.walk_forward`).
        agents: entrant names; ``evaluate`` must return a result for each.
        evaluate: round → {agent: :class:`RoundResult`} (plain call or Ray fan-out).
        periods_per_year: bars per year, for annualised Sharpe.
        allocation: capital rule and baselines. gates: validation thresholds.
        score: leaderboard score (see :func:`quantarena.tournaments.ranking.rank_agents`).
        paper_days: days of paper trading per agent (``None``: not yet available).
        on_round: called with a :class:`RoundReport` after each round.
        done: the results of the first ``len(done)`` rounds, already played (a resumed
            run's checkpoint): they are replayed into the records without calling
            ``evaluate`` or ``on_round``, so the rest continues exactly as if never stopped.
    """
    cfg = allocation or AllocationConfig()
    gate_cfg = gates or GateConfig()
    if cfg.method not in METHODS:
        raise ValueError(f"allocation.method: use one of {', '.join(METHODS)}, got {cfg.method!r}")
    agents = list(agents)
    if len(set(agents)) != len(agents):
        raise ValueError("agent names must be unique")
    history: list[dict[str, RoundResult]] = []
    reports: list[RoundReport] = []
    weights_rows: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    port: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    ts_parts: list[np.ndarray] = []
    ret_parts: list[np.ndarray] = []
    eligible = np.zeros(len(agents), bool)
    gate_status: dict[str, GateStatus] = {}
    per_round_boards: list[pd.DataFrame] = []
    cumulative = pd.DataFrame()
    tracks = {a: TrackRecord() for a in agents}  # agent_record(history), O(round) each round

    if len(done) > len(rounds):
        raise ValueError(f"{len(done)} rounds done but the schedule has {len(rounds)}")
    failed = dict.fromkeys(agents, 0)
    for i, rnd in enumerate(rounds):
        w = _weights_for(history, agents, eligible, cfg)
        replayed = i < len(done)
        results = done[i] if replayed else evaluate(rnd)
        missing = [a for a in agents if a not in results]
        if missing:
            raise RuntimeError(f"round {rnd.index}: no result from {', '.join(missing)}")
        n = results[agents[0]].oos_returns.size
        if any(results[a].oos_returns.size != n for a in agents):
            raise RuntimeError(f"round {rnd.index}: agents returned different OOS lengths")
        R = np.column_stack([results[a].oos_returns for a in agents])  # (n, N)
        ts_parts.append(results[agents[0]].oos_ts)
        ret_parts.append(R)
        round_port = {}
        for m in METHODS:
            weights_rows[m].append(w[m])
            pr = R @ w[m]
            port[m].append(pr)
            round_port[m] = _series_metrics(pr, periods_per_year)
        history.append(results)

        # this round's OOS leaderboard and the record so far
        this = {a: agent_record([results[a]], periods_per_year) for a in agents}
        board = _rank(pd.DataFrame(this).T.rename_axis("agent"), score, periods_per_year)
        board["round"] = rnd.index
        per_round_boards.append(board)
        for a in agents:
            tracks[a].add(results[a], periods_per_year)
            failed[a] += getattr(results[a], "failed", None) is not None
        record = {a: tracks[a].stats(periods_per_year) for a in agents}
        stats = {a: {**record[a], "paper_days": (paper_days or {}).get(a)} for a in agents}
        gate_status = evaluate_gates(stats, gate_cfg)
        eligible = np.array(
            [
                all(res.passed for g, res in gate_status[a].results.items() if g in cfg.gated_by)
                and (record[a]["sharpe_pp"] > 0 or not cfg.long_only)
                for a in agents
            ]
        )
        cumulative = pd.DataFrame(record).T.rename_axis("agent")
        cumulative["gates_passed"] = [gate_status[a].passed for a in agents]
        cumulative["gates_failed"] = [", ".join(gate_status[a].failed) for a in agents]
        cumulative["held_back_by"] = [  # the failed gates that hold back capital
            ", ".join(g for g in gate_status[a].failed if g in cfg.gated_by) for a in agents
        ]
        cumulative["weight"] = [float(x) for x in w[cfg.method]]
        cumulative["failed_rounds"] = [failed[a] for a in agents]
        rep = RoundReport(
            round=rnd,
            results=results,
            weights={m: dict(zip(agents, map(float, w[m]), strict=True)) for m in METHODS},
            portfolio=round_port,
            leaderboard=board,
            cumulative=cumulative,
            gates=gate_status,
            replayed=replayed,
        )
        reports.append(rep)
        if on_round is not None:
            on_round(rep)
        if i > 0:  # the round before no longer needs its carried population state
            _drop_population(history, reports, i - 1)

    if not reports:
        raise ValueError(
            "the schedule has no rounds: the data is shorter than warm-up + lookback + one round"
        )
    # CSCV over every set's daily OOS returns: ~0.5 s per agent of 1,000 sets and a year;
    # NumPy releases the GIL in its matrix products, so the agents' PBOs overlap in threads
    with ThreadPoolExecutor(max_workers=min(len(agents), os.cpu_count() or 1)) as pool:
        pbo_list = list(pool.map(lambda a: _pbo_of([h[a] for h in history]), agents))
    pbos = dict(zip(agents, pbo_list, strict=True))
    final = cumulative.copy()
    final["pbo"] = [pbos[a] for a in agents]
    # next round's weights, from all rounds played
    nxt = _weights_for(history, agents, eligible, cfg)
    final["next_weight"] = [float(x) for x in nxt[cfg.method]]
    ranked = _rank(final, score, periods_per_year)
    boards_cum = cumulative_leaderboard(per_round_boards)
    ranked = _attach_cumulative(ranked, boards_cum)
    return TournamentResult(
        agents=agents,
        rounds=list(rounds),
        reports=reports,
        oos_ts=np.concatenate(ts_parts),
        agent_returns=np.concatenate(ret_parts, axis=0),
        portfolio_returns={m: np.concatenate(port[m]) for m in METHODS},
        weights={
            m: pd.DataFrame(
                np.vstack(weights_rows[m]),
                columns=agents,
                index=pd.Index([r.index for r in rounds][: len(reports)], name="round"),
            )
            for m in METHODS
        },
        leaderboard=ranked,
        pbo=pbos,
        gates=gate_status,
    )


def _drop_population(
    history: list[dict[str, RoundResult]], reports: list[RoundReport], i: int
) -> None:
    """Replace round ``i``'s results by copies without their carried population state (each
    agent's next round has started from it; only the latest is kept: memory O(agents))."""
    old = history[i]
    if not any(getattr(r, "population", None) is not None for r in old.values()):
        return
    slim = {
        a: replace(r, population=None) if getattr(r, "population", None) is not None else r
        for a, r in old.items()
    }
    history[i] = slim
    reports[i] = replace(reports[i], results=slim)


def _rank(frame: pd.DataFrame, score: str, periods_per_year: float) -> pd.DataFrame:
    """Rank agents by ``score`` on their OOS records; ``sharpe`` in the output is annualised.

    The leaderboard's own selection is what the ranking deflates: picking the best of the N
    agents on OOS results, so ``n_trials`` = number of agents and the trial variance is the
    cross-section of their OOS Sharpes (``dsr_board``, ``dsr_z``). The per-agent ``dsr``
    column (kept as computed by :func:`agent_record`) deflates each agent's OOS Sharpe by
    every parameter set it tried in sample — the stricter, per-agent overfitting statistic.
    """
    rf = frame.drop(columns=["sharpe", "dsr", "n_trials", "var_trials_sharpe"])
    rf = rf.rename(columns={"sharpe_pp": "sharpe"})
    out = rank_agents(rf, score=score, periods_per_year=periods_per_year)
    out = out.rename(columns={"sharpe": "sharpe_pp", "dsr": "dsr_board"})
    out = out.rename(columns={"sharpe_ann": "sharpe"})
    agent_col = out["agent"] if "agent" in out.columns else out.index
    for col in ("dsr", "n_trials", "var_trials_sharpe"):
        out[col] = frame.loc[list(agent_col), col].to_numpy()
    return out


def _attach_cumulative(ranked: pd.DataFrame, cum: pd.DataFrame) -> pd.DataFrame:
    """Add the per-round consistency columns (rounds won, mean percentile) to the board."""
    key = "agent"
    left = ranked.reset_index() if key not in ranked.columns else ranked
    right = cum.reset_index() if key not in cum.columns else cum
    keep = [c for c in ("wins", "mean_percentile") if c in right.columns]
    out = left.merge(right[[key, *keep]].rename(columns={"wins": "rounds_won"}), on=key, how="left")
    return out


def weights_frame(result: TournamentResult, method: str = "kelly") -> pd.DataFrame:
    """Capital weights by round (rows) and agent (columns) of ``method``."""
    return result.weights[method]


def summary(result: TournamentResult, periods_per_year: float) -> dict[str, Any]:
    """A dict of headline numbers (for logs and the CLI)."""
    pm = result.portfolio_metrics(periods_per_year)
    return {
        "rounds": len(result.reports),
        "agents": len(result.agents),
        **{f"{m}_{k}": float(v) for m in pm.index for k, v in pm.loc[m].items()},
    }
