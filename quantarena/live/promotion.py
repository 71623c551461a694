"""Promotion into paper trading: candidates from the latest finished backtest tournament.

Pure (no Redis, Ray or MLflow): reads the files a ``quantarena tournament run`` leaves in its
``tracking.output_dir`` and says which agents may paper-trade, with which ONE parameter set.
The live director (:mod:`.promoter`, :mod:`.service`) starts and stops the traders.

What is read, and why:

* ``summary.json`` — written last by a tournament: its presence means *finished*; its
  ``finished_at`` (UTC, ISO 8601; the file's modification time for runs written before the
  field existed) orders tournaments, newest first;
* ``leaderboard.csv`` — rank, Sharpe, DSR and the failed gates of each agent;
* ``final_params.json`` — each agent's kind, ``max_position``, ``leverage``, ``stops`` and the
  parameter set it chose in the **last** round (for a scanned, tuned or ML agent alike); an
  arbitrage agent's ``legs`` (the two symbols it traded, in order A,B). Output folders
  written before that file existed fall back to the checkpoint (``checkpoint.pkl``: the last
  round's ``RoundResult.chosen``; kinds from its config; no legs).

A *folder of runs* (e.g. ``runs/``) holds one tournament per sub-folder: the newest finished
one (by ``finished_at``) is used; a folder that is itself a finished tournament is used as is.

Which agents are candidates (:func:`select`):

* **gates**: the tournament's gates *but the paper gate*, which no backtest can meet (paper
  trading decides it, :mod:`.director`); with ``require_gates`` every other gate in the
  leaderboard's ``gates_failed`` must have passed;
* **a streaming path**: bar agents with ``_stream`` (momentum, mean_reversion, breakout,
  vol_target, buy_hold, ml), or a tick agent when the live config has a ``tick_feed`` to
  trade it on (otherwise skipped, with the reason): a market maker (market_maker, glft), or
  an arbitrageur (pairs_arb, cross_venue_arb) on the legs it traded in the tournament —
  :attr:`Candidate.symbol` ``"A,B"``, launched as a config agent with ``symbol: A,B`` is
  (:func:`.launch.make_arb_trader`); one whose final parameters record no legs (a
  tournament run before they were recorded) is skipped with the reason. A bar agent's
  ``stops`` and ``leverage`` go with it: its paper exchange applies them with the engine's
  rules, as its backtest did;
* **the best ``top``** of the remaining ones by tournament rank.

An account is named :func:`account_name` — ``t-{agent}-{6 hex of the parameter set}`` — so a
candidate whose parameters (or an arbitrageur's legs) changed since it was promoted is a *new*
account with a fresh paper record, and the same parameters always map to the same account (a
director restarted finds it again in Redis).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "Candidate",
    "PromoteConfig",
    "TournamentOutput",
    "account_name",
    "latest_tournament",
    "read_tournament",
    "select",
]

#: files of a finished tournament's output folder
SUMMARY, LEADERBOARD, FINAL_PARAMS = "summary.json", "leaderboard.csv", "final_params.json"
#: the gate a backtest cannot pass (paper trading decides it)
PAPER_GATE = "paper"


@dataclass(frozen=True)
class PromoteConfig:
    """The live config's ``promote:`` section.

    Attributes:
        source: a tournament's output folder, or a folder of them (key ``from``).
        top: promote at most this many candidates of the newest tournament (best rank first).
        require_gates: only agents that passed every tournament gate but ``paper``.
        every_days: days of bar time between re-reads of the source (default: at each
            reallocation, ``allocation.every_days``).
        warmup_bars: a trader promoted mid-run warms its indicators on up to this many feed
            bars before its promotion day.
    """

    source: str
    top: int = 5
    require_gates: bool = True
    every_days: float | None = None
    warmup_bars: int = 5000

    @classmethod
    def from_dict(cls, d: Any, where: str = "promote") -> PromoteConfig:
        """From the ``promote:`` mapping; errors name the key."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: give a mapping, e.g. {{from: runs/tournament, top: 5}}")
        d = dict(d)
        if "from" not in d:
            raise ValueError(f"{where}: needs 'from' (a tournament's output folder)")
        d["source"] = str(d.pop("from"))
        known = set(cls.__dataclass_fields__) - {"source"}
        bad = sorted(set(d) - known - {"source"})
        if bad:
            raise ValueError(
                f"{where}: unknown key {bad[0]!r}; known: from, {', '.join(sorted(known))}"
            )
        cfg = cls(**d)
        if int(cfg.top) < 1:
            raise ValueError(f"{where}.top must be >= 1, got {cfg.top!r}")
        if cfg.every_days is not None and not cfg.every_days > 0:
            raise ValueError(f"{where}.every_days must be > 0, got {cfg.every_days!r}")
        if int(cfg.warmup_bars) < 0:
            raise ValueError(f"{where}.warmup_bars must be >= 0, got {cfg.warmup_bars!r}")
        return cfg


