"""Record a tournament: MLflow runs (parent + one child per agent) and files on disk.

The one writer of a tournament's results (the director, or the local driver). Per round it
logs each agent's OOS metrics with ``step = round`` (one batched call per agent), its chosen
parameters and gate status; the parent run gets the portfolio's metrics per round. At the end
it writes the leaderboard (CSV, HTML that shows and links the plots, Markdown; numbers by
:mod:`quantarena.numfmt`), equity and drawdown plots of the agents and the portfolio against
the baselines, the stacked bars of capital weights, the per-round leaderboards, and the
equity curves the plots are drawn from (``equity_agents.csv``, ``equity_portfolio.csv``), to
``output_dir`` and as MLflow artifacts. :func:`render_report` draws the report again from
those files (``quantarena tournament report``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantarena.numfmt import fmt_cell
from quantarena.redact import redact_text, redacted
from quantarena.tracking.artifacts import (
    HEADERS,
    plot_drawdowns,
    plot_equity,
    plot_weights,
    save_figure,
    save_table_html,
)
from quantarena.tracking.mlflow_logger import TournamentLogger

__all__ = [
    "FINAL_PARAMS",
    "LEADERBOARD_COLUMNS",
    "PLOTS",
    "TournamentRecorder",
    "leaderboard_view",
    "read_equity",
    "render_report",
    "write_final_params",
    "write_leaderboard",
]

#: file of each agent's kind, options and parameter set chosen in the last round
FINAL_PARAMS = "final_params.json"

#: columns of the leaderboard people read (CLI table, HTML, Markdown)
LEADERBOARD_COLUMNS = (
    "rank",
    "agent",
    "sharpe",
    "total_return",
    "max_drawdown",
    "win_rate",
    "n_trades",
    "dsr",
    "pbo",
    "weight",
    "next_weight",
    "rounds_won",
    "gates_passed",
    "gates_failed",
    "held_back_by",
    "failed_rounds",
)


def leaderboard_view(board: pd.DataFrame) -> pd.DataFrame:
    """The readable columns of a final leaderboard, in order."""
    cols = [c for c in LEADERBOARD_COLUMNS if c in board.columns]
    return board[cols].reset_index(drop=True)


def _round_metrics(rec: Any, res: Any) -> dict[str, float]:
    m = {
        f"oos_{k}": v
        for k, v in res.oos_metrics.items()
        if k in ("sharpe", "total_return", "max_drawdown", "win_rate", "n_trades", "turnover")
    }
    m.update({f"is_{k}": v for k, v in res.is_metrics.items() if k in ("sharpe", "total_return")})
    m.update(
        {
            f"cum_{k}": rec[k]
            for k in ("sharpe", "total_return", "max_drawdown", "dsr", "win_rate", "history_days")
            if k in rec
        }
    )
    m["n_trials"] = float(res.n_trials)
    return m


class TournamentRecorder:
    """Logs a tournament as it runs (``on_round``) and its results (``finish``).

    Args:
        cfg: the resolved :class:`~quantarena.config.TournamentConfig`.
        kinds: agent name → agent kind (tags of the child runs).
        enabled: ``False`` writes files only (no MLflow), e.g. for a quick local run.
        resume: the run ids of an interrupted run (``TournamentLogger.run_ids``) to continue
            into, with no metric point logged twice.

    Files first, MLflow second: when the tracking store stays unreachable past the logger's
    retries, the round's metrics stay buffered (written on a later flush), a warning is
    printed and the tournament goes on; the files in ``output_dir`` are written before any
    MLflow call of :meth:`finish`, and an MLflow failure there is reported in the summary
    (``mlflow_error``), not raised.
    """

    def __init__(
        self,
        cfg: Any,
        kinds: dict[str, str],
        *,
        enabled: bool = True,
        resume: dict[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.out = Path(cfg.tracking.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log: TournamentLogger | None = None
        self.run_id: str | None = None
        self.latest_model: dict[str, str] = {}
        self.flush_every_s = 5.0
        self._last_flush = time.monotonic()
        self.registered: dict[str, int] = {}
        self.mlflow_errors: list[str] = []
        self.cooldown_s = 60.0  # after MLflow gave up: rounds wait this long before a retry
        self._down_until = 0.0
        self._backlog: list[Any] = []  # round reports not (fully) logged yet, in order
        if enabled:
            self.log = TournamentLogger.from_config(cfg, buffer=True)
            if resume:
                agents = {k: v for k, v in resume.items() if k != "parent"}
                self.log.resume(resume["parent"], agents)
                self.run_id = resume["parent"]
            else:
                self.run_id = self.log.start(redacted(cfg), tags={"quantarena.seed": cfg.seed})
            for name, kind in kinds.items():
                self.log.agent_run(name, kind=kind)

    def run_ids(self) -> dict[str, str]:
        """The MLflow run ids (for a checkpoint; empty without MLflow)."""
        return self.log.run_ids() if self.log is not None else {}

    def _degraded(self, exc: BaseException) -> None:
        import warnings

        msg = redact_text(
            f"MLflow unreachable ({type(exc).__name__}: {str(exc).strip()[:300]}); "
            "metrics kept to retry"
        )
        self.mlflow_errors.append(msg)
        self._down_until = time.monotonic() + self.cooldown_s
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def _drain(self) -> bool:
        """Log the backlog of round reports in order; False (the rest kept) when MLflow is
        still unreachable. A report half-logged before is logged again without duplicates
        (the logger skips metric points it holds or buffers)."""
        while self._backlog:
            try:
                self._on_round(self._backlog[0])
            except Exception as exc:
                self._degraded(exc)
                return False
            self._backlog.pop(0)
        return True

    def flush(self) -> bool:
        """Write buffered metrics now (before a checkpoint); False when MLflow is unreachable
        (they stay buffered)."""
        if self.log is None:
            return True
        if time.monotonic() < self._down_until or not self._drain():
            return False
        try:
            self.log.flush()
        except Exception as exc:
            self._degraded(exc)
            return False
        self._last_flush = time.monotonic()
        return True

    # ------------------------------------------------------------------ per round
    def on_round(self, report: Any) -> None:
        """Log one :class:`~quantarena.tournaments.director.RoundReport` (a failed agent-round
        adds its traceback as ``failures/round-<k>.txt`` and tag ``failed.round-<k>`` on the
        agent's run). A replayed round of a resumed run logs only what its runs lack (e.g.
        metrics kept back while MLflow was down when the run stopped)."""
        if self.log is None:
            return
        self._backlog.append(report)
        if time.monotonic() < self._down_until:
            return  # MLflow gave up recently: keep the round for later, do not stall the run
        self._drain()

    def _on_round(self, report: Any) -> None:
        assert self.log is not None
        k = report.round.index
        cum = report.cumulative
        for agent, res in report.results.items():
            rec = cum.loc[agent].to_dict()
            metrics = _round_metrics(rec, res)
            metrics["weight"] = report.weights[self.cfg.allocation.method][agent]
            self.log.log_round(agent, k, metrics)
            self.log.log_params(agent, res.chosen, round_idx=k)
            if getattr(res, "failed", None):
                self.log.log_text(res.failed, f"failures/round-{k}.txt", agent=agent)
                self.log.set_tags(agent, {f"failed.round-{k}": res.failed.strip()[-500:]})
            if getattr(res, "model", None) is not None and not report.replayed:
                self._log_model(agent, k, res)
        port = {f"{m}_{key}": v for m, d in report.portfolio.items() for key, v in d.items()}
        self.log.log_round(None, k, port)
        # write buffered metrics at most every few seconds: the MLflow UI stays live during a
        # long tournament without one database round trip per agent per round
        now = time.monotonic()
        if now - self._last_flush >= self.flush_every_s:
            self.log.flush()  # an error goes to _drain, which keeps the report
            self._last_flush = now

    def _log_model(self, agent: str, k: int, res: Any) -> None:
        """A learning agent's model of round ``k`` (with its signature and the round's OOS
        metrics) on the agent's run; the latest is remembered for the registry."""
        from quantarena.tracking.models import log_model

        oos = {f"oos_{m}": res.oos_metrics.get(m) for m in ("sharpe", "total_return")}
        self.latest_model[agent] = log_model(
            self.log, res.model, f"model-round-{k}", agent=agent, metrics=oos, step=k
        )

    # ------------------------------------------------------------------ at the end
    def finish(
        self, result: Any, periods_per_year: float, legs: dict[str, list[str]] | None = None
    ) -> dict[str, Any]:
        """Write the leaderboard, plots and tables; close the MLflow runs. Returns a summary
        (paths, run id, portfolio metrics). ``legs``: the arbitrage agents' two symbols
        (:meth:`~quantarena.tournaments.setup.TournamentInputs.legs`), recorded in
        :data:`FINAL_PARAMS`."""
        out = self.out
        board = leaderboard_view(result.leaderboard)
        rounds = pd.concat([r.leaderboard for r in result.reports], ignore_index=False)
        rounds.to_csv(out / "leaderboard_by_round.csv")

        idx = pd.to_datetime(result.oos_ts, utc=True)
        agents_eq = pd.DataFrame(
            np.cumprod(1 + result.agent_returns, axis=0), index=idx, columns=result.agents
        )
        port_eq = pd.DataFrame(
            {
                ("portfolio" if m == self.cfg.allocation.method else m): np.cumprod(1 + r)
                for m, r in result.portfolio_returns.items()
            },
            index=idx,
        )
        # plots need no more points than a screen has pixels: a year of 1-minute bars is
        # ~500k rows per curve; keep the last row of every bucket (numbers in the tables and
        # metrics come from the full series)
        step = max(1, len(idx) // 4000)
        if step > 1:
            keep = np.r_[np.arange(step - 1, len(idx), step), len(idx) - 1]
            keep = np.unique(keep)
            agents_eq, port_eq = agents_eq.iloc[keep], port_eq.iloc[keep]
        for name, eq in (("equity_agents.csv", agents_eq), ("equity_portfolio.csv", port_eq)):
            eq.rename_axis("ts").to_csv(out / name)
        files = render_report(
            out,
            name=self.cfg.name,
            method=self.cfg.allocation.method,
            board=board,
            agents_eq=agents_eq,
            port_eq=port_eq,
            weights=result.weights[self.cfg.allocation.method],
        )
        figs = [p.name for p in files if p.suffix == ".png"]
        for m, w in result.weights.items():
            w.to_csv(out / f"weights_{m}.csv")
        pm = result.portfolio_metrics(periods_per_year)
        pm.to_csv(out / "portfolio.csv")
        (out / "config.yaml").write_text(redacted(self.cfg).to_yaml(), encoding="utf-8")
        summary = {
            "name": self.cfg.name,
            "rounds": len(result.reports),
            "agents": result.agents,
            "output_dir": str(out.resolve()),
            "mlflow_uri": redact_text(self.cfg.tracking.mlflow_uri) if self.log else None,
            "run_id": self.run_id,
            "costs": self.cfg.costs.to_costs().describe(),
            "portfolio": {m: {k: float(v) for k, v in row.items()} for m, row in pm.iterrows()},
        }
        write_final_params(out, self.cfg, result, legs)
        summary["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))

        if self.log is not None:
            try:
                if not self._drain():
                    raise RuntimeError("the rounds' metrics could not be logged")
                self._finish_mlflow(result, board, pm, figs, summary)
            except Exception as exc:  # the files above hold every result
                self._degraded(exc)
                summary["mlflow_error"] = self.mlflow_errors[-1]
        if self.mlflow_errors:
            summary["mlflow_warnings"] = list(self.mlflow_errors)
        return summary

    def _finish_mlflow(
        self, result: Any, board: pd.DataFrame, pm: pd.DataFrame, figs: list[str], summary: dict
    ) -> None:
        out = self.out
        log = self.log
        assert log is not None
        final = result.leaderboard.set_index("agent")
        for agent in result.agents:
            row = final.loc[agent]
            log.set_gate_status(agent, result.gates[agent])
            log.set_tags(
                agent, {"rank": int(row["rank"]), "pbo": f"{row.get('pbo', float('nan')):.4f}"}
            )
            last = result.reports[-1].results[agent]
            log.log_params(agent, {f"final.{k}": v for k, v in last.chosen.items()})
        pm_flat = {f"final_{m}_{k}": float(v) for m, row in pm.iterrows() for k, v in row.items()}
        log.log_round(None, 0, pm_flat)
        log.flush()
        log.log_table(board.set_index("agent"), "leaderboard")
        from quantarena.tracking.models import register_if_passed

        for agent, uri in self.latest_model.items():  # gate-passing learners only
            mv = register_if_passed(
                uri,
                f"{self.cfg.name}-{agent}",
                result.gates[agent],
                tracking_uri=self.cfg.tracking.mlflow_uri,
            )
            if mv is not None:
                self.registered[agent] = int(mv.version)
        summary["registered_models"] = dict(self.registered)
        for name in [
            *figs,
            "leaderboard.md",
            "leaderboard.html",
            "equity_agents.csv",
            "equity_portfolio.csv",
            "config.yaml",
            "leaderboard_by_round.csv",
            "portfolio.csv",
            "summary.json",
            FINAL_PARAMS,
            *(f"weights_{m}.csv" for m in result.weights),
        ]:
            log.log_artifact(out / name)
        log.finish("FINISHED")

    def fail(self) -> None:
        """Close the runs as FAILED (after an error)."""
        if self.log is not None:
            try:
                self.log.finish("FAILED")
            except Exception as exc:
                self._degraded(exc)


#: the plots of a report, in the order the HTML page shows them
PLOTS = ("equity_portfolio.png", "equity_agents.png", "drawdowns.png", "weights.png")


def render_report(
    out: str | Path,
    *,
    name: str,
    method: str,
    board: pd.DataFrame,
    agents_eq: pd.DataFrame,
    port_eq: pd.DataFrame,
    weights: pd.DataFrame,
) -> list[Path]:
    """Write a tournament's readable report into ``out``: the leaderboard (CSV, HTML with
    the plots linked, Markdown) and the plots (:data:`PLOTS`: equity of the portfolio
    against its baselines, equity of the agents, drawdowns, capital weights by round).
    ``board`` is a final leaderboard (:func:`leaderboard_view` columns), ``agents_eq`` /
    ``port_eq`` equity curves (growth of 1, one column per agent / allocation; the
    allocation ``method`` is the column ``portfolio``), ``weights`` one row per round.
    Returns the paths written (absolute)."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    board = leaderboard_view(board)
    baselines = [c for c in port_eq.columns if c != "portfolio"]
    figs = {
        "equity_portfolio.png": plot_equity(
            port_eq, baselines=baselines, title="Portfolio vs baselines — OOS equity"
        ),
        "equity_agents.png": plot_equity(agents_eq, title="Agents — OOS equity"),
        "drawdowns.png": plot_drawdowns(
            pd.concat([agents_eq, port_eq], axis=1), baselines=baselines, title="Drawdowns (OOS)"
        ),
        "weights.png": plot_weights(weights, title=f"Capital weights by round ({method})"),
    }
    written = [save_figure(fig, out / fname) for fname, fig in figs.items()]
    written += write_leaderboard(out, name=name, board=board, images=list(figs))
    return [Path(p).resolve() for p in written]


def write_leaderboard(
    out: str | Path, *, name: str, board: pd.DataFrame, images: list[str] | tuple[str, ...] = ()
) -> list[Path]:
    """Write the final leaderboard into ``out`` as CSV, Markdown and an HTML page that shows
    and links ``images`` (file names in ``out``). Returns the paths written."""
    out = Path(out)
    board = leaderboard_view(board)
    board.to_csv(out / "leaderboard.csv", index=False)
    (out / "leaderboard.md").write_text(_markdown(board), encoding="utf-8")
    html = save_table_html(
        board.set_index("rank" if "rank" in board.columns else "agent"),  # as the CLI: #, agent
        out / "leaderboard.html",
        title=f"{name} — leaderboard",
        images=list(images),
    )
    return [out / "leaderboard.csv", out / "leaderboard.md", html]


def write_final_params(
    out: str | Path, cfg: Any, result: Any, legs: dict[str, list[str]] | None = None
) -> Path:
    """Write :data:`FINAL_PARAMS` into ``out``: per agent its ``kind``, ``max_position``,
    ``leverage``, ``stops`` and ``params`` — the ONE parameter set it chose in the last round
    (what paper trading promotes, :mod:`quantarena.live.promotion`) — plus the last round's
    index. An arbitrage agent named in ``legs``
    (:meth:`~quantarena.tournaments.setup.TournamentInputs.legs`) also gets ``legs``: the two
    symbols it traded, in order A,B (its constructor options are ``max_position``'s alone: a
    tournament builds every agent with only that). Written before ``summary.json``, so a
    finished tournament has both."""
    last = result.reports[-1]
    agents = {}
    for a in cfg.agents:
        res = last.results[a.name]
        agents[a.name] = {
            "kind": a.kind,
            "params": {k: _plain(v) for k, v in res.chosen.items()},
            "max_position": a.max_position,
            "leverage": a.leverage,
            "stops": a.stops.model_dump() if a.stops is not None else None,
            "failed_last_round": bool(getattr(res, "failed", None)),
        }
        if legs and a.name in legs:
            agents[a.name]["legs"] = [str(s) for s in legs[a.name]]
    doc = {"name": cfg.name, "round": int(last.round.index), "agents": agents}
    path = Path(out) / FINAL_PARAMS
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def _plain(v: Any) -> Any:
    """A JSON value of a chosen parameter (NumPy scalars as Python numbers)."""
    return v.item() if isinstance(v, np.generic) else v


def read_equity(path: str | Path) -> pd.DataFrame:
    """An ``equity_*.csv`` written by :meth:`TournamentRecorder.finish` (UTC times)."""
    df = pd.read_csv(path, index_col=0)
    df.index = pd.to_datetime(df.index, utc=True)
    return df


def _markdown(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    head = "| " + " | ".join(HEADERS.get(c, c) for c in cols) + " |"
    sep = "|" + "---|" * len(cols)
    rows = [
        "| " + " | ".join(fmt_cell(c, v) for c, v in zip(cols, r, strict=True)) + " |"
        for r in df.itertuples(index=False)
    ]
    return "\n".join([head, sep, *rows]) + "\n"


def open_recording(cfg: Any, start: Any, *, log_mlflow: bool = True) -> tuple[Any, Any]:
    """The run's :class:`TournamentRecorder` (resuming ``start``'s MLflow runs when given) and
    the :class:`~quantarena.tournaments.checkpoint.Checkpointer` that saves after every round,
    flushing the recorder first — one pairing for the driver and the director actor."""
    from quantarena.tournaments.checkpoint import Checkpointer, checkpoint_target

    rec = TournamentRecorder(
        cfg,
        {a.name: a.kind for a in cfg.agents},
        enabled=log_mlflow,
        resume=(start.run_ids or None) if start is not None else None,
    )
    ckpt = Checkpointer(
        checkpoint_target(cfg),
        cfg.model_dump(mode="json"),
        rec.run_ids,
        start=start,
        before_save=rec.flush,
    )
    return rec, ckpt
