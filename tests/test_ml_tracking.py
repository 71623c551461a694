"""MLflow logging of the ML agent's models and registration gated on the tournament gates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mlflow")

from quantarena.strategies.ml import models as M  # noqa: E402
from quantarena.tracking.mlflow_logger import TournamentLogger  # noqa: E402
from quantarena.tracking.models import (  # noqa: E402
    gates_passed,
    load_model,
    log_model,
    register_if_passed,
)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.normal(size=(300, 4, 6)).astype(np.float32))
    y = (X[:, -1, 0] > 0).to(torch.float32)
    with M.deterministic(0):
        m = M.build_model("gru", 6, 4, 8, mean=X[:, -1].mean(0), std=X[:, -1].std(0))
        fit = M.fit_model(m, X, y, epochs=5, lr=0.01)
    fit.example = X[-8:].numpy()
    return fit


@pytest.fixture()
def logger(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = TournamentLogger(uri, "ml-test")
    log.start({"name": "t"})
    log.agent_run("net", kind="ml")
    yield log
    log.finish()


def test_logged_model_loads_back_and_predicts_the_same(logger, fitted) -> None:
    uri = log_model(logger, fitted, "net-model", agent="net", metrics={"hit_rate": 0.57})
    back = load_model(uri, logger.uri)
    x = torch.from_numpy(fitted.example)
    torch.testing.assert_close(M.predict(back, x), M.predict(fitted.model, x), rtol=0, atol=0)
    run = logger.client.get_run(logger.run_id("net"))
    assert run.data.metrics["hit_rate"] == pytest.approx(0.57)
    assert run.data.metrics["val_loss"] == pytest.approx(fitted.val_loss)
    sig = load_model_info(uri, logger.uri).signature  # inferred from the features sample
    assert sig is not None
    assert list(sig.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 4, 6]


def test_logging_a_model_prints_no_pickle_notice(logger, fitted, caplog) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="mlflow"):
        log_model(logger, fitted, "quiet-model", agent="net")
        logging.getLogger("mlflow.pytorch").warning("another notice")
    notices = [r.getMessage() for r in caplog.records if r.name == "mlflow.pytorch"]
    assert notices == ["another notice"]  # only the pickle notice is dropped, only in the call


def load_model_info(uri: str, tracking_uri: str):
    import mlflow
    from mlflow.models import get_model_info

    prev = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        return get_model_info(uri)
    finally:
        mlflow.set_tracking_uri(prev)


def test_registration_only_when_gates_pass(logger, fitted) -> None:
    uri = log_model(
        logger.run_id("net"), fitted.model, "m", example=fitted.example, tracking_uri=logger.uri
    )
    assert (
        register_if_passed(
            uri, "qa-net", {"sharpe": True, "drawdown": False}, tracking_uri=logger.uri
        )
        is None
    )
    assert register_if_passed(uri, "qa-net", False, tracking_uri=logger.uri) is None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=logger.uri)
    assert client.search_registered_models() == []  # nothing was written
    mv = register_if_passed(
        uri,
        "qa-net",
        {"sharpe": True, "drawdown": True},
        tracking_uri=logger.uri,
        tags={"round": 3},
    )
    assert mv is not None and int(mv.version) == 1
    got = client.get_model_version("qa-net", "1")
    assert got.tags["gate.passed"] == "true" and got.tags["gate.drawdown"] == "pass"
    assert got.tags["round"] == "3"
    mv2 = register_if_passed(uri, "qa-net", True, tracking_uri=logger.uri)
    assert int(mv2.version) == 2
    back = load_model("models:/qa-net/2", logger.uri)
    x = torch.from_numpy(fitted.example)
    torch.testing.assert_close(M.predict(back, x), M.predict(fitted.model, x), rtol=0, atol=0)


def test_gate_status_forms() -> None:
    from quantarena.tournaments.gates import GateStatus

    assert gates_passed(GateStatus(True, {})) and not gates_passed(GateStatus(False, {}))
    assert gates_passed({"passed": True, "sharpe": False})  # the explicit verdict wins
    assert not gates_passed({})
    with pytest.raises(TypeError, match="gate_status"):
        gates_passed("yes")