@dataclass(frozen=True)
class Candidate:
    """One agent of a finished tournament, as promotion sees it.

    Attributes:
        agent: the tournament's agent name. kind: its registered agent kind.
        params: the ONE parameter set it chose in the tournament's last round.
        options: agent constructor options for paper trading (``max_position``).
        rank: its final rank (1 = best). sharpe: annualised OOS Sharpe. dsr: deflated Sharpe.
        gates_failed: the tournament gates it failed, the paper gate left out.
        streaming: whether it can paper-trade (a bar agent with a streaming path, or a
            market maker or arbitrageur — on the live config's tick feed).
        reason: why it is not promoted ("" when :attr:`promote`).
        promote: chosen by :func:`select`.
        stops: its tournament's stops (``stop_loss``, ``take_profit``, ``trailing``; None:
            none) and leverage (cap on ``sum |w|``) — a bar agent's paper exchange applies
            both.
        symbol: an arbitrageur's legs ``"A,B"`` (the tournament's, in its order), as a live
            config's ``symbol:``; None for other agents.
    """

    agent: str
    kind: str
    params: dict[str, Any]
    options: dict[str, Any]
    rank: int
    sharpe: float
    dsr: float
    gates_failed: tuple[str, ...]
    streaming: bool
    reason: str = ""
    promote: bool = False
    stops: dict[str, Any] | None = None
    leverage: float = 1.0
    symbol: str | None = None

    @property
    def gates_passed(self) -> bool:
        """Every tournament gate but ``paper`` passed."""
        return not self.gates_failed

    @property
    def account(self) -> str:
        """The paper account this candidate trades as (:func:`account_name`)."""
        return account_name(self.agent, self.kind, self.params, self.options, self.stops,
                            self.leverage, self.symbol)  # fmt: skip


@dataclass(frozen=True)
class TournamentOutput:
    """A finished tournament's output folder and its candidates (rank order)."""

    path: Path
    name: str
    finished_at: str
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)


def check_stops(v: Any) -> dict[str, Any] | None:
    """An agent's ``stops`` (a mapping of ``stop_loss`` / ``take_profit`` / ``trailing`` to
    fractions of price, null or 0 = off) checked by the engine's rule; None when absent or
    all off. ``ValueError`` (one line) names the field."""
    from dataclasses import fields

    from quantarena.engine.stops import Stops, check_level

    if v is None:
        return None
    if not isinstance(v, dict):
        raise ValueError("stops must be a mapping, e.g. {stop_loss: 0.02}")
    known = [f.name for f in fields(Stops)]
    bad = sorted(set(v) - set(known))
    if bad:
        raise ValueError(f"stops: unknown key {bad[0]!r}; known: {', '.join(known)}")
    out = {}
    for k in known:
        try:
            out[k] = check_level(v.get(k)) or None  # 0 = off = null
        except ValueError as e:
            raise ValueError(f"stops.{k}: {e}") from None
    return out if any(x is not None for x in out.values()) else None


