"""The rolling-refit torch agent ``ml``: it learns a learnable pattern out of sample, is
deterministic, passes the look-ahead audit, and a planted one-bar leak fails it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from quantarena.data.panel import BarPanel  # noqa: E402
from quantarena.strategies import get_agent  # noqa: E402
from quantarena.strategies.audit import audit  # noqa: E402
from quantarena.strategies.ml import MLAgent, to_bars  # noqa: E402
from quantarena.strategies.ml import models as M  # noqa: E402
from quantarena.strategies.ml.rolling import refit_times, train_rows  # noqa: E402

MINUTE = 60_000_000_000
TINY = {"hidden": 4, "window": 2, "lookback": 300, "retrain_every": 150, "epochs": 3}


def ar1_bars(n: int = 3000, phi: float = 0.3, seed: int = 0) -> tuple[BarPanel, np.ndarray]:
    """One asset whose 1-bar log returns follow r[t] = phi r[t-1] + e[t]; the open of each bar
    is the previous close, so a weight decided at the close of t earns r[t+1]."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, 0.002, n)
    r = np.zeros(n)
    for t in range(1, n):
        r[t] = phi * r[t - 1] + e[t]
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * 1.0005
    low = np.minimum(open_, close) * 0.9995
    vol = rng.lognormal(0.0, 0.5, n)
    ts = np.arange(n, dtype=np.int64) * MINUTE
    return BarPanel.from_arrays(ts, open_, high, low, close, vol, symbols=["AR"]), r


@pytest.fixture(scope="module")
def ar() -> tuple[BarPanel, np.ndarray]:
    return ar1_bars()


def hit_rate(w: np.ndarray, r: np.ndarray) -> tuple[float, int]:
    nxt = np.r_[r[1:], np.nan]
    m = (w != 0) & np.isfinite(nxt)
    return float((np.sign(w[m]) == np.sign(nxt[m])).mean()), int(m.sum())


# ---------------------------------------------------------------- timing of the refits


def test_refit_rows_use_only_known_labels() -> None:
    np.testing.assert_array_equal(refit_times(1000, 300, 150), [300, 450, 600, 750, 900])
    assert train_rows(450, 300) == (150, 450)  # samples t = 150..449: label t+1 <= 450
    assert train_rows(100, 300) == (0, 100)


def test_durations_convert_with_the_bar_interval() -> None:
    assert to_bars("4h", MINUTE) == 240 and to_bars("240", MINUTE) == 240
    assert to_bars("1d", 3600 * 10**9) == 24
    with pytest.raises(ValueError, match="retrain_every.*whole number of 1h bars"):
        to_bars("90m", 3600 * 10**9, "retrain_every")
    ag = MLAgent()
    with pytest.raises(ValueError, match="neither a bar count"):
        ag.grid(retrain_every="soon")
    assert ag.grid(retrain_every=["4h", 240], model="mlp")["retrain_every"].tolist() == [
        "4h",
        "240",
    ]


def test_duration_and_bar_count_give_the_same_positions(ar) -> None:
    bars, _ = ar
    small = bars.select(slice(0, 900))
    ag = get_agent("ml")
    a = ag.positions(small, ag.grid(**{**TINY, "model": "mlp", "retrain_every": "150"}))
    b = ag.positions(small, ag.grid(**{**TINY, "model": "mlp", "retrain_every": "150m"}))
    np.testing.assert_array_equal(a, b)
    assert (a[:300] == 0).all() and (a[300:] != 0).any()  # flat before the first refit


# ---------------------------------------------------------------- it learns, OOS


@pytest.mark.parametrize("model,target", [("mlp", "sign"), ("gru", "sign"), ("mlp", "return")])
def test_beats_a_coin_out_of_sample_on_ar1(ar, model: str, target: str) -> None:
    bars, r = ar
    ag = get_agent("ml", max_position=1.0)
    params = {
        "model": model,
        "target": target,
        "hidden": 16,
        "window": 4,
        "lookback": 1000,
        "retrain_every": 500,
        "epochs": 20,
        "lr": 0.005,
    }
    w = ag.positions(bars, ag.grid(**params))[:, 0]
    assert (w[:1000] == 0).all()  # no position before the first full lookback
    hit, n = hit_rate(w, r)
    # 2,000 OOS bars: a coin's hit rate has std 0.011; the Bayes rate here is about 0.59
    assert n > 1900 and hit > 0.535, (hit, n)
    assert set(np.unique(w)) <= {-1.0, 0.0, 1.0}
    refits = ag.last_refits[0]
    assert [x.bar for x in refits] == [1000, 1500, 2000, 2500]
    assert all(x.n_val > 0 and 1 <= x.best_epoch <= x.epochs_run <= 20 for x in refits)


