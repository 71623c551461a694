"""Rolling (walk-forward) refits of a torch model, and batch prediction between refits.

Timing (the look-ahead rules, bar indices ``0..T-1``; a decision at bar ``t`` is made at its
CLOSE and filled by the engine at the open of ``t+1``):

* a sample is ``(features of bars t-W+1..t, label = log(close[t+1] / close[t]))``: its label
  is known at the close of bar ``t+1``;
* refit times are ``r = lookback, lookback + k, lookback + 2k, ... < T`` (``k`` =
  ``retrain_every``), fixed by the bar index alone, so a prefix of the data has the same
  refit times;
* the refit at ``r`` (at the close of bar ``r``) trains on the samples ``t`` in
  :func:`train_rows` = ``[r - lookback, r)``, i.e. ``t + 1 <= r``: every label it uses is
  known at the close of bar ``r``. The tail ``val_frac`` of those samples (time order)
  is the early-stopping validation set;
* that model predicts bars ``r .. next refit - 1`` in one batch; bars before the first
  successful refit have no prediction (NaN → flat).

A refit with fewer than ``min_samples`` usable samples (features over the whole window and
label finite, asset trading at ``t`` and ``t+1``) is skipped and the previous model carries
on. Several assets share one model (their samples are pooled, in time order).

Each refit is seeded from ``(seed, r)``: the same data and seed give the same predictions,
and the refit at ``r`` does not depend on how much data follows ``r``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantarena.strategies.ml import models as M

__all__ = [
    "Prepared",
    "RefitInfo",
    "RollingConfig",
    "RollingResult",
    "fit_at",
    "prepare",
    "refit_times",
    "rolling_fit_predict",
    "train_rows",
]


@dataclass(frozen=True)
class RollingConfig:
    """One model's settings. ``lookback`` and ``retrain_every`` count in bars; ``window`` is the
    number of feature vectors (bars) a sample holds; ``target`` is ``"sign"`` or ``"return"``
    (see :mod:`.models`)."""

    model: str = "mlp"
    hidden: int = 16
    window: int = 8
    lookback: int = 2000
    retrain_every: int = 240
    epochs: int = 20
    lr: float = 1e-3
    target: str = "sign"
    patience: int = 3
    batch_size: int = 256
    val_frac: float = 0.2
    seed: int = 0
    min_samples: int = 64

    def __post_init__(self) -> None:
        if self.model not in M.MODEL_KINDS:
            raise ValueError(f"unknown model {self.model!r}: use one of {M.MODEL_KINDS}")
        if self.target not in M.TARGETS:
            raise ValueError(f"unknown target {self.target!r}: use one of {M.TARGETS}")
        for name in ("hidden", "window", "lookback", "retrain_every", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.val_frac < 1.0:
            raise ValueError(f"val_frac must be in [0, 1), got {self.val_frac}")


@dataclass
class RefitInfo:
    """What happened at one refit time ``bar`` (``ts`` its open time, ns)."""

    bar: int
    n_train: int
    n_val: int
    epochs_run: int
    best_epoch: int
    train_loss: float
    val_loss: float


@dataclass
class RollingResult:
    """``edge``: ``(T, A)`` float32 on the caller's ``xp`` — ``P(up) - 0.5`` for
    ``target="sign"``, the predicted next-bar return in training-window std units for
    ``"return"``; NaN where there is no prediction. ``refits``: one entry per completed refit;
    ``last``: the model of the latest refit (None if none happened)."""

    edge: Any
    refits: list[RefitInfo] = field(default_factory=list)
    last: M.FitResult | None = None


def refit_times(n_bars: int, lookback: int, retrain_every: int) -> np.ndarray:
    """Bars at whose close a model is (re)trained: ``lookback, lookback + k, ... < n_bars``."""
    return np.arange(int(lookback), int(n_bars), int(retrain_every), dtype=np.int64)


def train_rows(r: int, lookback: int) -> tuple[int, int]:
    """Sample rows ``[start, stop)`` of the refit at bar ``r``: ``t + 1 <= r`` so each label
    ``close[t+1]`` is known at the close of bar ``r``; at most ``lookback`` rows."""
    return max(0, int(r) - int(lookback)), int(r)


@dataclass
class Prepared:
    """Torch views of the features, labels and tradable mask, on one device."""

    X: Any  # (T, A, F) float32
    label: Any  # (T, A) float32, log return t -> t+1
    ok_y: Any  # (T, A) bool: label finite and the asset trading at t and t+1
    finite_x: Any  # (T, A) bool: every feature of bar t finite
    device: Any
    xp: Any

    @property
    def n_bars(self) -> int:
        return int(self.X.shape[0])

    def windows(self, W: int) -> Any:
        """``(T-W+1, A, W, F)`` view: entry ``t-W+1`` holds bars ``t-W+1..t``."""
        return self.X.unfold(0, W, 1).permute(0, 1, 3, 2)

    def ok_x(self, W: int) -> Any:
        """``(T, A)`` bool: bars ``t-W+1..t`` all have finite features (False for t < W-1)."""
        torch = M._torch()
        bad = (~self.finite_x).to(torch.int64).cumsum(0)
        out = torch.zeros_like(self.finite_x)
        if self.n_bars >= W:
            prev = torch.zeros_like(bad[: self.n_bars - W + 1])
            if self.n_bars > W:
                prev[1:] = bad[: self.n_bars - W]
            out[W - 1 :] = (bad[W - 1 :] - prev) == 0
        return out


def prepare(features: Any, labels: Any, mask: Any, xp: Any = np, device: Any = None) -> Prepared:
    """Move ``features`` ``(T, A, F)``, ``labels`` ``(T, A)`` and ``mask`` ``(T, A)`` (True where
    the asset has a real bar) to torch once: numpy → CPU tensors, cupy → CUDA tensors through
    DLPack (no host round trip)."""
    torch = M._torch()
    is_gpu = getattr(xp, "__name__", "") == "cupy"
    if device is None:
        device = "cuda" if is_gpu else "cpu"
    f32 = xp.ascontiguousarray(features.astype(xp.float32))
    X = M.as_tensor(f32, device)
    lab = M.as_tensor(xp.ascontiguousarray(labels.astype(xp.float32)), device)
    m = M.as_tensor(xp.ascontiguousarray(xp.asarray(mask, dtype=xp.bool_)), device)
    trade_next = torch.zeros_like(m)
    trade_next[:-1] = m[1:]
    ok_y = torch.isfinite(lab) & m & trade_next
    finite_x = torch.isfinite(X).all(dim=-1)
    return Prepared(X=X, label=lab, ok_y=ok_y, finite_x=finite_x, device=device, xp=xp)


def _seed(seed: int, r: int) -> int:
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(r)]).generate_state(1)[0])


def fit_at(
    data: Prepared,
    cfg: RollingConfig,
    start: int,
    stop: int,
    *,
    seed: int,
    ok_x: Any = None,
) -> M.FitResult | None:
    """Train one model on the usable samples with ``start <= t < stop`` (time order; the
    caller guarantees their labels are known). None when fewer than ``cfg.min_samples``."""
    torch = M._torch()
    W = int(cfg.window)
    ok_x = data.ok_x(W) if ok_x is None else ok_x
    usable = ok_x[start:stop] & data.ok_y[start:stop]
    idx = torch.nonzero(usable)  # (N, 2) [t - start, a], row-major = time order
    n = int(idx.shape[0])
    if n < max(int(cfg.min_samples), 2):
        return None
    t = idx[:, 0] + start
    a = idx[:, 1]
    X = data.windows(W)[t - W + 1, a]  # (N, W, F)
    y_raw = data.label[t, a]
    n_val = int(round(n * cfg.val_frac)) if cfg.val_frac > 0 else 0
    n_fit = max(n - n_val, 1)
    last = X[:n_fit, -1, :]
    mean = last.mean(dim=0)
    std = last.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    if cfg.target == "sign":
        y = (y_raw > 0).to(torch.float32)
    else:
        ys = y_raw[:n_fit].std(unbiased=False)
        y = y_raw / (ys if float(ys) > 0 else 1.0)
    with M.deterministic(seed):
        model = M.build_model(cfg.model, int(X.shape[-1]), W, int(cfg.hidden), mean, std)
        model = model.to(data.device)
        fit = M.fit_model(
            model,
            X,
            y,
            target=cfg.target,
            epochs=cfg.epochs,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            val_frac=cfg.val_frac,
            patience=cfg.patience,
            seed=seed,
        )
    fit.example = X[-min(16, n) :].detach().cpu().numpy()
    return fit


def _edge(out: Any, target: str) -> Any:
    torch = M._torch()
    return torch.sigmoid(out) - 0.5 if target == "sign" else out


def rolling_fit_predict(
    data: Prepared,
    cfg: RollingConfig,
    *,
    rows: Callable[[int, int], tuple[int, int]] = train_rows,
) -> RollingResult:
    """Walk forward over the bars: refit at each of :func:`refit_times` on ``rows(r,
    lookback)`` and predict bars ``r .. next refit - 1`` in one batch (see the module
    docstring). ``rows`` exists so a test can plant a leak; keep the default."""
    torch = M._torch()
    T = data.n_bars
    A = int(data.X.shape[1])
    W = int(cfg.window)
    edge = torch.full((T, A), float("nan"), dtype=torch.float32, device=data.device)
    times = refit_times(T, cfg.lookback, cfg.retrain_every)
    ok_x = data.ok_x(W)
    result = RollingResult(edge=None)
    current: M.FitResult | None = None
    for i, r in enumerate(times.tolist()):
        start, stop = rows(r, cfg.lookback)
        fit = fit_at(data, cfg, start, stop, seed=_seed(cfg.seed, r), ok_x=ok_x)
        if fit is not None:
            current = fit
            result.refits.append(
                RefitInfo(
                    bar=r,
                    n_train=fit.n_train,
                    n_val=fit.n_val,
                    epochs_run=fit.epochs_run,
                    best_epoch=fit.best_epoch,
                    train_loss=fit.train_loss,
                    val_loss=fit.val_loss,
                )
            )
        if current is None:
            continue
        lo = max(r, W - 1)
        hi = int(times[i + 1]) if i + 1 < len(times) else T
        if hi <= lo:
            continue
        Xb = data.windows(W)[lo - W + 1 : hi - W + 1]  # (n, A, W, F)
        n = hi - lo
        out = M.predict(current.model, Xb.reshape(n * A, W, -1)).reshape(n, A)
        e = _edge(out, cfg.target)
        edge[lo:hi] = torch.where(ok_x[lo:hi], e, torch.full_like(e, float("nan")))
    result.last = current
    result.edge = M.to_xp(edge, data.xp)
    return result