def check_leverage(v: Any) -> float:
    """An agent's ``leverage`` (cap on ``sum |w|``): a finite number > 0, else
    ``ValueError`` (one line)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < math.inf:
        raise ValueError(f"leverage must be a number > 0, got {v!r}")
    return float(v)


def account_name(
    agent: str, kind: str, params: dict[str, Any], options: dict[str, Any],
    stops: dict[str, Any] | None = None, leverage: float = 1.0, symbol: str | None = None,
) -> str:  # fmt: skip
    """``t-{agent}-{h}``: ``h`` = the first 6 hex digits of the SHA-256 of the kind, the
    parameter set and the options in canonical JSON (and the stops and leverage, when set,
    and an arbitrageur's legs ``symbol``) — a new parameter set is a new account."""
    key: list[Any] = [kind, params, options]
    if stops or float(leverage) != 1.0:  # accounts without them keep their names
        key.append({"stops": stops, "leverage": float(leverage)})
    if symbol:
        key.append({"symbol": symbol})
    blob = json.dumps(key, sort_keys=True, default=str)
    return f"t-{agent}-{hashlib.sha256(blob.encode()).hexdigest()[:6]}"


def _finished_at(folder: Path) -> str | None:
    """When the tournament in ``folder`` finished (ISO UTC), None when it did not."""
    s = folder / SUMMARY
    if not (s.is_file() and (folder / LEADERBOARD).is_file()):
        return None
    try:
        doc = json.loads(s.read_text())
    except json.JSONDecodeError:
        return None
    at = doc.get("finished_at") if isinstance(doc, dict) else None
    if not at:
        at = pd.Timestamp(os.path.getmtime(s), unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(at)


def latest_tournament(path: str | Path) -> Path:
    """The folder of the newest finished tournament at ``path`` (itself, or the sub-folder
    with the latest ``finished_at``). ``ValueError`` (one line) when there is none."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{p}: no such folder — give a tournament's output folder (runs/NAME)")
    if _finished_at(p) is not None:
        return p
    found = [(at, d) for d in p.iterdir() if d.is_dir() and (at := _finished_at(d))]
    if not found:
        raise ValueError(
            f"{p}: no finished tournament (a folder with {SUMMARY} and {LEADERBOARD}) — "
            "run quantarena tournament run first, or wait for it to finish"
        )
    return max(found, key=lambda x: (x[0], x[1].name))[1]


def _final_params(folder: Path) -> dict[str, dict[str, Any]]:
    """agent → {kind, params, max_position, leverage, stops, legs (arbitrage)} of the last
    round."""
    f = folder / FINAL_PARAMS
    if f.is_file():
        try:
            return dict(json.loads(f.read_text())["agents"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(
                f"{f}: not a final-params file ({e}) — run the tournament again"
            ) from None
    from quantarena.tournaments.checkpoint import CHECKPOINT_NAME, load_checkpoint

    ck = folder / CHECKPOINT_NAME
    ckpt = load_checkpoint(ck) if ck.is_file() else None
    if ckpt is None or not ckpt.results:
        raise ValueError(
            f"{folder}: neither {FINAL_PARAMS} nor a checkpoint with rounds — the agents' last "
            "parameters are unknown; run the tournament again"
        )
    cfg = {a["name"]: a for a in ckpt.config.get("agents", [])}
    out = {}
    for name, res in ckpt.results[-1].items():
        a = cfg.get(name, {})
        out[name] = {"kind": a.get("kind"), "params": dict(res.chosen),
                     "max_position": a.get("max_position", 0.1),
                     "leverage": a.get("leverage", 1.0), "stops": a.get("stops")}  # fmt: skip
    return out


def _num(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return x


def _gates(cell: Any) -> tuple[str, ...]:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return ()
    return tuple(g.strip() for g in str(cell).split(",") if g.strip() and g.strip() != PAPER_GATE)


def read_tournament(path: str | Path, tick_feed: str | None = None) -> TournamentOutput:
    """The candidates of the newest finished tournament at ``path`` (all agents, rank
    order, :attr:`Candidate.promote` False; see :func:`select`). Tick agents — market makers,
    and arbitrageurs on their recorded legs — can be promoted only with a ``tick_feed`` (the
    live config's) to trade on. Errors are one line naming the file, the agent and the
    field."""
    from quantarena.strategies.base import Agent
    from quantarena.strategies.registry import get_agent

    folder = latest_tournament(path)
    at = _finished_at(folder) or ""
    name = str(json.loads((folder / SUMMARY).read_text()).get("name", folder.name))
    board_path = folder / LEADERBOARD
    board = pd.read_csv(board_path)
    for col in ("rank", "agent"):
        if col not in board.columns:
            raise ValueError(f"{board_path}: no {col!r} column — not a tournament leaderboard")
    final = _final_params(folder)
    out = []
    for i, row in board.sort_values("rank").iterrows():
        agent = str(row["agent"])
        where = f"{board_path} row {i + 2} (agent {agent!r})"
        fp = final.get(agent)
        if fp is None:
            raise ValueError(f"{where}: no parameters in {folder / FINAL_PARAMS}")
        kind = fp.get("kind")
        try:
            ag = get_agent(str(kind))
        except (KeyError, ValueError, ImportError, FileNotFoundError) as e:
            msg = str(e).strip().strip("'\"").splitlines()[0]
            raise ValueError(f"{where}: unknown agent kind {kind!r} ({msg})") from None
        tick = bool(getattr(ag, "tick", False))
        maker = tick and hasattr(ag, "quote_kind")
        arb = tick and int(getattr(ag, "n_symbols", 1)) == 2
        streaming = maker or arb or (not tick and type(ag)._stream is not Agent._stream)
        reason = ""
        stops, leverage, symbol = None, 1.0, None
        if arb:
            symbol = _legs(fp.get("legs"), f"{folder / FINAL_PARAMS} agent {agent!r}")
        if tick and not (maker or arb):
            reason = f"tick agent {kind!r}: only market makers and arbitrageurs paper-trade ticks"
        elif arb and symbol is None:
            reason = (
                f"arbitrage agent {kind!r}: {FINAL_PARAMS} records no legs (a tournament run "
                "before they were recorded) — re-run the tournament to promote it"
            )
        elif tick and not tick_feed:
            reason = "tick agent: no tick feed configured (tick_feed: in the live config)"
        elif tick:
            pass  # a market maker, or an arbitrageur on its legs: paper-trades on the tick feed
        elif not streaming:
            reason = f"agent kind {kind!r} has no streaming path (_stream)"
        else:  # a bar agent: its paper exchange applies the tournament's stops and leverage
            try:
                stops = check_stops(fp.get("stops"))
                leverage = check_leverage(fp.get("leverage") or 1.0)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        out.append(
            Candidate(
                agent=agent,
                kind=str(kind),
                params=dict(fp.get("params") or {}),
                options={"max_position": float(fp.get("max_position") or ag.max_position)},
                rank=int(row["rank"]),
                sharpe=_num(row.get("sharpe")),
                dsr=_num(row.get("dsr")),
                gates_failed=_gates(row.get("gates_failed")),
                streaming=streaming,
                reason=reason,
                stops=stops,
                leverage=leverage,
                symbol=symbol,
            )
        )
    return TournamentOutput(folder, name, at, tuple(out))


def _legs(v: Any, where: str) -> str | None:
    """An arbitrageur's recorded ``legs`` (two distinct symbols) as a config's ``"A,B"``; None
    when not recorded. ``ValueError`` (one line, naming ``where``) when malformed."""
    if v is None:
        return None
    ok = (
        isinstance(v, list)
        and len(v) == 2
        and all(isinstance(x, str) and x.strip() and "," not in x for x in v)
        and v[0].strip() != v[1].strip()
    )
    if not ok:
        raise ValueError(
            f"{where}: legs must be two distinct symbols [A, B], got {v!r} — re-run the tournament"
        )
    return f"{v[0].strip()},{v[1].strip()}"


def select(t: TournamentOutput, top: int = 5, require_gates: bool = True) -> TournamentOutput:
    """``t`` with :attr:`Candidate.promote` set on the best ``top`` agents (rank order) that
    can paper-trade and — with ``require_gates`` — passed every gate but ``paper``; every
    other candidate gets its reason."""
    from dataclasses import replace

    chosen, out = 0, []
    for c in t.candidates:
        reason = c.reason
        if not reason and require_gates and not c.gates_passed:
            reason = f"failed gates: {', '.join(c.gates_failed)}"
        if not reason and chosen >= top:
            reason = f"below the top {top}"
        if not reason:
            chosen += 1
        out.append(replace(c, reason=reason, promote=not reason))
    return replace(t, candidates=tuple(out))


def demotion_reason(
    gates: Any, binding: tuple[str, ...] | list[str], state: str = "", state_reason: str = ""
) -> str:
    """Why a promoted account is demoted at a reallocation ("" = it stays).

    Args:
        gates: the account's :class:`~quantarena.tournaments.gates.GateStatus` on its paper
            record (:func:`.director.reallocate`).
        binding: the live gates that bind (``allocation.gates.binding``).
        state, state_reason: its risk state and reason (the trader's status hash).

    Demoted: an account **halted by the drawdown breaker** (a kill-switch halt is an
    operator's act, lifted by ``quantarena resume``, and demotes nothing), or one that failed
    a binding gate **once it has the minimum paper days** (while the paper gate is not met it
    is still on probation).
    """
    if state == "HALTED" and state_reason.startswith("max drawdown"):
        return f"halted by the drawdown breaker ({state_reason})"
    paper = gates.results.get(PAPER_GATE)
    if paper is not None and not paper.passed:
        return ""
    failed = [g for g in gates.failed if g in binding and g != PAPER_GATE]
    if not failed:
        return ""
    days = f" after {paper.value:g} paper days" if paper is not None and paper.value else ""
    why = "; ".join(gates.results[g].reason or g for g in failed)
    return f"failed {', '.join(failed)}{days}: {why}"
