"""Small torch models over a window of feature vectors, and a seeded early-stopping fit.

``torch`` is an optional extra (``pip install quantarena[ml]``): this module imports it
lazily, so ``import quantarena`` works without it.

Models take ``(N, W, F)`` float32 windows (sample, window of bars ending at the decision bar,
feature) and return ``(N,)``: a logit (``target="sign"``: P(next-bar return > 0), trained with
BCE) or the next-bar log return in units of the training window's return std
(``target="return"``, MSE). Both start with a :class:`Standardize` layer holding the
training window's feature mean/std as buffers, so a saved model predicts from RAW features.

* ``mlp``: flatten the window → Linear(W·F, hidden) → ReLU → Linear(hidden, hidden) → ReLU →
  Linear(hidden, 1);
* ``gru``: a one-layer GRU(F, hidden) over the window → Linear(hidden, 1) on the last state.

:func:`fit_model` is deterministic on the CPU for a seed: torch's global RNG is forked and
seeded, deterministic algorithms are switched on and torch runs single-threaded during the
fit (the previous settings are restored afterwards). The validation split is the TAIL of the
samples in time order (never shuffled); the weights of the best validation epoch are kept.

On a GPU, CuPy arrays become torch tensors through DLPack (:func:`as_tensor`,
``torch.from_dlpack``): zero-copy, never through the host.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "MODEL_KINDS",
    "TARGETS",
    "FitResult",
    "as_tensor",
    "build_model",
    "deterministic",
    "fit_model",
    "predict",
    "to_xp",
]

MODEL_KINDS = ("mlp", "gru")
TARGETS = ("sign", "return")


def _torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is installed in dev
        raise ImportError(
            "the ML agents need torch: pip install 'quantarena[ml]' (or pip install torch)"
        ) from None
    return torch


def as_tensor(a: Any, device: Any = None) -> Any:
    """A torch tensor viewing ``a``: numpy → ``torch.from_numpy`` (shares memory), cupy →
    ``torch.from_dlpack`` (zero-copy on the same GPU, never through the host), a tensor is
    returned as is. ``device`` moves it afterwards if it is elsewhere."""
    torch = _torch()
    if isinstance(a, torch.Tensor):
        t = a
    elif isinstance(a, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(a))
    elif hasattr(a, "__dlpack__"):  # cupy (or any DLPack producer)
        t = torch.from_dlpack(a)
    else:
        t = torch.as_tensor(np.asarray(a))
    if device is not None and t.device != torch.device(device):
        t = t.to(device)
    return t


def to_xp(t: Any, xp: Any) -> Any:
    """A torch tensor back on ``xp``'s device: numpy (host copy) or cupy (``cupy.from_dlpack``,
    zero-copy)."""
    if getattr(xp, "__name__", "") == "cupy":
        return xp.from_dlpack(t.detach().contiguous())
    return t.detach().cpu().numpy()


@contextlib.contextmanager
def deterministic(seed: int, threads: int | None = 1) -> Iterator[None]:
    """Seeded, deterministic torch inside the block: forks torch's RNG (the caller's stream is
    untouched), ``torch.manual_seed(seed)``, ``use_deterministic_algorithms(True)`` (warn-only
    on CUDA where some kernels have no deterministic version) and ``threads`` intra-op threads;
    restores the previous settings on exit."""
    torch = _torch()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_threads = torch.get_num_threads()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        torch.use_deterministic_algorithms(True, warn_only=bool(devices))
        if threads is not None:
            torch.set_num_threads(int(threads))
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
            torch.set_num_threads(prev_threads)


def build_model(
    kind: str, n_features: int, window: int, hidden: int, mean: Any = None, std: Any = None
) -> Any:
    """A fresh ``mlp`` or ``gru`` (see the module docstring) for ``(N, window, n_features)``
    inputs; ``mean`` / ``std`` ``(n_features,)`` set its :class:`Standardize` layer (default
    0 / 1). Weights come from torch's global RNG: call inside :func:`deterministic`."""
    torch = _torch()
    nn = torch.nn
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model {kind!r}: use one of {', '.join(MODEL_KINDS)}")
    if n_features < 1 or window < 1 or hidden < 1:
        raise ValueError(
            f"model sizes must be positive: n_features={n_features}, window={window}, "
            f"hidden={hidden}"
        )

    class Standardize(nn.Module):
        """``(x - mean) / std`` per feature, from the training window (buffers: saved)."""

        def __init__(self) -> None:
            super().__init__()
            m = torch.zeros(n_features) if mean is None else torch.as_tensor(mean)
            s = torch.ones(n_features) if std is None else torch.as_tensor(std)
            self.register_buffer("mean", m.to(torch.float32).clone())
            self.register_buffer("std", s.to(torch.float32).clone())

        def forward(self, x: Any) -> Any:
            return (x - self.mean) / self.std

    class MLPNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = Standardize()
            self.net = nn.Sequential(
                nn.Flatten(),
                nn.Linear(window * n_features, hidden),
                nn.ReLU(),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                nn.Linear(hidden, 1),
            )

        def forward(self, x: Any) -> Any:
            return self.net(self.scale(x)).squeeze(-1)

    class GRUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = Standardize()
            self.gru = nn.GRU(n_features, hidden, batch_first=True)
            self.head = nn.Linear(hidden, 1)

        def forward(self, x: Any) -> Any:
            out, _ = self.gru(self.scale(x))
            return self.head(out[:, -1, :]).squeeze(-1)

    model = MLPNet() if kind == "mlp" else GRUNet()
    model.kind = kind
    model.window = int(window)
    model.n_features = int(n_features)
    return model