def test_backtest_of_the_agent_earns_on_ar1(ar) -> None:
    import quantarena as qa

    bars, _ = ar
    res = qa.backtest(
        bars,
        "ml",
        {
            **TINY,
            "model": "mlp",
            "lookback": 1000,
            "retrain_every": 500,
            "epochs": 20,
            "lr": 0.005,
            "hidden": 16,
            "window": 4,
        },
        costs=qa.Costs.none(),  # the signal itself, before costs
        max_position=1.0,
    )
    row = res.best(1).iloc[0]
    assert row["sharpe"] > 0 and row["total_return"] > 0


# ---------------------------------------------------------------- determinism


def test_two_runs_are_identical(ar) -> None:
    bars, _ = ar
    small = bars.select(slice(0, 1200))
    grid = MLAgent().grid(**{**TINY, "model": ["mlp", "gru"], "target": ["sign", "return"]})
    a = MLAgent().positions(small, grid)
    b = MLAgent().positions(small, grid)
    np.testing.assert_array_equal(a, b)
    c = MLAgent().positions(small, {**grid, "seed": np.full(4, 7)})
    assert not np.array_equal(a, c)  # the seed matters


def test_threshold_and_long_only(ar) -> None:
    bars, _ = ar
    small = bars.select(slice(0, 900))
    ag = MLAgent(max_position=0.25)
    w = ag.positions(small, ag.grid(**TINY, model="mlp", threshold=[0.0, 0.5]))
    assert set(np.unique(w[:, 0])) <= {-0.25, 0.0, 0.25} and (w[300:, 0] != 0).all()
    assert (w[:, 1] == 0).all()  # |P(up) - 0.5| never exceeds 0.5
    sc = ag.positions(small, ag.grid(**TINY, model="mlp", sizing="scaled"))[:, 0]
    assert np.abs(sc).max() <= 0.25 and len(np.unique(sc)) > 50  # continuous sizes
    np.testing.assert_array_equal(np.sign(sc), np.sign(w[:, 0]))
    lo = MLAgent(max_position=0.25, long_only=True).positions(small, ag.grid(**TINY, model="mlp"))
    np.testing.assert_array_equal(lo[:, 0], np.maximum(w[:, 0], 0.0))


def test_sets_differing_only_in_threshold_share_one_model(ar, monkeypatch) -> None:
    import quantarena.strategies.ml.rolling as rolling

    bars, _ = ar
    small = bars.select(slice(0, 900))
    thresholds = [0.0, 0.02, 0.05]
    alone = np.column_stack(
        [
            MLAgent().positions(small, MLAgent().grid(**TINY, model="mlp", threshold=t))[:, 0]
            for t in thresholds
        ]
    )
    calls = []
    fit = rolling.rolling_fit_predict
    monkeypatch.setattr(
        rolling, "rolling_fit_predict", lambda *a, **k: calls.append(1) or fit(*a, **k)
    )
    ag = MLAgent()
    together = ag.positions(small, ag.grid(**TINY, model=["mlp", "gru"], threshold=thresholds))
    assert len(calls) == 2  # one fit per model, not per set
    grid = ag.grid(**TINY, model=["mlp", "gru"], threshold=thresholds)
    mlp = [j for j in range(together.shape[1]) if grid["model"][j] == "mlp"]
    np.testing.assert_array_equal(together[:, mlp], alone)
    assert len(ag.last_models) == together.shape[1]


# ---------------------------------------------------------------- the look-ahead audit


def test_passes_the_look_ahead_audit(ar) -> None:
    bars, _ = ar
    small = bars.select(slice(0, 1100))
    cuts = [299, 300, 450, 451, 777, 1049]  # around and at refit times
    # scaled sizing: the weight is continuous in the model output, so any change of the model
    # (not only a sign flip) shows up in the comparison
    spec = {**TINY, "model": ["mlp", "gru"], "sizing": ["sign", "scaled"]}
    res = audit("ml", small, spec, cuts=cuts, seed=3)
    assert res.passed, res.message()
    assert res.n_params == 4


