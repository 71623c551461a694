"""Tournament plots and tables, made with matplotlib's object API (Agg, no pyplot state).

Every function returns a :class:`matplotlib.figure.Figure` (log it with
:meth:`TournamentLogger.log_figure` or save it with :func:`save_figure`) or HTML text.

Inputs:

* equity curves: a mapping ``name -> 1-D array`` (or a DataFrame, one column per curve) of
  account values, e.g. growth of 1.0, sampled at the same times; ``index`` gives those times
  (int64 ns UTC, datetimes, or round numbers). Curves named in ``baselines`` are drawn
  dashed, the one named ``portfolio`` thick.
* weights: a DataFrame, one row per round and one column per agent, of capital fractions
  (>= 0; what a row leaves below 1 is cash and is drawn as a grey ``cash`` band).
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from quantarena.numfmt import fmt_cell

__all__ = [
    "drawdown",
    "plot_drawdowns",
    "plot_equity",
    "plot_weights",
    "save_figure",
    "save_table_html",
    "table_html",
]

CurveInput = Mapping[str, Sequence[float] | np.ndarray] | pd.DataFrame


def drawdown(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    """Drawdown of an equity curve, ``equity / running_max(equity) - 1`` (<= 0; -0.25 = 25 %
    below the previous peak). NaNs before the first value stay NaN."""
    x = np.asarray(equity, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"equity must be 1-D, got shape {x.shape}")
    peak = np.fmax.accumulate(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x / peak - 1.0


def _frame(curves: CurveInput, index: Sequence[Any] | np.ndarray | None) -> pd.DataFrame:
    if isinstance(curves, pd.DataFrame):
        df = curves.copy()
    else:
        if not curves:
            raise ValueError("no curves to plot")
        lengths = {k: len(np.asarray(v)) for k, v in curves.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"curves have different lengths: {lengths}")
        df = pd.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in curves.items()})
    if index is not None:
        idx = np.asarray(index)
        if len(idx) != len(df):
            raise ValueError(f"index has {len(idx)} entries, curves have {len(df)}")
        if idx.dtype.kind in "iu" and len(idx) and np.abs(idx).max() > 10**15:
            idx = pd.to_datetime(idx, unit="ns", utc=True)  # int64 ns since the epoch
        df.index = idx
    return df


def _date_axis(ax: Any, index: Any) -> None:
    """Dates on the x axis that never overlap: automatic ticks, concise labels."""
    if isinstance(index, pd.DatetimeIndex):
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _style(name: str, baselines: Sequence[str]) -> dict[str, Any]:
    if name == "portfolio":
        return {"linewidth": 2.4, "color": "black", "zorder": 5}
    if name in baselines:
        return {"linewidth": 1.2, "linestyle": "--", "alpha": 0.9}
    return {"linewidth": 1.0, "alpha": 0.85}


def plot_equity(
    curves: CurveInput,
    *,
    index: Sequence[Any] | np.ndarray | None = None,
    baselines: Sequence[str] = (),
    title: str = "Equity",
    log_scale: bool = False,
) -> Figure:
    """Equity curves of the agents and the portfolio against baselines (dashed)."""
    df = _frame(curves, index)
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.add_subplot()
    for name in df.columns:
        ax.plot(df.index, df[name].to_numpy(), label=str(name), **_style(str(name), baselines))
    _date_axis(ax, df.index)
    ax.set_title(title)
    ax.set_ylabel("equity")
    if log_scale:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small", ncols=2 if df.shape[1] > 6 else 1)
    return fig


def plot_drawdowns(
    curves: CurveInput,
    *,
    index: Sequence[Any] | np.ndarray | None = None,
    baselines: Sequence[str] = (),
    title: str = "Drawdown",
) -> Figure:
    """Drawdown (:func:`drawdown`, in %) of every curve."""
    df = _frame(curves, index)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.add_subplot()
    for name in df.columns:
        dd = 100.0 * drawdown(df[name].to_numpy())
        ax.plot(df.index, dd, label=str(name), **_style(str(name), baselines))
    _date_axis(ax, df.index)
    ax.set_title(title)
    ax.set_ylabel("drawdown (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    return fig


def plot_weights(weights: pd.DataFrame, *, title: str = "Capital weights by round") -> Figure:
    """Stacked bars of capital weights by round (rows: rounds, columns: agents); the part
    of each row below 1 is drawn as ``cash``. Raises ``ValueError`` on a negative or
    non-finite weight."""
    if weights.empty:
        raise ValueError("no weights to plot")
    w = weights.astype(np.float64)
    values = w.to_numpy()
    if not np.isfinite(values).all():
        raise ValueError("weights must be finite numbers")
    if (values < -1e-12).any():
        r, c = np.argwhere(values < -1e-12)[0]
        raise ValueError(
            f"weight of {w.columns[c]!r} at round {w.index[r]!r} is negative ({values[r, c]:g}): "
            "a stacked area needs weights >= 0"
        )
    values = np.clip(values, 0.0, None)
    layers = [values[:, j] for j in range(values.shape[1])]
    labels = [str(c) for c in w.columns]
    colors: list[Any] = [None] * len(layers)
    cash = 1.0 - values.sum(axis=1)
    if (cash > 1e-9).any():
        layers.append(np.clip(cash, 0.0, None))
        labels.append("cash")
        colors.append("lightgrey")
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.add_subplot()
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    colors = [c if c is not None else cycle[i % len(cycle)] for i, c in enumerate(colors)]
    # weights hold for a whole round: stacked bars, one per round (not interpolated areas)
    x = np.arange(len(w.index))
    bottom = np.zeros(len(x))
    for layer, label, color in zip(layers, labels, colors, strict=True):
        ax.bar(
            x,
            layer,
            bottom=bottom,
            width=1.0,
            label=label,
            color=color,
            alpha=0.9,
            edgecolor="white",
            linewidth=0.5,
        )
        bottom = bottom + layer
    step = max(1, len(x) // 20)
    ax.set_xticks(x[::step], [str(i) for i in list(w.index)[::step]])
    ax.set_xlim(-0.5, len(x) - 0.5)
    ax.set_title(title)
    ax.set_xlabel("round")
    ax.set_ylabel("weight")
    ax.set_ylim(0, max(1.0, float(values.sum(axis=1).max())) * 1.02)
    ax.legend(loc="upper left", fontsize="small", bbox_to_anchor=(1.0, 1.0))
    return fig


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:1.5em}"
    "table{border-collapse:collapse;font-size:14px}"
    "th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}"
    "th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}"
    "tr:nth-child(even){background:#fafafa}"
    "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}"
)


#: column headers people read (the CLI leaderboard's words); other columns keep their name
HEADERS: dict[str, str] = {
    "rank": "#",
    "sharpe": "OOS Sharpe",
    "total_return": "return",
    "max_drawdown": "max DD",
    "win_rate": "win rate",
    "n_trades": "trades",
    "dsr": "DSR",
    "pbo": "PBO",
    "next_weight": "next weight",
    "rounds_won": "rounds won",
    "gates_passed": "gates passed",
    "gates_failed": "gates failed",
    "failed_rounds": "failed rounds",
}


def table_html(
    df: pd.DataFrame,
    *,
    title: str = "Leaderboard",
    images: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> str:
    """A self-contained HTML page holding ``df`` as a table (a leaderboard: one row per
    agent), every number written by :func:`quantarena.numfmt.fmt_cell` for its column
    (percentages, ratios, probabilities; never an exponent), headers from ``headers``
    (default :data:`HEADERS`), then ``images`` (paths relative to the page, e.g. the
    plots beside it) shown and linked. Text is HTML-escaped."""
    heads = HEADERS if headers is None else headers

    def head(c: Any) -> str:
        return html.escape(heads.get(str(c), str(c)))

    cols = [df.index.name or "", *df.columns]
    th = "".join(f"<th>{head(c)}</th>" for c in cols)
    rows = []
    for idx, row in df.iterrows():
        cells = "".join(f"<td>{html.escape(fmt_cell(str(c), v))}</td>" for c, v in row.items())
        rows.append(f"<tr><td>{html.escape(str(idx))}</td>{cells}</tr>")
    figs = "".join(
        f"<figure><a href='{html.escape(p, quote=True)}'>"
        f"<img src='{html.escape(p, quote=True)}' alt='{html.escape(p, quote=True)}'></a>"
        f"<figcaption><a href='{html.escape(p, quote=True)}'>{html.escape(p)}</a>"
        "</figcaption></figure>"
        for p in images
    )
    t = html.escape(title)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{t}</title>"
        f"<style>{_CSS}</style></head><body><h2>{t}</h2>"
        f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"{figs}</body></html>\n"
    )


def _atomic_write(path: Path, write: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are for people to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 110) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix) atomically: a temp file, then rename."""
    return _atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi))


def save_table_html(
    df: pd.DataFrame,
    path: str | Path,
    *,
    title: str = "Leaderboard",
    images: Sequence[str] = (),
) -> Path:
    """Write :func:`table_html` to ``path`` atomically (``images`` relative to ``path``)."""
    text = table_html(df, title=title, images=images)
    return _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
