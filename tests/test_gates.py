"""Gates: strict/inclusive thresholds, disabled gates, missing paper record, bad input."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pydantic import ValidationError

from quantarena.tournaments.gates import GateConfig, evaluate_gates

GOOD = {
    "sharpe": 2.0,
    "max_drawdown": 0.10,
    "win_rate": 0.55,
    "history_days": 400,
    "paper_days": 10,
}


def test_all_pass_and_results_recorded() -> None:
    status = evaluate_gates({"a": GOOD})["a"]
    assert status.passed and status.failed == []
    assert set(status.results) == {"sharpe", "max_drawdown", "win_rate", "history", "paper"}
    r = status.results["sharpe"]
    assert (r.passed, r.value, r.threshold, r.op) == (True, 2.0, 1.5, ">")
    assert status.results["max_drawdown"].op == "<"
    assert status.results["history"].op == ">="


@pytest.mark.parametrize(
    ("field", "value", "gate", "passed"),
    [
        ("sharpe", 1.5, "sharpe", False),  # strict >
        ("sharpe", 1.5000001, "sharpe", True),
        ("max_drawdown", 0.20, "max_drawdown", False),  # strict <
        ("max_drawdown", 0.1999, "max_drawdown", True),
        ("win_rate", 0.52, "win_rate", False),  # strict >
        ("win_rate", 0.5201, "win_rate", True),
        ("history_days", 365, "history", True),  # inclusive >=
        ("history_days", 364.9, "history", False),
        ("paper_days", 7, "paper", True),  # inclusive >=
        ("paper_days", 6, "paper", False),
    ],
)
def test_threshold_boundaries(field: str, value: float, gate: str, passed: bool) -> None:
    status = evaluate_gates({"a": {**GOOD, field: value}})["a"]
    assert status.results[gate].passed is passed
    assert status.passed is passed
    assert status.failed == ([] if passed else [gate])
    if not passed:
        assert field in status.results[gate].reason


def test_paper_not_yet_available() -> None:
    status = evaluate_gates({"a": {**GOOD, "paper_days": None}})["a"]
    assert not status.passed
    res = status.results["paper"]
    assert res.passed is False and res.value is None
    assert res.reason == "paper trading not yet available"


def test_disabled_gates_are_skipped_and_fields_not_required() -> None:
    cfg = GateConfig(min_paper_days=None, min_history_days=None)
    status = evaluate_gates({"a": {"sharpe": 2, "max_drawdown": 0.1, "win_rate": 0.6}}, cfg)["a"]
    assert status.passed and set(status.results) == {"sharpe", "max_drawdown", "win_rate"}
    all_off = GateConfig(
        min_sharpe=None,
        max_drawdown=None,
        min_win_rate=None,
        min_history_days=None,
        min_paper_days=None,
    )
    assert evaluate_gates({"a": {}}, all_off)["a"].passed


def test_custom_thresholds_and_many_agents_from_dataframe() -> None:
    df = pd.DataFrame(
        {
            "sharpe": [2.5, 0.8, 3.0],
            "max_drawdown": [0.05, 0.05, 0.35],
            "win_rate": [0.6, 0.6, 0.6],
            "history_days": [500, 500, 500],
            "paper_days": [30, 30, float("nan")],
        },
        index=["alpha", "beta", "gamma"],
    )
    out = evaluate_gates(df, GateConfig(min_sharpe=1.0, max_drawdown=0.3))
    assert list(out) == ["alpha", "beta", "gamma"]
    assert out["alpha"].passed
    assert out["beta"].failed == ["sharpe"]
    assert out["gamma"].failed == ["max_drawdown", "paper"]
    assert out["gamma"].results["paper"].reason == "paper trading not yet available"


def test_nan_statistic_fails_with_reason() -> None:
    status = evaluate_gates({"a": {**GOOD, "sharpe": float("nan")}})["a"]
    assert not status.passed
    assert math.isnan(status.results["sharpe"].value)
    assert "NaN" in status.results["sharpe"].reason


def test_bad_input_messages_name_agent_and_field() -> None:
    bad = dict(GOOD)
    del bad["win_rate"]
    with pytest.raises(ValueError, match=r"agent 'x': missing field 'win_rate'.*min_win_rate=None"):
        evaluate_gates({"x": bad})
    with pytest.raises(ValueError, match=r"agent 'x', field 'max_drawdown'.*positive fraction"):
        evaluate_gates({"x": {**GOOD, "max_drawdown": -0.25}})
    with pytest.raises(ValueError, match=r"agent 'x', field 'sharpe': expected a number"):
        evaluate_gates({"x": {**GOOD, "sharpe": "high"}})
    with pytest.raises(ValidationError):
        GateConfig(max_drawdown=1.5)
    with pytest.raises(ValidationError):
        GateConfig(min_sharpe_ratio=1.0)  # type: ignore[call-arg]  # typo is caught