class LeaksOneBar(MLAgent):
    """Planted leak: the refit at r also trains on sample t = r, whose label needs close[r+1]."""

    name = "ml_leaks_one_bar"

    def _rows(self):
        return lambda r, lookback: (max(0, r + 1 - lookback), r + 1)


def test_a_one_bar_label_leak_fails_the_audit(ar) -> None:
    bars, _ = ar
    small = bars.select(slice(0, 1100))
    spec = {**TINY, "model": "mlp", "sizing": "scaled"}
    assert audit(MLAgent(), small, spec, cuts=[450, 600]).passed  # the honest agent passes
    res = audit(LeaksOneBar(), small, spec, cuts=[450, 600])
    assert not res.passed
    assert res.check in ("truncate", "perturb") and res.cut == 450 and res.first_bar == 450


# ---------------------------------------------------------------- fit / last models


def test_fit_and_last_models(ar) -> None:
    bars, _ = ar
    small = bars.select(slice(0, 900))
    ag = MLAgent()
    fits = ag.fit(small, ag.grid(**TINY, model=["mlp", "gru"]))
    assert len(fits) == 2 and ag.last_models is fits
    for fit, kind in zip(fits, ["mlp", "gru"], strict=True):
        assert fit.model.kind == kind and fit.n_train + fit.n_val <= 300
        assert fit.example.shape[1:] == (2, 12)
        x = torch.from_numpy(fit.example)
        assert torch.isfinite(M.predict(fit.model, x)).all()
        # the kept weights are those of the best validation epoch
        assert fit.val_loss == pytest.approx(min(v for _, v in fit.history), rel=1e-6)
    ag.positions(small, ag.grid(**TINY, model="mlp"))
    assert len(ag.last_models) == 1 and ag.last_refits[0][-1].bar == 750


def test_fit_is_deterministic_and_leaves_torch_settings_alone() -> None:
    rng = np.random.default_rng(1)
    X = torch.from_numpy(rng.normal(size=(400, 3, 5)).astype(np.float32))
    y = (X[:, -1, 0] > 0).to(torch.float32)
    threads = torch.get_num_threads()
    before = torch.rand(1)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    outs = []
    for _ in range(2):
        with M.deterministic(5):
            m = M.build_model("gru", 5, 3, 8)
            fit = M.fit_model(m, X, y, epochs=15, lr=0.02, patience=2)
        outs.append(M.predict(fit.model, X))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    assert torch.get_num_threads() == threads and before.shape == (1,)
    assert fit.n_val == 80 and fit.n_train == 320
    acc = float(((outs[0][320:] > 0).float() == y[320:]).float().mean())
    assert acc > 0.9  # a learnable rule is learnt (validation rows)


def test_numpy_arrays_become_tensors_without_a_copy() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = M.as_tensor(a)
    a[0, 0] = 42.0
    assert t[0, 0].item() == 42.0
    np.testing.assert_array_equal(M.to_xp(t, np), a)


def test_quantarena_imports_and_builds_the_agent_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import quantarena, quantarena.strategies as s\n"
        "ag = s.get_agent('ml'); assert 'ml' in s.list_agents()\n"
        "from quantarena.strategies.ml import features\n"
        "try:\n"
        "    from quantarena.strategies.ml.models import build_model; build_model('mlp', 3, 1, 2)\n"
        "except ImportError as e:\n"
        "    print('ERR', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.returncode == 0, out.stderr
    assert "ERR the ML agents need torch" in out.stdout


# ---------------------------------------------------------------- GPU: CUDA vs CPU
#
# The same bars, features and seeds through torch on CUDA and on the CPU. Models are built
# and seeded on the CPU, then moved, and mini-batches are shuffled by a CPU generator, so the
# two runs differ only by float32 rounding (kernel reduction order), with TF32 switched off.
# Stated tolerances: features to 1e-9 (float64, same formulas); edges P(up) - 0.5 to 1e-3
# after training; agent weights equal on at least 99% of bars (a sign can flip only where the
# edge is within rounding of zero or of the threshold).

