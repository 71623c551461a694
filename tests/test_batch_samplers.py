"""Batch samplers: one model fit per batch, trials land in the study exactly as proposed and
told, the Parzen density is a density, invalid sets are never proposed, determinism, and the
samplers find a known optimum better than random search."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from quantarena.training import batch_samplers as B
from quantarena.training.samplers import make_sampler, restrict_space
from quantarena.training.tuning import run_batches

optuna.logging.set_verbosity(optuna.logging.WARNING)

DISTS = {
    "x": FloatDistribution(0.0, 1.0),
    "n": IntDistribution(0, 100),
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "k": CategoricalDistribution(["a", "b", "c"]),
}


def smooth(p: dict) -> float:
    """Maximum 0 at x = 0.7, n = 20, lr = 1e-2, k = 'b'."""
    return (
        -((p["x"] - 0.7) ** 2)
        - ((p["n"] - 20) / 100) ** 2
        - (math.log10(p["lr"]) + 2) ** 2 / 16
        - (0.0 if p["k"] == "b" else 0.05)
    )


def _run(sampler: optuna.samplers.BaseSampler, batches: int, k: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(batches):
        if hasattr(sampler, "prepare_batch"):
            sampler.prepare_batch(study, DISTS, k)
        trials = [study.ask(DISTS) for _ in range(k)]
        for t in trials:
            study.tell(t, smooth(t.params))
    return study


@pytest.mark.parametrize("name", ["tpe", "cmaes", "qmc"])
def test_trials_land_in_the_study_exactly_as_proposed_and_told(name, monkeypatch):
    sampler = make_sampler(name, seed=3, batch=32)
    proposed: list[dict] = []
    fits = []
    real = type(sampler)._propose

    def recording(self, study, unit, k):
        out = real(self, study, unit, k)
        fits.append(k)
        proposed.extend(out)
        return out

    monkeypatch.setattr(type(sampler), "_propose", recording)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    told: dict[int, float] = {}

    def evaluate(pop):
        vals = [smooth({n: pop[n][i] for n in DISTS}) for i in range(len(pop["x"]))]
        return {"sharpe": np.asarray(vals)}

    from quantarena.strategies.params import Choice, Float, Int

    space = {
        "x": Float(0.0, 1.0),
        "n": Int(0, 100),
        "lr": Float(1e-4, 1.0, log=True),
        "k": Choice(["a", "b", "c"]),
    }
    records, stats = run_batches(study, evaluate, space, n_trials=80, batch=32)
    assert fits == [32, 32, 16]  # one fit per batch, the last batch partial
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 80 == len(proposed)
    for t, p in zip(trials, proposed, strict=True):
        assert t.params == p  # in order, exactly as proposed
        assert t.state == TrialState.COMPLETE
        told[t.number] = t.value
        assert t.value == pytest.approx(smooth(p), abs=1e-12)
    assert {r["number"]: r["sharpe"] for r in records} == pytest.approx(told)
    assert stats.simulations == 3


@pytest.mark.parametrize("name", ["tpe", "cmaes", "qmc"])
def test_same_seed_same_trials(name):
    a = _run(make_sampler(name, seed=5, batch=16), 3, 16)
    b = _run(make_sampler(name, seed=5, batch=16), 3, 16)
    c = _run(make_sampler(name, seed=6, batch=16), 3, 16)
    pa = [t.params for t in a.trials]
    assert pa == [t.params for t in b.trials]
    assert pa != [t.params for t in c.trials]


def test_model_based_samplers_beat_random_on_a_smooth_function():
    def stats(name: str) -> tuple[float, float]:
        best, last = [], []
        for seed in range(4):
            study = _run(make_sampler(name, seed=seed, batch=48), 4, 48)
            best.append(study.best_value)
            last.append(np.mean([t.value for t in study.trials[-48:]]))
        return float(np.mean(best)), float(np.mean(last))

    rnd_best, rnd_last = stats("random")
    for name in ("tpe", "cmaes"):
        best, last = stats(name)
        assert last > rnd_last + 0.1, name  # the last batch concentrates near the optimum
        assert best >= rnd_best, name
        assert best > -0.01, name


def test_invalid_sets_are_never_proposed():
    from quantarena.strategies.registry import get_agent

    agent = get_agent("momentum")
    sp = restrict_space(agent.space, {"fast": "2:200", "slow": "10:300", "ma": "sma"})
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", seed=1))

    def evaluate(pop):  # prefers slow - fast close to 30
        return {"sharpe": -np.abs(pop["slow"] - pop["fast"] - 30.0).astype(float)}

    run_batches(study, evaluate, sp, n_trials=192, batch=64, valid=agent.valid)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) == 0
    assert all(t.params["fast"] < t.params["slow"] for t in study.trials)
    assert study.best_value == 0.0


def test_parzen_density_integrates_to_one_and_matches_its_samples():
    unit = B._UnitSpace({"x": FloatDistribution(0.0, 1.0), "k": DISTS["k"]})
    rng = np.random.default_rng(0)
    obs_u = np.array([[0.05], [0.5], [0.52], [0.97]])
    obs_c = np.array([[0], [1], [1], [2]])
    est = B._Parzen(unit, obs_u, obs_c)
    grid = (np.arange(20_000) + 0.5) / 20_000
    total = 0.0
    for k in range(3):
        dens = np.exp(est.log_pdf(grid[:, None], np.full((len(grid), 1), k)))
        total += dens.mean()  # midpoint rule over [0, 1]
    assert total == pytest.approx(1.0, abs=1e-4)
    # samples follow the density: histogram of x (all categories) against the marginal
    u, c = est.sample(rng, 200_000)
    hist, edges = np.histogram(u[:, 0], bins=20, range=(0, 1), density=True)
    mids = (edges[:-1] + edges[1:]) / 2
    marg = sum(np.exp(est.log_pdf(mids[:, None], np.full((len(mids), 1), k))) for k in range(3))
    # bin averages vs midpoint values: loose where the density bends, tight in total
    assert np.abs(hist - marg).max() < 0.25
    freq = np.bincount(c[:, 0], minlength=3) / len(c)
    want = [np.exp(est.log_pdf(grid[:, None], np.full((len(grid), 1), k))).mean() for k in range(3)]
    assert freq == pytest.approx(want, abs=0.01)


def test_parzen_log_pdf_matches_a_direct_numpy_evaluation():
    """The compiled mixture density (serial and parallel builds) against the formula written
    out in NumPy: truncated normals × categorical kernels, equal weights, a uniform prior."""
    from scipy import special

    unit = B._UnitSpace({"x": FloatDistribution(0.0, 1.0), "n": DISTS["n"], "k": DISTS["k"]})
    rng = np.random.default_rng(3)
    est = B._Parzen(unit, rng.random((40, 2)), rng.integers(0, 3, (40, 1)))
    u, c = rng.random((300, 2)), rng.integers(0, 3, (300, 1))
    z = (u[:, None, :] - est.mu[None]) / est.sigma
    lp = (-0.5 * z * z - np.log(est.sigma * math.sqrt(2 * math.pi)) - est.log_z[None]).sum(2)
    same = c[:, None, 0] == est.c[None, :, 0]
    lp += np.log(np.where(same, 1 - est.alpha + est.alpha / 3, est.alpha / 3))
    comps = np.concatenate([lp, np.full((300, 1), -math.log(3))], axis=1) - math.log(41)
    want = special.logsumexp(comps, axis=1)
    np.testing.assert_allclose(est.log_pdf(u, c), want, rtol=1e-12, atol=1e-12)
    serial, old = est.log_pdf(u, c), B._PARALLEL_WORK  # 300 × 40: the serial build
    B._PARALLEL_WORK = 0  # the parallel build: the same numbers, bit for bit
    try:
        assert np.array_equal(est.log_pdf(u, c), serial)
    finally:
        B._PARALLEL_WORK = old


def test_enqueued_trials_keep_their_parameters():
    sampler = make_sampler("tpe", seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({"x": 0.25, "n": 7, "lr": 0.5, "k": "c"})
    sampler.prepare_batch(study, DISTS, 4)
    trials = [study.ask(DISTS) for _ in range(4)]
    assert trials[0].params == {"x": 0.25, "n": 7, "lr": 0.5, "k": "c"}
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4


def test_plain_optimize_without_batches_works():
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", seed=2))

    def objective(t: optuna.Trial) -> float:
        return smooth(
            {
                "x": t.suggest_float("x", 0.0, 1.0),
                "n": t.suggest_int("n", 0, 100),
                "lr": t.suggest_float("lr", 1e-4, 1.0, log=True),
                "k": t.suggest_categorical("k", ["a", "b", "c"]),
            }
        )

    study.optimize(objective, 30)
    assert len(study.trials) == 30
    assert study.best_value > -0.2


def test_shared_journal_storage(tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    s1 = optuna.create_study(
        storage=storage, study_name="shared", direction="maximize", sampler=make_sampler("tpe", 1)
    )
    _run_on(s1, 2, 16)
    s2 = optuna.load_study(study_name="shared", storage=storage, sampler=make_sampler("tpe", 2))
    _run_on(s2, 1, 16)  # a second worker fits on the first one's 32 trials
    assert len(s2.trials) == 48
    assert s2.best_value >= max(t.value for t in s2.trials[:32])


def _run_on(study: optuna.Study, batches: int, k: int) -> None:
    for _ in range(batches):
        study.sampler.prepare_batch(study, DISTS, k)
        for t in [study.ask(DISTS) for _ in range(k)]:
            study.tell(t, smooth(t.params))


def test_multi_objective_is_refused_with_one_line():
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.raises(ValueError, match="one objective"):
        B.BatchTPESampler().prepare_batch(study, DISTS, 4)


def test_liar_bandwidth_is_what_optunas_refit_gives_the_lie():
    from optuna.samplers._tpe.parzen_estimator import (
        _ParzenEstimator,
        _ParzenEstimatorParameters,
    )
    from optuna.samplers._tpe.sampler import default_weights

    rng = np.random.default_rng(4)
    unit = B._UnitSpace({"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)})
    obs = rng.random((30, 2))
    liars = rng.random((5, 2))
    at = np.array([0.41, 0.97])
    est = B._Parzen(unit, obs, np.zeros((30, 0), dtype=np.int64))
    ours = est.liar_sigma(liars, at)
    # Optuna's own estimator on every centre, the lie last: its sigma for the lie
    allc = np.concatenate([obs, liars, at[None]])
    params = _ParzenEstimatorParameters(1.0, True, False, default_weights, True)
    pe = _ParzenEstimator({"x": allc[:, 0], "y": allc[:, 1]}, unit.dists, params)
    want = [d.sigma[len(allc) - 1] for d in pe._mixture_distribution.distributions]
    assert ours == pytest.approx(want, rel=1e-12)
    # in a dense cloud the lie is local: narrower than the model's own (Scott) bandwidth
    assert np.all(ours < est.sigma)


def _reference_picks(est, ok, log_l, log_g, u, c, taken_keys, nc):
    """The batch TPE's pick loop written out in NumPy/SciPy (argsort, neighbour gaps over
    every centre, ``np.logaddexp``): an independent check of the compiled one."""
    from scipy import special

    log_g = log_g.copy()
    keys = np.concatenate([u, c], axis=1)
    taken, chosen = set(taken_keys), []
    liars = np.empty((0, u.shape[1]))
    n_g = len(est.mu) + 1
    for r in range(len(u) // nc):
        row = np.arange(r * nc, (r + 1) * nc)
        score = np.where(ok[row], log_l[row] - log_g[row], -np.inf)
        ranked = row[np.argsort(-score, kind="stable")]
        pick = next((i for i in ranked if tuple(keys[i]) not in taken), ranked[0])
        taken.add(tuple(keys[pick]))
        chosen.append(pick)
        mu = np.concatenate([est.mu, liars, u[pick][None]])
        order = np.argsort(mu, axis=0, kind="stable")
        srt = np.take_along_axis(mu, order, axis=0)
        ext = np.concatenate([np.zeros((1, mu.shape[1])), srt, np.ones((1, mu.shape[1]))])
        gaps = np.maximum(ext[1:-1] - ext[:-2], ext[2:] - ext[1:-1])
        gaps[0], gaps[-1] = ext[2] - ext[1], ext[-2] - ext[-3]
        sig_all = np.empty_like(gaps)
        np.put_along_axis(sig_all, order, gaps, axis=0)
        sig = np.maximum(sig_all[-1], np.maximum(1 / min(100, len(mu) + 2), est.grid_sigma))
        at = u[pick]
        log_z = np.log(special.ndtr((1 - at) / sig) - special.ndtr(-at / sig))
        z = (u - at) / sig
        lk = (-0.5 * z * z - np.log(sig * math.sqrt(2 * math.pi)) - log_z).sum(axis=1)
        for j, kk in enumerate(est.n_choices):
            a = est.alpha
            lk += np.log(np.where(c[:, j] == c[pick, j], 1 - a + a / kk, a / kk))
        log_g = np.logaddexp(log_g + math.log(n_g), lk) - math.log(n_g + 1)
        liars = np.concatenate([liars, at[None]])
        n_g += 1
    return np.asarray(chosen)


def test_compiled_picks_equal_the_reference_loop():
    """Invalid candidates, sets already observed, repeats within the batch, ties, a
    categorical: the compiled liar loop picks what the NumPy loop picks."""
    unit = B._UnitSpace({"x": FloatDistribution(0.0, 1.0), "n": DISTS["n"], "k": DISTS["k"]})
    rng = np.random.default_rng(5)
    est = B._Parzen(unit, rng.random((60, 2)), rng.integers(0, 3, (60, 1)))
    k, nc = 40, 24
    u = np.round(rng.random((k * nc, 2)) * 8) / 8  # a coarse grid: many repeats and ties
    c = rng.integers(0, 3, (k * nc, 1))
    log_l = np.round(rng.normal(size=k * nc), 1)
    log_g = est.log_pdf(u, c)
    ok = rng.random(k * nc) > 0.2
    seen = {tuple(r) for r in np.concatenate([u[:50], c[:50]], axis=1)}
    want = _reference_picks(est, ok, log_l, log_g, u, c, seen, nc)
    uniq, key = np.unique(np.concatenate([u, c], axis=1), axis=0, return_inverse=True)
    taken = np.array([tuple(r) in seen for r in uniq])
    got = B._liar_batch(
        ok, log_l, log_g.copy(), u, c, key.ravel(), taken, k, nc, True,
        est.sorted_centres(extra=k), len(est.mu), est.grid_sigma, float(est.alpha),
        unit.n_choices.astype(float), float(len(est.mu) + 1),
    )  # fmt: skip
    np.testing.assert_array_equal(got, want)
    assert len({tuple(r) for r in np.concatenate([u[got], c[got]], axis=1)}) > k // 2


def test_one_fit_per_batch_and_the_liar_spreads_the_batch(monkeypatch):
    """A batch from one fit: two Parzen estimators (l and g) per batch whatever its size; the
    liar keeps 64 proposals from piling onto the argmax of l/g yet keeps them good."""
    fits = []
    real = B._Parzen.__init__

    def counting(self, *a, **kw):
        fits.append(1)
        real(self, *a, **kw)

    monkeypatch.setattr(B._Parzen, "__init__", counting)
    x_only = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}

    def f(p):
        return -((p["x"] - 0.3) ** 2) - (p["y"] - 0.6) ** 2

    def batch(liar: bool) -> np.ndarray:
        sampler = B.BatchTPESampler(seed=11, liar=liar)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for k in (40, 64):
            fits.clear()
            sampler.prepare_batch(study, x_only, k)
            trials = [study.ask(x_only) for _ in range(k)]
            for t in trials:
                study.tell(t, f(t.params))
        assert len(fits) == 2  # the model batch: l and g fitted once
        return np.array([[t.params["x"], t.params["y"]] for t in trials])

    def spread(pts: np.ndarray) -> float:
        d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(axis=2))
        return float(np.mean(d[np.triu_indices(len(pts), 1)]))

    lied, piled = batch(True), batch(False)
    assert len({tuple(p) for p in lied}) == 64
    assert spread(lied) > 2 * spread(piled)
    values = [f({"x": a, "y": b}) for a, b in lied]
    assert np.mean(values) > -0.1  # still in the good region (uniform points: -0.22 on average)