@dataclass
class FitResult:
    """A trained model and how its training went (losses are per-sample means; ``history``
    holds (train, validation) loss per epoch)."""

    model: Any
    target: str
    epochs_run: int
    best_epoch: int
    train_loss: float
    val_loss: float
    n_train: int
    n_val: int
    history: list[tuple[float, float]] = field(default_factory=list)
    example: Any = None  # a few (n, W, F) float32 training inputs (for MLflow signatures)


def _loss_fn(target: str) -> Any:
    torch = _torch()
    if target == "sign":
        return torch.nn.BCEWithLogitsLoss()
    if target == "return":
        return torch.nn.MSELoss()
    raise ValueError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")


def fit_model(
    model: Any,
    X: Any,
    y: Any,
    *,
    target: str = "sign",
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 256,
    val_frac: float = 0.2,
    patience: int = 3,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> FitResult:
    """Train ``model`` on ``X`` ``(N, W, F)`` float32 and ``y`` ``(N,)`` (0/1 labels for
    ``target="sign"``, standardised returns for ``"return"``), rows in TIME order.

    The last ``val_frac`` of the rows is the validation set (a time split, not shuffled); the
    rest is trained in shuffled mini-batches of ``batch_size`` with Adam(``lr``) for up to
    ``epochs`` epochs, stopping after ``patience`` epochs without a better validation loss.
    The model ends with the weights of its best validation epoch (in eval mode). Call inside
    :func:`deterministic` for reproducible results (the shuffling uses a generator seeded by
    ``seed``)."""
    torch = _torch()
    loss_fn = _loss_fn(target)
    n = int(X.shape[0])
    n_val = int(round(n * val_frac)) if val_frac > 0 else 0
    n_val = min(max(n_val, 1 if val_frac > 0 else 0), max(n - 1, 0))
    n_train = n - n_val
    if n_train < 1:
        raise ValueError(f"need at least 2 samples to fit, got {n}")
    Xt, yt = X[:n_train], y[:n_train]
    Xv, yv = X[n_train:], y[n_train:]
    opt = torch.optim.Adam(model.parameters(), lr=float(lr), weight_decay=float(weight_decay))
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    best = float("inf")
    best_state = copy.deepcopy(model.state_dict())
    best_epoch = 0
    train_loss = float("nan")
    history: list[tuple[float, float]] = []
    bad = 0
    epochs_run = 0
    for epoch in range(int(epochs)):
        model.train()
        order = torch.randperm(n_train, generator=gen).to(Xt.device)
        total = 0.0
        for i in range(0, n_train, int(batch_size)):
            idx = order[i : i + int(batch_size)]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * int(idx.shape[0])
        train_loss = total / n_train
        epochs_run = epoch + 1
        if n_val == 0:
            history.append((train_loss, float("nan")))
            best_state = copy.deepcopy(model.state_dict())
            best_epoch = epochs_run
            continue
        model.eval()
        with torch.no_grad():
            val = float(loss_fn(model(Xv), yv))
        history.append((train_loss, val))
        if val < best - 1e-12:
            best, bad = val, 0
            best_state = copy.deepcopy(model.state_dict())
            best_epoch = epochs_run
        else:
            bad += 1
            if bad >= int(patience):
                break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(
        model=model,
        target=target,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        train_loss=train_loss,
        val_loss=best if n_val else float("nan"),
        n_train=n_train,
        n_val=n_val,
        history=history,
    )


def predict(model: Any, X: Any, batch_size: int = 8192) -> Any:
    """Raw model outputs ``(N,)`` (logits or z-scored returns) for ``X`` ``(N, W, F)``, a
    torch tensor, in batches, without gradients."""
    torch = _torch()
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, int(X.shape[0]), int(batch_size)):
            outs.append(model(X[i : i + int(batch_size)]))
    if not outs:
        return torch.empty(0, dtype=torch.float32, device=X.device)
    return torch.cat(outs)
