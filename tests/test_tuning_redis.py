"""Two Ray actors tune ONE study shared through Redis (Optuna's journal storage), batch by
batch: every trial is told exactly once, numbers are unique, and each worker's values equal a
direct replay of its parameter sets."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ray = pytest.importorskip("ray")
redis = pytest.importorskip("redis")

URL = "redis://127.0.0.1:6379/0"
SPACE = {"fast": "2:60", "slow": "10:240", "ma": "sma"}


def _redis_or_skip():
    try:
        client = redis.Redis.from_url(URL, socket_timeout=1, socket_connect_timeout=1)
        client.ping()
    except Exception as exc:  # connection refused, timeout, auth
        pytest.skip(f"Redis is not answering at {URL} ({type(exc).__name__}): start redis-server")
    return client


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, namespace="quantarena-tuning-test")
    try:
        yield
    finally:
        ray.shutdown()


def test_two_actors_share_one_study(local_ray, btc_1m_csv):
    import optuna
    from optuna.trial import TrialState

    from quantarena.engine.api import load_bars_any
    from quantarena.engine.costs import Costs, Fees
    from quantarena.strategies.registry import get_agent
    from quantarena.training.storage import make_storage
    from quantarena.training.tuning import evaluate_population

    client = _redis_or_skip()
    tag = uuid.uuid4().hex[:12]
    prefix = f"quantarena-test-{tag}"
    name = f"shared-{tag}"
    bars = load_bars_any(btc_1m_csv).select(slice(0, 6000))
    costs = Costs(fees=Fees(taker_bps=5.0))
    n1, n2, batch = 48, 32, 16

    @ray.remote(num_cpus=1)
    class Tuner:
        def run(self, bars_, n, seed):
            import optuna as _optuna

            from quantarena.training.storage import make_storage as _ms
            from quantarena.training.tuning import tune

            _optuna.logging.set_verbosity(_optuna.logging.WARNING)
            res = tune(
                bars_,
                "momentum",
                n_trials=n,
                batch=batch,
                costs=costs,
                backend="cpu",
                seed=seed,
                storage=_ms(URL, prefix=prefix),
                study_name=name,
                space=SPACE,
            )
            return res.stats, res.evaluated

    try:
        ref = ray.put(bars)
        a, b = Tuner.remote(), Tuner.remote()
        (s1, ev1), (s2, ev2) = ray.get([a.run.remote(ref, n1, 1), b.run.remote(ref, n2, 2)])
        assert s1.asked == n1 and s2.asked == n2

        storage = make_storage(URL, prefix=prefix)
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        assert len(trials) == n1 + n2
        assert all(t.state in finished for t in trials)  # each told (Optuna refuses a 2nd tell)
        numbers = [t.number for t in trials]
        assert sorted(numbers) == list(range(n1 + n2))
        mine1, mine2 = set(ev1["number"]), set(ev2["number"])
        assert not mine1 & mine2
        assert len(ev1) == s1.evaluated and len(ev2) == s2.evaluated
        complete = {t.number: t for t in trials if t.state == TrialState.COMPLETE}
        assert set(complete) <= mine1 | mine2

        # every stored value equals one direct replay of all the sets at once
        agent = get_agent("momentum")
        nums = sorted(complete)
        pop = {
            "fast": np.array([complete[i].params["fast"] for i in nums]),
            "slow": np.array([complete[i].params["slow"] for i in nums]),
        }
        direct = evaluate_population(bars, agent, pop, costs, backend="cpu")["sharpe"]
        stored = np.array([complete[i].value for i in nums])
        np.testing.assert_allclose(stored, direct, rtol=1e-9)
        for ev in (ev1, ev2):  # what each worker computed is what the study holds
            for _, row in ev.iterrows():
                t = complete.get(int(row["number"]))
                if t is not None:
                    assert t.value == pytest.approx(row["sharpe"], rel=1e-12)
    finally:
        try:
            optuna.delete_study(study_name=name, storage=make_storage(URL, prefix=prefix))
        except Exception:
            pass
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        assert not list(client.scan_iter(match=f"{prefix}:*"))
