"""The tournament config: examples load, bad keys and values fail with one line naming the key."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from quantarena.config import ConfigError, TournamentConfig
from quantarena.engine.costs import Fees

ROOT = Path(__file__).resolve().parent.parent
DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9

BASE = {
    "name": "t",
    "data": {"files": ["data/sample/btc-perp-20211231-20220201_1m.csv"]},
    "agents": [{"name": "trend", "kind": "momentum", "params": {"fast": "5:20:5"}}],
}


def _bad(mutate, source: str = "configs/x.yaml") -> str:
    raw = copy.deepcopy(BASE)
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        TournamentConfig.from_dict(raw, source=source)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


@pytest.fixture()
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)  # relative data paths in the examples start at the repo root
    return ROOT


@pytest.mark.parametrize("name", ["demo.yaml", "quick.yaml", "example-full.yaml"])
def test_examples_load_and_round_trip(in_repo: Path, name: str) -> None:
    from quantarena.strategies import list_agents

    cfg = TournamentConfig.from_yaml(in_repo / "configs" / name, check_paths=True)
    cfg.check_agent_kinds(list_agents())
    again = TournamentConfig.model_validate(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg
    assert cfg.tracking.experiment == cfg.name
    assert cfg.tracking.output_dir == Path("runs") / cfg.name
    assert cfg.tracking.mlflow_uri == f"sqlite:///runs/{cfg.name}/mlflow.db"


def test_quick_values(in_repo: Path) -> None:
    cfg = TournamentConfig.from_yaml(in_repo / "configs" / "quick.yaml")
    assert cfg.schedule.round == 3 * DAY
    assert cfg.schedule.lookback == 7 * DAY
    assert cfg.schedule.warmup == DAY
    assert cfg.data.files[0].symbol == "BTCPERP"
    assert cfg.data.interval_ns == 15 * 60 * 10**9
    trend = cfg.agent("trend")
    assert trend.grid() == {"fast": [4, 8, 12, 16], "slow": [24, 48, 96], "ma": ["sma", "ema"]}
    assert trend.grid_size == 24
    assert cfg.gates.min_history_days is None and cfg.gates.min_sharpe == 0.0


def test_defaults() -> None:
    cfg = TournamentConfig.from_dict(BASE)
    assert cfg.seed == 0
    assert (cfg.schedule.round, cfg.schedule.lookback, cfg.schedule.warmup) == (
        7 * DAY,
        21 * DAY,
        0,
    )
    a = cfg.agents[0]
    assert (a.gpu_fraction, a.max_position, a.objective, a.population) == (
        0.25,
        0.10,
        "sharpe",
        None,
    )
    c = cfg.costs
    assert (c.fee_bps, c.slippage_bps, c.impact_k_bps, c.funding) == (10.0, 2.0, 0.0, None)
    al = cfg.allocation
    assert (al.method, al.kelly_fraction, al.shrinkage, al.cap_per_agent, al.gross_cap) == (
        "kelly",
        0.5,
        "ledoit-wolf",
        0.5,
        1.0,
    )
    g = cfg.gates
    assert (g.min_sharpe, g.max_drawdown, g.min_win_rate, g.min_history_days, g.min_paper_days) == (
        1.5,
        0.20,
        0.52,
        365,
        7,
    )
    assert cfg.ray.address is None and cfg.ray.include_dashboard is False


@pytest.mark.parametrize(
    ("text", "ns"),
    [("7d", 7 * DAY), ("3w", 21 * DAY), ("4h", 4 * HOUR), ("90m", 90 * 60 * 10**9)],
)
def test_durations(text: str, ns: int) -> None:
    raw = copy.deepcopy(BASE)
    raw["schedule"] = {"round": text, "lookback": text, "warmup": "0d"}
    cfg = TournamentConfig.from_dict(raw)
    assert cfg.schedule.round == ns and cfg.schedule.lookback == ns
    dumped = cfg.model_dump(mode="json")["schedule"]
    # dumps back to exact text that parses to the same ns
    assert TournamentConfig.from_dict({**raw, "schedule": dumped}).schedule.round == ns


def test_grid_specs() -> None:
    raw = copy.deepcopy(BASE)
    raw["agents"][0]["params"] = {"fast": "5:20:5", "slow": [50, 100], "ma": "ema"}
    raw["agents"].append(
        {"name": "mr", "kind": "mean_reversion", "params": {"entry": "0.5:2.0:0.5", "exit": 0.25}}
    )
    cfg = TournamentConfig.from_dict(raw)
    assert cfg.agents[0].grid() == {"fast": [5, 10, 15, 20], "slow": [50, 100], "ma": ["ema"]}
    assert cfg.agents[0].grid_size == 8
    assert cfg.agents[1].grid() == {"entry": [0.5, 1.0, 1.5, 2.0], "exit": [0.25]}
    assert all(isinstance(v, int) for v in cfg.agents[0].values("fast"))


def test_times_parse_to_ns_utc() -> None:
    raw = copy.deepcopy(BASE)
    raw["data"].update(start="2022-01-03", end="2022-01-10T12:00:00+02:00")
    cfg = TournamentConfig.from_dict(raw)
    assert cfg.data.start == 1641168000 * 10**9  # 2022-01-03T00:00Z
    assert cfg.data.end == (1641816000 - 2 * 3600) * 10**9  # 12:00+02:00 = 10:00Z
    # YAML turns an unquoted date into a datetime.date: still accepted
    cfg2 = TournamentConfig.model_validate(
        yaml.safe_load(yaml.safe_dump(raw).replace("'2022-01-03'", "2022-01-03"))
    )
    assert cfg2.data.start == cfg.data.start


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["agents"][0].update(gpu_fraction=2),
            "configs/x.yaml: agents.0.gpu_fraction: must be in (0, 1], got 2",
        ),
        (
            lambda d: d["agents"][0].update(gpu_fraction=0),
            "configs/x.yaml: agents.0.gpu_fraction: must be in (0, 1], got 0",
        ),
        (
            lambda d: d["agents"][0].update(max_position=-0.1),
            "configs/x.yaml: agents.0.max_position: must be in (0, 1], got -0.1",
        ),
        (
            lambda d: d.update(schedule={"round": "7x"}),
            "configs/x.yaml: schedule.round: must be a duration like 7d, 3w, 4h or 90m, got '7x'",
        ),
        (
            lambda d: d.update(schedule={"round": 7}),
            "configs/x.yaml: schedule.round: must be a duration with a unit, like 7d, 3w, 4h or 90m, got 7",
        ),
        (
            lambda d: d.update(schedule={"lookback": "0d"}),
            "configs/x.yaml: schedule.lookback: must be positive, like 7d, 3w, 4h or 90m, got '0d'",
        ),
        (
            lambda d: d.update(allocation={"method": "kelley"}),
            "configs/x.yaml: allocation.method: must be 'kelly', 'equal' or 'inverse_vol', got 'kelley'",
        ),
        (
            lambda d: d.update(allocation={"shrinkage": 1.5}),
            "configs/x.yaml: allocation.shrinkage: must be 'ledoit-wolf', 'none' or a number in [0, 1], got 1.5",
        ),
        (
            lambda d: d.update(allocation={"cap_per_agent": 0.8, "gross_cap": 0.5}),
            "configs/x.yaml: allocation: cap_per_agent 0.8 is above gross_cap 0.5",
        ),
        (
            lambda d: d.update(gates={"max_drawdown": -1}),
            "configs/x.yaml: gates.max_drawdown: must be > 0.0, got -1",
        ),
        (lambda d: d.update(seed=-1), "configs/x.yaml: seed: must be >= 0, got -1"),
        (
            lambda d: d.update(ray={"max_running_agents": 0}),
            "configs/x.yaml: ray.max_running_agents: must be >= 1, got 0",
        ),
        (
            lambda d: d["data"].update(store="store"),
            "configs/x.yaml: data: give exactly one of 'store' (a Parquet store) or 'files'",
        ),
        (
            lambda d: d["data"].update(start="2022-02-01", end="2022-01-01"),
            "configs/x.yaml: data: start 2022-02-01T00:00:00+00:00 must be before end 2022-01-01T00:00:00+00:00",
        ),
        (
            lambda d: d["data"].update(interval="1x"),
            "configs/x.yaml: data.interval: unknown interval '1x': use a number and a unit, e.g. 1m, 5m, 1h, 1d",
        ),
        (
            lambda d: d["agents"][0]["params"].update(fast="20:5:5"),
            "configs/x.yaml: agents.0.params.fast: bad range '20:5:5': stop 5 is below start 20",
        ),
        (
            lambda d: d["agents"][0]["params"].update(fast=[]),
            "configs/x.yaml: agents.0.params.fast: the list of values is empty, got []",
        ),
        (
            lambda d: d["agents"].append({"name": "trend", "kind": "breakout"}),
            "configs/x.yaml: agents.1.name: duplicate agent name 'trend' (also agents.0.name)",
        ),
        (
            lambda d: d["agents"][0].update(objective="profit"),
            "configs/x.yaml: agents.0.objective: must be 'sharpe', 'sortino', 'calmar', 'total_return' or 'deflated_sharpe', got 'profit'",
        ),
        (lambda d: d.pop("agents"), "configs/x.yaml: agents: required key is missing"),
        (lambda d: d.update(agents=[]), "configs/x.yaml: agents: list at least one agent, got []"),
    ],
)
def test_bad_values_name_the_key(mutate, expected: str) -> None:
    assert _bad(mutate) == expected


def test_unknown_keys_are_rejected_with_a_suggestion() -> None:
    msg = _bad(lambda d: d["agents"][0].update(gpu_fracton=0.5))
    assert msg.startswith(
        "configs/x.yaml: agents.0.gpu_fracton: unknown key — did you mean 'gpu_fraction'?"
    )
    assert "(allowed: name, kind, params, population, gpu_fraction" in msg
    assert _bad(lambda d: d.update(colour="red")).startswith("configs/x.yaml: colour: unknown key")
    msg = _bad(lambda d: d.update(costs={"fees_bps": 3}))
    assert msg.startswith("configs/x.yaml: costs.fees_bps: unknown key — did you mean 'fee_bps'?")
    msg = _bad(lambda d: d.update(gates={"min_sharp": 1}))
    assert msg.startswith(
        "configs/x.yaml: gates.min_sharp: unknown key — did you mean 'min_sharpe'?"
    )


def test_several_problems_are_counted() -> None:
    msg = _bad(lambda d: d.update(costs={"fee_bps": -1, "slippage_bps": -2}))
    assert msg == "configs/x.yaml: costs.fee_bps: must be >= 0, got -1 (and 1 more problem)"


def test_huge_grid_needs_population() -> None:
    params = {"window": "2:5000:1", "exit_window": "1:5000:1"}
    msg = _bad(lambda d: d["agents"][0].update(kind="breakout", params=params))
    assert "agents.0: the full grid holds 24,995,000 parameter sets" in msg
    raw = copy.deepcopy(BASE)
    raw["agents"][0].update(kind="breakout", params=params, population=500)
    assert TournamentConfig.from_dict(raw).agents[0].population == 500


def test_yaml_problems(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: t\nseed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"c\.yaml line 3: invalid YAML: duplicate key 'seed'"):
        TournamentConfig.from_yaml(p)
    p.write_text("name: t\nagents: [\n")
    with pytest.raises(ConfigError, match=r"c\.yaml line \d+: invalid YAML: "):
        TournamentConfig.from_yaml(p)
    p.write_text("")
    with pytest.raises(ConfigError, match=r"c\.yaml: the config is empty"):
        TournamentConfig.from_yaml(p)
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"the config is a list: it must be a mapping"):
        TournamentConfig.from_yaml(p)
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        TournamentConfig.from_yaml(tmp_path / "nope.yaml")


def test_yaml_error_is_one_line_with_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(
        yaml.safe_dump({**BASE, "agents": [{"name": "a", "kind": "momentum", "gpu_fraction": 2}]})
    )
    with pytest.raises(ConfigError) as info:
        TournamentConfig.from_yaml(p)
    assert str(info.value) == f"{p}: agents.0.gpu_fraction: must be in (0, 1], got 2"


def test_check_paths_and_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = TournamentConfig.from_dict(BASE)
    with pytest.raises(
        ConfigError, match=r"^x\.yaml: data\.files\.0\.path: file not found: data/sample/btc"
    ):
        cfg.check_paths(source="x.yaml")
    raw = copy.deepcopy(BASE)
    raw["data"] = {"store": "missing-store"}
    with pytest.raises(
        ConfigError, match=r"data\.store: no store at missing-store — ingest data first"
    ):
        TournamentConfig.from_dict(raw).check_paths()
    with pytest.raises(
        ConfigError,
        match=r"agents\.0\.kind: unknown agent 'momentum' — did you mean 'momentum2'\?",
    ):
        cfg.check_agent_kinds({"momentum2", "breakout"})


def test_costs_map_to_the_engine() -> None:
    raw = copy.deepcopy(BASE)
    raw["costs"] = {
        "fee_bps": 4,
        "slippage_bps": 1.5,
        "impact_k_bps": 20,
        "funding": {"rate_per_8h": 0.0001},
    }
    costs = TournamentConfig.from_dict(raw).costs.to_costs()
    assert costs.fees.rate_bps() == 4.0
    assert costs.slippage.bps == 1.5
    assert (costs.impact.k_bps, costs.impact.alpha) == (20.0, 0.5)
    assert (costs.funding.rate_per_8h, costs.funding.period_hours) == (0.0001, 8.0)
    assert TournamentConfig.from_dict(BASE).costs.to_costs().impact is None


def test_file_entries_accept_path_or_mapping() -> None:
    raw = copy.deepcopy(BASE)
    raw["data"]["files"] = ["a.csv", {"path": "b.csv", "symbol": "BTC"}]
    files = TournamentConfig.from_dict(raw).data.files
    assert [(f.path, f.symbol) for f in files] == [(Path("a.csv"), None), (Path("b.csv"), "BTC")]
    raw["data"]["files"] = [{"path": "b.csv", "sym": "BTC"}]
    with pytest.raises(
        ConfigError, match=r"data\.files\.0\.sym: unknown key — did you mean 'symbol'"
    ):
        TournamentConfig.from_dict(raw)


def test_explicit_tracking_is_kept() -> None:
    raw = copy.deepcopy(BASE)
    raw["tracking"] = {"mlflow_uri": "http://127.0.0.1:5000", "output_dir": "out/x"}
    t = TournamentConfig.from_dict(raw).tracking
    assert (t.mlflow_uri, t.output_dir, t.experiment) == (
        "http://127.0.0.1:5000",
        Path("out/x"),
        "t",
    )
    raw["tracking"] = {"output_dir": "out/x"}
    assert TournamentConfig.from_dict(raw).tracking.mlflow_uri == "sqlite:///out/x/mlflow.db"


# --------------------------------------------------------------------------- agents at load


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["agents"][0].update(kind="momentun"),
            "configs/x.yaml: agents.0.kind: unknown agent 'momentun' — did you mean 'momentum'? "
            "(known: breakout, buy_hold, cross_venue_arb, glft, market_maker, mean_reversion, "
            "ml, momentum, pairs_arb, vol_target)",
        ),
        (
            lambda d: d["agents"][0]["params"].update(fsat=3),
            "configs/x.yaml: agents.0.params.fsat: unknown parameter 'fsat' of agent 'momentum' "
            "— did you mean 'fast'? (parameters: fast, slow, ma)",
        ),
        (
            lambda d: d["agents"][0]["params"].update(fast="0:10:5"),
            "configs/x.yaml: agents.0.params.fast: 0 is outside its range 2..1000 "
            "(agent 'momentum')",
        ),
        (
            lambda d: d["agents"][0]["params"].update(ma="wma"),
            "configs/x.yaml: agents.0.params.ma: 'wma' is not one of sma, ema (agent 'momentum')",
        ),
        (
            lambda d: d["agents"][0]["params"].update(fast=60, slow=50),
            "configs/x.yaml: agents.0.params: no valid parameter set in the grid for agent "
            "'momentum': check the ranges",
        ),
        (  # a tuned agent's params span its search box: names and ranges are checked too
            lambda d: d["agents"][0].update(params={"slow": [10, 9000]}, tuning={"trials": 8}),
            "configs/x.yaml: agents.0.params.slow: 9000 is outside its range 3..5000 "
            "(agent 'momentum')",
        ),
    ],
)
def test_agent_kinds_and_params_are_checked_at_load(mutate, expected: str) -> None:
    assert _bad(mutate) == expected


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("agent", "needle"),
    [
        ({"name": "x", "kind": "momentun"}, "agents.1.kind: unknown agent 'momentun' — did you"),
        (
            {"name": "x", "kind": "breakout", "params": {"windw": 20}},
            "agents.1.params.windw: unknown parameter 'windw' of agent 'breakout' — did you",
        ),
    ],
)
@pytest.mark.parametrize("command", ["run", "submit"])
def test_cli_refuses_a_bad_agent_before_ray_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, agent: dict, needle: str
) -> None:
    """``tournament run`` and ``submit`` fail on the config file, in one line naming the file
    and the key, before any Ray start or cluster call (both are replaced by failures here)."""
    from typer.testing import CliRunner

    from quantarena.actors import driver
    from quantarena.cli import app
    from quantarena.cluster import jobs

    def no_ray(*a, **k):
        raise AssertionError("Ray was reached")

    monkeypatch.setattr(driver, "run_on_ray", no_ray)
    monkeypatch.setattr(driver, "run_in_process", no_ray)
    monkeypatch.setattr(jobs, "submit_entrypoint", no_ray)
    monkeypatch.chdir(ROOT)
    raw = copy.deepcopy(BASE)
    raw["agents"].append(agent)
    path = _write(tmp_path / "bad-agent.yaml", raw)
    args = ["tournament", "run", str(path)] if command == "run" else ["submit", str(path)]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert res.exit_code == 2, res.output
    msg = " ".join(res.stderr.split())
    assert msg.startswith(f"error: {path}: ") and needle in msg, msg
    assert "Traceback" not in res.output


# --------------------------------------------------------------------------- binding gates


def test_gates_binding_is_a_config_key_that_reaches_the_allocator() -> None:
    from quantarena.tournaments.director import AllocationConfig
    from quantarena.tournaments.gates import BINDING
    from quantarena.tournaments.setup import allocation_of

    cfg = TournamentConfig.from_dict(BASE)
    assert cfg.gates.binding == BINDING == ("sharpe", "max_drawdown")
    assert allocation_of(cfg).gated_by == BINDING == AllocationConfig().gated_by
    raw = copy.deepcopy(BASE)
    raw["gates"] = {"binding": ["sharpe", "win_rate"]}
    cfg = TournamentConfig.from_dict(raw)
    assert allocation_of(cfg).gated_by == ("sharpe", "win_rate")
    assert "binding:\n  - sharpe\n  - win_rate" in cfg.to_yaml()
    assert TournamentConfig.model_validate(yaml.safe_load(cfg.to_yaml())) == cfg
    raw["gates"] = {"binding": []}
    assert allocation_of(TournamentConfig.from_dict(raw)).gated_by == ()


@pytest.mark.parametrize(
    ("binding", "expected"),
    [
        (
            ["sharpe", "drawdown"],
            "configs/x.yaml: gates.binding: unknown gate 'drawdown' — did you mean "
            "'max_drawdown'? (gates: sharpe, max_drawdown, win_rate, history, paper)",
        ),
        (["sharpe", "sharpe"], "configs/x.yaml: gates.binding: a gate is listed twice"),
        ("sharpe", "configs/x.yaml: gates.binding: must be a list of gate names, e.g. [sharpe]"),
    ],
)
def test_bad_binding_gates_name_the_key(binding, expected: str) -> None:
    assert _bad(lambda d: d.update(gates={"binding": binding})).startswith(expected)


def test_leaderboard_marks_the_gates_that_hold_back_capital() -> None:
    from rich.console import Console

    from quantarena.cli.tournament_run import leaderboard_table

    rows = [
        {"rank": 1, "agent": "a", "weight": 0.5, "gates_passed": False,
         "gates_failed": "sharpe, history, paper", "held_back_by": "sharpe"},
        {"rank": 2, "agent": "b", "weight": 0.5, "gates_passed": False,
         "gates_failed": "history, paper", "held_back_by": float("nan")},  # as read from CSV
        {"rank": 3, "agent": "c", "gates_passed": True, "gates_failed": "", "held_back_by": ""},
    ]  # fmt: skip
    console = Console(width=250, record=True, color_system=None)
    console.print(leaderboard_table(rows, "t"))
    text = console.export_text()
    assert "fail sharpe*, history, paper" in text
    assert "fail history, paper" in text and "history*" not in text
    assert "gate* = binding: an agent failing it gets no capital (gates.binding)" in text


# --------------------------------------------------------------------------- sections from the core


def test_section_defaults_are_the_core_dataclasses_defaults() -> None:
    from quantarena.engine.costs import DEFAULT_COSTS
    from quantarena.tournaments import director
    from quantarena.training.tuning import TuningSpec

    cfg = TournamentConfig.from_dict(BASE)
    assert cfg.costs.to_costs() == DEFAULT_COSTS  # the same default costs as qa.backtest
    assert cfg.allocation.to_core() == director.AllocationConfig()
    raw = copy.deepcopy(BASE)
    raw["agents"][0]["tuning"] = {}
    assert TournamentConfig.from_dict(raw).agents[0].tuning.spec(seed=5) == TuningSpec(seed=5)
    # the YAML names: flat cost keys, nested funding, no internal fields
    assert list(type(cfg.costs).model_fields) == [
        "fee_bps", "slippage_bps", "impact_k_bps", "impact_alpha", "impact_max_bps", "funding",
    ]  # fmt: skip
    assert "gated_by" not in type(cfg.allocation).model_fields
    assert "seed" not in type(TournamentConfig.from_dict(raw).agents[0].tuning).model_fields


def test_section_values_reach_the_core() -> None:
    from quantarena.tournaments.setup import allocation_of

    raw = copy.deepcopy(BASE)
    raw["allocation"] = {"long_only": False, "min_rounds": 3, "shrinkage": "Ledoit_Wolf"}
    raw["gates"] = {"binding": ["sharpe"]}
    raw["costs"] = {"fee_bps": 0, "funding": {"rate_per_8h": -0.0001, "period_hours": 4}}
    cfg = TournamentConfig.from_dict(raw)
    alloc = allocation_of(cfg)
    assert (alloc.long_only, alloc.min_rounds, alloc.shrinkage) == (False, 3, "ledoit-wolf")
    assert alloc.gated_by == ("sharpe",)
    costs = cfg.costs.to_costs()
    assert costs.fees.rate_bps() == 0.0 and costs.slippage.bps == 2.0
    assert (costs.funding.rate_per_8h, costs.funding.period_hours) == (-0.0001, 4.0)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d.update(allocation={"kelly_fraction": 0}),
            "configs/x.yaml: allocation.kelly_fraction: must be in (0, 1], got 0",
        ),
        (
            lambda d: d.update(allocation={"estimation_window": 1}),
            "configs/x.yaml: allocation.estimation_window: must be >= 2, got 1",
        ),
        (
            lambda d: d.update(allocation={"shrinkage": True}),
            "configs/x.yaml: allocation.shrinkage: must be 'ledoit-wolf', 'none' or a number "
            "in [0, 1], got True",
        ),
        (
            lambda d: d["agents"][0].update(tuning={"trials": 0}),
            "configs/x.yaml: agents.0.tuning.trials: must be >= 1, got 0",
        ),
        (
            lambda d: d["agents"][0].update(tuning={"sampler": "grid"}),
            "configs/x.yaml: agents.0.tuning.sampler: must be 'tpe', 'cmaes', 'random' or "
            "'nsga2', got 'grid'",
        ),
        (
            lambda d: d["agents"][0].update(tuning={"seed": 3}),
            "configs/x.yaml: agents.0.tuning.seed: unknown key",
        ),
        (
            lambda d: d.update(costs={"impact_alpha": 3}),
            "configs/x.yaml: costs.impact_alpha: must be in (0, 2], got 3",
        ),
        (
            lambda d: d.update(costs={"slippage_bps": True}),
            "configs/x.yaml: costs.slippage_bps: must be a number, not true/false, got True",
        ),
        (
            lambda d: d.update(costs={"fee_bps": float("inf")}),
            "configs/x.yaml: costs.fee_bps: must be a finite number >= 0, got inf",
        ),
        (
            lambda d: d.update(costs={"funding": {"rate_per_8h": 1e-4, "period_hours": 0}}),
            "configs/x.yaml: costs.funding.period_hours: must be > 0, got 0",
        ),
        (
            lambda d: d.update(costs={"funding": {"rate_8h": 1e-4}}),
            "configs/x.yaml: costs.funding.rate_8h: unknown key — did you mean 'rate_per_8h'?",
        ),
    ],
)
def test_generated_sections_name_the_key(mutate, expected: str) -> None:
    assert _bad(mutate).startswith(expected)


@dataclass(frozen=True)
class Borrow:
    """A cost model the config has never seen: a borrow fee on short notional."""

    apr: float = field(default=0.0, metadata={"key": "borrow_apr", "ge": 0, "le": 1})
    basis: int = field(default=365, metadata={"key": "borrow_days", "ge": 360})


@dataclass(frozen=True)
class MyCosts:
    fees: Fees | None = field(default=None, metadata={"config": "flat"})
    borrow: Borrow | None = field(default=None, metadata={"config": "flat"})
    extra: Borrow | None = field(default=None, metadata={"config": "section"})


def test_a_new_cost_model_is_one_dataclass() -> None:
    """The generator, on a container it has never seen: a new model's annotated fields become
    keys with their ranges and defaults, and build the core object back."""
    from quantarena.config_sections import composite_section

    section = composite_section(MyCosts, MyCosts(fees=Fees(taker_bps=7)), name="MySection")
    assert list(section.model_fields) == ["fee_bps", "borrow_apr", "borrow_days", "extra"]
    assert section().fee_bps == 7.0 and section().borrow_days == 365
    assert section().to_core() == MyCosts(fees=Fees(taker_bps=7))  # Borrow off: left out
    got = section(borrow_apr=0.05, extra={"borrow_apr": 0.1}).to_core()
    assert got.borrow == Borrow(apr=0.05) and got.extra == Borrow(apr=0.1, basis=365)
    with pytest.raises(ValueError, match="must be >= 360"):
        section(borrow_days=30)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        section(borrow_apr=2)


def test_agent_stops_section_reaches_the_rounds() -> None:
    """``agents[].stops`` (generated from the engine's Stops) is applied in every round: the
    round equals a direct ``evaluate_round(..., stops=Stops(...))`` and differs without it."""
    import dataclasses

    import numpy as np

    from quantarena.engine.api import load_bars_any
    from quantarena.engine.stops import Stops
    from quantarena.tournaments.rounds import evaluate_round, run_agent_round
    from quantarena.tournaments.setup import prepare

    raw = copy.deepcopy(BASE)
    raw["schedule"] = {"round": "1d", "lookback": "2d", "max_rounds": 1}
    raw["agents"][0].update(params={"fast": [4, 8], "slow": [24]}, max_position=1.0)
    raw["agents"][0]["stops"] = {"stop_loss": 0.003, "trailing": 0.004}
    cfg = TournamentConfig.from_dict(raw)
    assert cfg.agents[0].stops.to_core() == Stops(stop_loss=0.003, trailing=0.004)
    bars = load_bars_any(ROOT / "data/sample/btc-perp-20211231-20220201_1m.csv", end="2022-01-08")
    inputs = prepare(cfg, panel=bars)
    entry, rnd = inputs.entries[0], inputs.rounds[0]
    assert entry.stops == Stops(stop_loss=0.003, trailing=0.004)
    got = run_agent_round(inputs.panel, entry, rnd, inputs.costs, backend="cpu")
    plain = dataclasses.replace(entry, stops=None)
    direct = evaluate_round(
        inputs.panel, plain, rnd, inputs.costs, stops=entry.stops, backend="cpu"
    )
    without = evaluate_round(inputs.panel, plain, rnd, inputs.costs, backend="cpu")
    np.testing.assert_array_equal(got.oos_returns, direct.oos_returns)
    assert not np.array_equal(got.oos_returns, without.oos_returns)
    del raw["agents"][0]["stops"]
    assert prepare(TournamentConfig.from_dict(raw), panel=bars).entries[0].stops is None


@pytest.mark.parametrize(
    ("stops", "expected"),
    [
        ({"stop_loss": -0.01}, "agents.0.stops.stop_loss: must be a fraction >= 0 (0.02 = 2%)"),
        ({"trailing": "2%"}, "agents.0.stops.trailing: must be a fraction >= 0"),
        ({"stop": 0.01}, "agents.0.stops.stop: unknown key — did you mean 'stop_loss'?"),
    ],
)
def test_bad_stops_name_the_key(stops, expected: str) -> None:
    assert _bad(lambda d: d["agents"][0].update(stops=stops)).startswith(
        f"configs/x.yaml: {expected}"
    )
