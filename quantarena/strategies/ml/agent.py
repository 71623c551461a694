"""``ml``: a torch model (MLP or GRU) retrained on rolling windows.

At every refit bar ``r`` (every ``retrain_every`` bars once ``lookback`` bars exist) a model
is trained on the samples whose label is known at the close of bar ``r`` (features of bars
``t-window+1..t`` → the sign, or the size, of the return ``t → t+1``, with ``t + 1 <= r``),
early-stopped on the last 20 % of that window in time order, and predicts bars ``r .. next
refit - 1`` in one batch. See :mod:`quantarena.strategies.ml.rolling` for the exact timing and
:mod:`quantarena.strategies.ml.features` for the features.

Weight of bar ``t`` (decided at its close, filled at the open of ``t+1``): ``edge`` = ``P(up)
- 0.5`` (``target="sign"``) or the predicted return in training-window std units
(``target="return"``); ``+max_position`` when ``edge > threshold``, ``-max_position`` when
``edge < -threshold`` (0 with ``long_only``), else 0; 0 before the first refit. With
``sizing="scaled"`` the weight is instead ``clip(2 * edge, -1, 1) * max_position`` (sign
target: ``2 P(up) - 1``) or ``clip(edge, -1, 1) * max_position`` (return target) where
``|edge| > threshold``.

All the training happens in :meth:`MLAgent.indicators` (one model per parameter set per
refit: ML populations are small, a Python loop over the sets is fine; prediction is batched,
never a loop over bars); :meth:`MLAgent.signal` only slices the weights.

``lookback`` and ``retrain_every`` take a bar count (``2000``) or a duration (``"4h"``,
``"3d"``) converted with the bar interval. torch is imported only when the agent runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quantarena.data.intervals import interval_ns, interval_str
from quantarena.strategies.base import Agent
from quantarena.strategies.ml.features import DEFAULT_SPEC, FeatureSpec
from quantarena.strategies.params import Choice, Float, Int
from quantarena.strategies.params import n_params as _n_params
from quantarena.strategies.streaming import AgentStream

__all__ = ["Duration", "MLAgent", "to_bars"]


class Duration(Choice):
    """A length in bars given as a bar count (``240``, ``"240"``) or a duration (``"4h"``).

    Values are kept as text (``"240"``, ``"4h"``) and turned into bars by :func:`to_bars`
    once the bar interval is known. ``choices`` is the default grid (and what a random
    :meth:`draw` picks from); any positive count or duration is accepted."""

    def coerce(self, name: str, values: Sequence[Any]) -> np.ndarray:
        out = []
        for v in values:
            if isinstance(v, bool | np.bool_):
                raise ValueError(f"parameter {name!r}: {v!r} is not a bar count or duration")
            text = str(v).strip()
            if isinstance(v, float | np.floating) and float(v).is_integer():
                text = str(int(v))
            if text.isdigit():
                if int(text) < 1:
                    raise ValueError(f"parameter {name!r}: {text} bars must be at least 1")
                out.append(str(int(text)))
                continue
            try:
                interval_ns(text)
            except ValueError:
                raise ValueError(
                    f"parameter {name!r}: {v!r} is neither a bar count (e.g. 240) nor a "
                    "duration (e.g. 4h, 30m, 2d)"
                ) from None
            out.append(text)
        return np.asarray(out, dtype=str)


def to_bars(value: Any, bar_ns: int, name: str = "duration") -> int:
    """Bars in ``value``: a count (``240``) or a duration (``"4h"``) that must be a whole
    number of ``bar_ns`` bars. Raises ``ValueError`` naming the parameter otherwise."""
    text = str(value).strip()
    if text.isdigit():
        n = int(text)
    else:
        ns = interval_ns(text)
        if ns % int(bar_ns):
            raise ValueError(
                f"parameter {name!r}: {text} is not a whole number of {interval_str(bar_ns)} "
                "bars: pick a multiple of the bar interval"
            )
        n = ns // int(bar_ns)
    if n < 1:
        raise ValueError(f"parameter {name!r}: {text} is shorter than one bar")
    return int(n)


class MLAgent(Agent):
    """Rolling-refit torch agent (see the module docstring).

    Params: ``model`` (mlp | gru), ``target`` (sign | return), ``hidden`` (units),
    ``window`` (feature vectors per sample, bars), ``lookback`` (training window: bars or
    duration), ``retrain_every`` (bars or duration between refits), ``epochs`` (maximum;
    early stopping with ``patience``), ``lr`` (Adam), ``threshold`` (|edge| needed to take a
    position), ``sizing`` (sign | scaled), ``seed``.

    Args:
        max_position, long_only: as for every agent.
        feature_spec: the features (default :data:`~quantarena.strategies.ml.features.DEFAULT_SPEC`).
        batch_size: training mini-batch size.
        min_samples: a refit with fewer usable samples is skipped (the previous model goes on).
        device: torch device; None = ``"cuda"`` when ``xp`` is cupy, else ``"cpu"``.

    After :meth:`indicators` (any backtest), :attr:`last_models` holds, per parameter set, the
    :class:`~quantarena.strategies.ml.models.FitResult` of its latest refit (None if it never
    trained) and :attr:`last_refits` the per-refit summaries.
    """

    name = "ml"
    description = "torch MLP/GRU retrained on rolling windows; trades the predicted next-bar sign"
    space = {
        "model": Choice(["mlp", "gru"]),
        "target": Choice(["sign", "return"]),
        "hidden": Int(2, 512, default=16),
        "window": Int(1, 256, default=8),
        "lookback": Duration(["2000", "1d", "3d"], default="2000"),
        "retrain_every": Duration(["1000", "4h", "1d"], default="1000"),
        "epochs": Int(1, 1000, default=10),
        "patience": Int(1, 100, default=3),
        "lr": Float(1e-5, 1e-1, log=True, default=1e-3),
        "threshold": Float(0.0, 5.0, default=0.0),
        "sizing": Choice(["sign", "scaled"]),
        "seed": Int(0, 2**31 - 1, default=0),
    }
    # every dimension is named: a grid expands an unnamed one over its full range
    default_grid = {
        "model": ["mlp", "gru"],
        "target": "sign",
        "hidden": 16,
        "window": 8,
        "lookback": "2000",
        "retrain_every": "1000",
        "epochs": 10,
        "patience": 3,
        "lr": 1e-3,
        "threshold": 0.0,
        "sizing": "sign",
        "seed": 0,
    }

    #: the look-ahead audit's every-bar check would train every model again at every bar; the
    #: agent is audited at its refit bars instead (:meth:`audit_bars`), where a leak shows
    audit_every_bar = False

    def __init__(
        self,
        max_position: float = 0.10,
        long_only: bool = False,
        *,
        feature_spec: FeatureSpec = DEFAULT_SPEC,
        batch_size: int = 256,
        min_samples: int = 64,
        device: str | None = None,
    ) -> None:
        super().__init__(max_position=max_position, long_only=long_only)
        self.feature_spec = feature_spec
        self.batch_size = int(batch_size)
        self.min_samples = int(min_samples)
        self.device = device
        self.last_models: list[Any] = []
        self.last_refits: list[list[Any]] = []

    # ------------------------------------------------------------------ helpers

    def configs(self, params: dict[str, np.ndarray], bar_ns: int) -> list[Any]:
        """One :class:`~quantarena.strategies.ml.rolling.RollingConfig` per parameter set."""
        from quantarena.strategies.ml.rolling import RollingConfig

        out = []
        for i in range(_n_params(params)):
            p = {k: np.asarray(v)[i].item() for k, v in params.items()}
            d = {**{k: self.space[k].default_value() for k in self.space}, **p}
            out.append(
                RollingConfig(
                    model=str(d["model"]),
                    hidden=int(d["hidden"]),
                    window=int(d["window"]),
                    lookback=to_bars(d["lookback"], bar_ns, "lookback"),
                    retrain_every=to_bars(d["retrain_every"], bar_ns, "retrain_every"),
                    epochs=int(d["epochs"]),
                    lr=float(d["lr"]),
                    target=str(d["target"]),
                    patience=int(d["patience"]),
                    batch_size=self.batch_size,
                    seed=int(d["seed"]),
                    min_samples=self.min_samples,
                )
            )
        return out

    def prepare(self, bars: Any, xp: Any = np) -> Any:
        """Features, labels and mask of ``bars`` as torch tensors
        (:func:`quantarena.strategies.ml.rolling.prepare`)."""
        from quantarena.strategies.ml.features import compute_features, next_returns
        from quantarena.strategies.ml.rolling import prepare

        feats = compute_features(bars.close, bars.volume, xp, self.feature_spec)
        labels = next_returns(bars.close, xp)
        return prepare(feats, labels, xp.asarray(bars.mask), xp, self.device)

    def _rows(self) -> Any:
        """The training rows of a refit (:func:`~quantarena.strategies.ml.rolling.train_rows`)."""
        from quantarena.strategies.ml.rolling import train_rows

        return train_rows

    def audit_bars(self, bars: Any, params: dict[str, np.ndarray]) -> list[int]:
        """Cut points for the look-ahead audit (:mod:`quantarena.strategies.audit`): for each
        distinct refit schedule, its first refit bar ``r``, and its second and last refit
        bars with the bar before each. A refit at ``r`` that trained on a label needing bar
        ``r+1`` (or later) gives another model when the data stop at ``r``, so row ``r``
        differs; the bar before a refit is the last one the previous model predicts."""
        from quantarena.strategies.ml.rolling import refit_times

        T = bars.n_bars
        out: set[int] = set()
        for cfg in self.configs(params, bars.interval_ns):
            times = [int(r) for r in refit_times(T, cfg.lookback, cfg.retrain_every)]
            picks = [times[0]] if times else []
            for r in times[1:2] + times[-1:]:
                picks += [r - 1, r]
            out.update(c for c in picks if 0 <= c < T - 1)
        return sorted(out)

    # ------------------------------------------------------------------ the two steps

    def indicators(self, bars, params, xp=np):
        from quantarena.strategies.ml.rolling import rolling_fit_predict

        cfgs = self.configs(params, bars.interval_ns)
        data = self.prepare(bars, xp)
        T, A = bars.n_bars, bars.n_assets
        thr = np.asarray(params.get("threshold", np.zeros(len(cfgs))), dtype=np.float64)
        weights = xp.zeros((T, A, len(cfgs)), dtype=xp.float32)
        models, refits = [], []
        lo = 0.0 if self.long_only else -self.max_position
        sizing = np.asarray(params.get("sizing", ["sign"] * len(cfgs))).astype(str)
        # sets that differ only in how the edge is traded (threshold, sizing) share one
        # model: training is seeded, so one fit per distinct RollingConfig gives the same edge
        fits: dict[Any, Any] = {}
        for j, cfg in enumerate(cfgs):
            res = fits.get(cfg)
            if res is None:
                res = fits[cfg] = rolling_fit_predict(data, cfg, rows=self._rows())
            e = res.edge
            if sizing[j] == "scaled":
                s = xp.clip(e * (2.0 if cfg.target == "sign" else 1.0), -1.0, 1.0)
                w = xp.where(xp.abs(e) > thr[j], s * self.max_position, 0.0)
                w = xp.maximum(w, 0.0) if self.long_only else w
            else:
                w = xp.where(e > thr[j], self.max_position, xp.where(e < -thr[j], lo, 0.0))
            w = xp.where(xp.isfinite(w), w, 0.0)  # NaN edge (no prediction): flat
            weights[:, :, j] = w.astype(xp.float32)
            models.append(res.last)
            refits.append(res.refits)
        self.last_models = models
        self.last_refits = refits
        return {"weights": weights, "n_assets": A}

    def signal(self, state, params, xp, t0, t1):
        return self.shape_block(state["weights"][t0:t1], state["n_assets"])

    # ------------------------------------------------------------------ one fit

    def fit(self, bars: Any, params: dict[str, Any] | None = None, xp: Any = np) -> list[Any]:
        """Train one model per parameter set on the last ``lookback`` samples of ``bars`` whose
        labels are known (``t + 1 <= T - 1``), as a refit at the close of the last bar would.
        Returns a list of :class:`~quantarena.strategies.ml.models.FitResult` (None where too few
        samples) and stores it in :attr:`last_models`."""
        from quantarena.strategies.ml.rolling import _seed, fit_at

        p = self.check_params(params)
        cfgs = self.configs(p, bars.interval_ns)
        data = self.prepare(bars, xp)
        r = bars.n_bars - 1
        out = []
        for cfg in cfgs:
            start, stop = self._rows()(r, cfg.lookback)
            out.append(fit_at(data, cfg, start, stop, seed=_seed(cfg.seed, r)))
        self.last_models = out
        return out

    # ------------------------------------------------------------------ streaming

    def _stream(self, params, n_assets, interval_ns):
        if interval_ns is None:
            raise ValueError("the ml agent's stream needs interval_ns (or history) for durations")
        return MLStream(self, params, n_assets, int(interval_ns))


class MLStream(AgentStream):
    """:class:`MLAgent` one bar at a time.

    Features come from :class:`~.streaming.FeatureStream` (rows equal to the vectorised ones);
    the last ``lookback + window`` rows are kept. At each refit bar of the rolling schedule
    (``lookback``, then every ``retrain_every`` bars: 4 h of 1-minute bars is
    ``retrain_every="4h"``) a model is trained on exactly the samples the backtest's refit
    uses, with the same seed; each bar is then predicted by the latest model. The training is
    the backtest's; predictions are made one bar at a time instead of one batch per refit, so
    they equal the backtest's up to float32 rounding of the network's matrix products (a
    decision can differ only where the edge is within that rounding of its threshold).
    """

    def __init__(self, agent: MLAgent, params, n_assets: int, interval_ns: int) -> None:
        from quantarena.strategies.streaming import FeatureStream

        super().__init__(agent, params, n_assets)
        self.cfgs = agent.configs(params, interval_ns)
        self.features = FeatureStream(agent.feature_spec, n_assets)
        self.size = max(c.lookback + c.window for c in self.cfgs) + 1
        F = agent.feature_spec.n_features
        self.X = np.full((self.size, n_assets, F), np.nan)
        self.close = np.full((self.size, n_assets), np.nan)
        self.mask = np.zeros((self.size, n_assets), bool)
        self.models: list[Any] = [None] * len(self.cfgs)
        self.thr = np.asarray(params.get("threshold", np.zeros(len(self.cfgs))), np.float64)
        self.sizing = np.asarray(params.get("sizing", ["sign"] * len(self.cfgs))).astype(str)
        self.refits: list[list[int]] = [[] for _ in self.cfgs]

    def _rows(self, t0: int, t1: int) -> np.ndarray:
        """Ring positions of bars ``t0 .. t1`` inclusive."""
        return np.arange(t0, t1 + 1) % self.size

    def _fit(self, j: int, r: int) -> None:
        from quantarena.strategies.ml.rolling import _seed, fit_at, prepare, train_rows

        cfg = self.cfgs[j]
        start, stop = train_rows(r, cfg.lookback)
        off = max(0, start - cfg.window + 1)
        rows = self._rows(off, r)
        X = self.X[rows]
        c = self.close[rows]
        lab = np.full(c.shape, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            lab[:-1] = np.log(c[1:] / c[:-1])
        data = prepare(X, lab, self.mask[rows], np, self.agent.device)
        fit = fit_at(data, cfg, start - off, stop - off, seed=_seed(cfg.seed, r))
        if fit is not None:
            self.models[j] = fit
            self.refits[j].append(r)

    def _step(self, o, h, lo, c, v):
        from quantarena.strategies.ml import models as M
        from quantarena.strategies.ml.rolling import _edge

        t = self.n_bars
        k = t % self.size
        self.X[k] = self.features.update(c, v)
        self.close[k] = c
        self.mask[k] = np.isfinite(c)
        ag = self.agent
        out = np.zeros((self.n_assets, self.n_params), np.float32)
        lo_w = 0.0 if ag.long_only else -ag.max_position
        torch = M._torch()
        for j, cfg in enumerate(self.cfgs):
            if t >= cfg.lookback and (t - cfg.lookback) % cfg.retrain_every == 0:
                self._fit(j, t)
            fit = self.models[j]
            W = cfg.window
            if fit is None or t < W - 1:
                continue
            xw = self.X[self._rows(t - W + 1, t)]  # (W, A, F)
            ok = np.isfinite(xw).all(axis=(0, 2))
            Xb = torch.as_tensor(np.ascontiguousarray(xw.transpose(1, 0, 2)).astype(np.float32))
            e = _edge(M.predict(fit.model, Xb), cfg.target).detach().cpu().numpy()  # float32
            e = np.where(ok, e, np.nan)
            if self.sizing[j] == "scaled":
                s = np.clip(e * (2.0 if cfg.target == "sign" else 1.0), -1.0, 1.0)
                w = np.where(np.abs(e) > self.thr[j], s * ag.max_position, 0.0)
                w = np.maximum(w, 0.0) if ag.long_only else w
            else:
                w = np.where(
                    e > self.thr[j], ag.max_position, np.where(e < -self.thr[j], lo_w, 0.0)
                )
            out[:, j] = np.where(np.isfinite(w), w, 0.0).astype(np.float32)
        return out