EDGE_ATOL = 1e-3
ML_GPU = dict(hidden=16, window=4, lookback=1000, retrain_every=500, epochs=5, lr=0.005)


@pytest.fixture
def no_tf32():
    """Full float32 matrix products on CUDA (no TF32) for the comparison."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.gpu
@pytest.mark.torch_cuda
def test_cupy_features_reach_torch_through_dlpack() -> None:
    import cupy as cp

    a = cp.arange(12, dtype=cp.float32).reshape(3, 4)
    t = M.as_tensor(a)
    assert t.is_cuda and t.data_ptr() == a.data.ptr  # same device memory: no host trip
    back = M.to_xp(t * 2, cp)
    assert isinstance(back, cp.ndarray) and float(back[2, 3]) == 22.0


@pytest.mark.gpu
@pytest.mark.torch_cuda
@pytest.mark.parametrize("model", ["mlp", "gru"])
def test_cuda_predictions_equal_the_cpu_ones(ar, model, no_tf32, max_abs_diff) -> None:
    import cupy as cp

    from quantarena.strategies.ml.rolling import RollingConfig, rolling_fit_predict

    bars, _ = ar
    ag = MLAgent()
    cfg = RollingConfig(model=model, val_frac=0.0, **ML_GPU)  # no early-stopping choice
    on_cpu = ag.prepare(bars, np)
    on_gpu = ag.prepare(bars, cp)
    assert on_gpu.X.is_cuda and not on_cpu.X.is_cuda
    max_abs_diff(f"ml-{model}:features", on_cpu.X.numpy(), on_gpu.X.cpu().numpy())
    np.testing.assert_allclose(on_gpu.X.cpu().numpy(), on_cpu.X.numpy(), rtol=1e-6, atol=1e-9)
    e_cpu = rolling_fit_predict(on_cpu, cfg).edge
    e_gpu = rolling_fit_predict(on_gpu, cfg).edge
    assert isinstance(e_gpu, cp.ndarray)
    e_gpu = cp.asnumpy(e_gpu)
    assert np.isfinite(e_cpu).sum() > 1900
    d = max_abs_diff(f"ml-{model}:edge", e_cpu, e_gpu)
    assert d <= EDGE_ATOL, d


@pytest.mark.gpu
@pytest.mark.torch_cuda
def test_ml_agent_weights_on_cuda_equal_the_cpu_ones(ar, no_tf32, max_abs_diff) -> None:
    import cupy as cp

    bars, r = ar
    ag = get_agent("ml", max_position=1.0)
    params = ag.grid(model="mlp", patience=100, **ML_GPU)
    w_cpu = ag.positions(bars, params, xp=np)[:, 0]
    w_gpu = ag.positions(bars, params, xp=cp)
    assert isinstance(w_gpu, cp.ndarray)
    w_gpu = cp.asnumpy(w_gpu)[:, 0]
    max_abs_diff("ml-agent:weights", w_cpu, w_gpu)
    same = float((w_cpu == w_gpu).mean())
    assert same >= 0.99, same
    hit, n = hit_rate(w_gpu, r)
    assert n > 1900 and hit > 0.53  # and the GPU run still learns the AR(1) pattern


@pytest.mark.torch_cuda
def test_cuda_model_on_host_features_equals_the_cpu_one(ar, no_tf32, max_abs_diff) -> None:
    """``device="cuda"`` with NumPy features (no CuPy needed): the tensors move to the GPU,
    the edges come back as NumPy, within the same tolerance as above."""
    from quantarena.strategies.ml.rolling import RollingConfig, rolling_fit_predict

    bars, _ = ar
    cfg = RollingConfig(model="mlp", val_frac=0.0, **ML_GPU)
    on_gpu = MLAgent(device="cuda").prepare(bars, np)
    assert on_gpu.X.is_cuda
    e_cpu = rolling_fit_predict(MLAgent().prepare(bars, np), cfg).edge
    e_gpu = rolling_fit_predict(on_gpu, cfg).edge
    assert isinstance(e_gpu, np.ndarray) and np.isfinite(e_cpu).sum() > 1900
    d = max_abs_diff("ml-host-features:edge", e_cpu, e_gpu)
    assert d <= EDGE_ATOL, d
