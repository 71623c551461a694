"""Leaderboards: rank agents on out-of-sample statistics, per round and across rounds.

The per-round input is one row per agent (a DataFrame indexed by agent, or a mapping
agent → dict) with these columns:

=====================  ========  ======================================================
column                 default   meaning
=====================  ========  ======================================================
``sharpe``             required  **per-period** (non-annualised) OOS Sharpe ratio
``n_obs``              required  number of OOS return observations behind ``sharpe``
                                 (for ``score="dsr"``)
``skew``               0         skewness of the OOS returns
``kurt``               3         non-excess kurtosis of the OOS returns
``n_trials``           see below number of configurations tried to find this agent
``var_trials_sharpe``  see below variance of those trials' per-period Sharpe ratios
=====================  ========  ======================================================

Scores (higher is better):

- ``"dsr"`` (default): the deflated Sharpe ratio (Bailey & López de Prado 2014), the
  probability that the agent's true Sharpe beats the best of ``n_trials`` skill-less trials,
  correcting for track length and non-normality. The leaderboard is **sorted by its
  z-statistic** ``dsr_z = (SR − SR0) / σ(SR)`` (same order as the probability, but it does
  not saturate at 1, so strong agents with long records stay apart).
- ``"trial_adjusted_sharpe"``: ``SR − SR0``, the per-period Sharpe in excess of the expected
  maximum Sharpe of ``n_trials`` null trials (ignores track length).
- ``"sharpe"``: the raw per-period Sharpe (no correction: use only for comparison).
- a callable ``f(frame) -> array/Series`` of scores, given the frame with the columns above
  plus the computed ones.

``n_trials`` / ``var_trials_sharpe``: the function arguments, if given, apply to every
agent (e.g. the total number of parameter sets tried in the tournament); else the columns,
if present; else the leaderboard itself is the selection: ``n_trials`` = number of agents and
``var_trials_sharpe`` = the cross-sectional variance of their ``sharpe``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from quantarena.tournaments.overfitting import (
    annualize_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe_z,
)

__all__ = ["SCORES", "cumulative_leaderboard", "rank_agents"]

SCORES = ("dsr", "trial_adjusted_sharpe", "sharpe")

ScoreFn = Callable[[pd.DataFrame], Any]


def _frame(stats: pd.DataFrame | Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    if isinstance(stats, pd.DataFrame):
        df = stats.copy()
    else:
        df = pd.DataFrame.from_dict(dict(stats), orient="index")
    df.index = df.index.astype(str)
    df.index.name = "agent"
    if df.index.has_duplicates:
        dup = df.index[df.index.duplicated()][0]
        raise ValueError(f"agent {dup!r} appears more than once — one row per agent")
    return df


def rank_agents(
    stats: pd.DataFrame | Mapping[str, Mapping[str, Any]],
    score: str | ScoreFn = "dsr",
    n_trials: int | None = None,
    var_trials_sharpe: float | None = None,
    periods_per_year: float | None = None,
) -> pd.DataFrame:
    """A leaderboard: ``stats`` with computed columns, sorted best first.

    Args:
        stats: one row per agent (see the module docstring for the columns).
        score: ``"dsr"``, ``"trial_adjusted_sharpe"``, ``"sharpe"`` or a callable.
        n_trials: N for every agent (overrides the ``n_trials`` column).
        var_trials_sharpe: V[SR] for every agent, per-period units (overrides the column).
        periods_per_year: if given, adds ``sharpe_ann`` (= sharpe · sqrt(periods_per_year)).

    Returns:
        DataFrame indexed by agent, sorted by ``score`` descending (NaN last, ties by agent
        name), with columns ``rank`` (1 = best), ``score``, ``sr0`` (per-period expected max
        Sharpe of the trials), ``trial_adjusted_sharpe``, ``dsr``, ``dsr_z`` and the input
        columns.
    """
    df = _frame(stats)
    if df.empty:
        cols = ["rank", "score", "sharpe", "sr0", "trial_adjusted_sharpe", "dsr", "dsr_z"]
        return pd.DataFrame(columns=cols, index=pd.Index([], name="agent"))
    if "sharpe" not in df.columns:
        raise ValueError("stats: missing column 'sharpe' (per-period, non-annualised)")
    sr = pd.to_numeric(df["sharpe"], errors="raise").to_numpy(dtype=np.float64)

    if n_trials is not None:
        nt = np.full(len(df), float(n_trials))
    elif "n_trials" in df.columns:
        nt = df["n_trials"].to_numpy(dtype=np.float64)
    else:
        nt = np.full(len(df), float(len(df)))
    if var_trials_sharpe is not None:
        vt = np.full(len(df), float(var_trials_sharpe))
    elif "var_trials_sharpe" in df.columns:
        vt = df["var_trials_sharpe"].to_numpy(dtype=np.float64)
    else:
        finite = sr[np.isfinite(sr)]
        v = float(np.var(finite, ddof=1)) if finite.size > 1 else 0.0
        vt = np.full(len(df), v)
    if np.any(~np.isfinite(nt) | (nt < 1)):
        raise ValueError("n_trials must be a number >= 1 for every agent")
    if np.any(~np.isfinite(vt) | (vt < 0)):
        raise ValueError("var_trials_sharpe must be a number >= 0 for every agent")

    sr0 = np.asarray(expected_max_sharpe(nt, vt), dtype=np.float64)
    df["sr0"] = sr0
    df["trial_adjusted_sharpe"] = sr - sr0
    need_dsr = score == "dsr" or "n_obs" in df.columns
    if need_dsr:
        if "n_obs" not in df.columns:
            raise ValueError(
                "stats: missing column 'n_obs' (OOS observations) needed by score='dsr'"
                " — add it or use score='trial_adjusted_sharpe'"
            )
        skew = df["skew"].to_numpy(dtype=np.float64) if "skew" in df.columns else 0.0
        kurt = df["kurt"].to_numpy(dtype=np.float64) if "kurt" in df.columns else 3.0
        z = np.asarray(
            probabilistic_sharpe_z(
                (sr, df["n_obs"].to_numpy(dtype=np.float64), skew, kurt), sr_benchmark=sr0
            ),
            dtype=np.float64,
        )
        df["dsr_z"] = z
        df["dsr"] = _st.norm.cdf(z)
    if periods_per_year is not None:
        df["sharpe_ann"] = annualize_sharpe(sr, periods_per_year)

    if callable(score):
        sc = np.asarray(score(df), dtype=np.float64)
        if sc.shape != (len(df),):
            raise ValueError(f"score callable must return {len(df)} values, got shape {sc.shape}")
        key = sc
    elif score == "dsr":
        sc, key = df["dsr"].to_numpy(), df["dsr_z"].to_numpy()
    elif score == "trial_adjusted_sharpe":
        sc = key = df["trial_adjusted_sharpe"].to_numpy()
    elif score == "sharpe":
        sc = key = sr
    else:
        raise ValueError(f"score must be one of {SCORES} or a callable, got {score!r}")
    df.insert(0, "score", sc)
    # sort: key descending, NaN last, ties by agent name
    order = np.lexsort((df.index.to_numpy(dtype=str), -np.nan_to_num(key, nan=-np.inf)))
    df = df.iloc[order]
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df


def cumulative_leaderboard(
    rounds: Sequence[pd.DataFrame] | Mapping[Any, pd.DataFrame],
) -> pd.DataFrame:
    """Aggregate per-round leaderboards (outputs of :func:`rank_agents`) into one.

    An agent is counted only in the rounds it played. Columns: ``rounds`` played,
    ``mean_score``, ``mean_rank``, ``best_rank``, ``wins`` (rounds ranked 1), ``last_rank``
    (rank in the last round it played), ``mean_percentile`` (mean of ``1 − (rank − 1)/n``
    with n agents that round: 1 = always first, comparable across rounds of different sizes),
    and ``mean_sharpe`` if the rounds carry ``sharpe``. Absence from a round is neither
    rewarded nor penalised: filter on ``rounds`` to require a minimum record.

    Sorted by ``mean_percentile`` descending, then ``mean_score`` descending, then agent;
    ``rank`` is the resulting position (1 = best).
    """
    items = list(rounds.items()) if isinstance(rounds, Mapping) else list(enumerate(rounds))
    parts = []
    for label, frame in items:
        if frame is None or len(frame) == 0:
            continue
        for col in ("rank", "score"):
            if col not in frame.columns:
                raise ValueError(
                    f"round {label!r}: missing column {col!r} — pass rank_agents() outputs"
                )
        part = pd.DataFrame(
            {
                "agent": frame.index.astype(str),
                "round": [label] * len(frame),
                "order": len(parts),
                "rank": frame["rank"].to_numpy(dtype=np.float64),
                "score": frame["score"].to_numpy(dtype=np.float64),
                "pct": 1.0 - (frame["rank"].to_numpy(dtype=np.float64) - 1.0) / len(frame),
                "sharpe": (
                    frame["sharpe"].to_numpy(dtype=np.float64)
                    if "sharpe" in frame.columns
                    else np.nan
                ),
            }
        )
        parts.append(part)
    cols = ["rank", "rounds", "mean_percentile", "mean_score", "mean_rank", "best_rank"]
    cols += ["wins", "last_rank", "mean_sharpe"]
    if not parts:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="agent"))
    long = pd.concat(parts, ignore_index=True).sort_values(["order"], kind="stable")
    g = long.groupby("agent", sort=True)
    out = pd.DataFrame(
        {
            "rounds": g.size(),
            "mean_percentile": g["pct"].mean(),
            "mean_score": g["score"].mean(),
            "mean_rank": g["rank"].mean(),
            "best_rank": g["rank"].min(),
            "wins": g["rank"].apply(lambda s: int((s == 1).sum())),
            "last_rank": g["rank"].last(),
            "mean_sharpe": g["sharpe"].mean(),
        }
    )
    out.index.name = "agent"
    pct = out["mean_percentile"].to_numpy()
    ms = np.nan_to_num(out["mean_score"].to_numpy(dtype=np.float64), nan=-np.inf)
    order = np.lexsort((out.index.to_numpy(dtype=str), -ms, -pct))
    out = out.iloc[order]
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out["rounds"] = out["rounds"].astype(np.int64)
    out["best_rank"] = out["best_rank"].astype(np.int64)
    out["last_rank"] = out["last_rank"].astype(np.int64)
    return out[cols]
