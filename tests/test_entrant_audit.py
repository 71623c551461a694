"""The tournament audits its entrants before any round: a leaking agent is refused with one
line naming it, the bar and the time; verdicts are cached by code, params, data and settings;
``audit: false`` turns it off for the tournament or one agent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.config import TournamentConfig
from quantarena.strategies import Agent, Int, registry
from quantarena.tournaments import entrant_audit
from quantarena.tournaments.entrant_audit import AgentRefused, audit_key
from quantarena.tournaments.setup import audit_cache_dir, load_panel, prepare

ROOT = Path(__file__).resolve().parent.parent
MINUTE = 60_000_000_000


class PeeksNow(Agent):
    """A user agent that cheats on 1 bar in 200 (15m bars whose time is a multiple of
    3,000 minutes): there it takes the sign of the NEXT close; elsewhere one-bar momentum."""

    name = "peeks_now_and_then"
    space = {"k": Int(1, 5, default=1)}
    default_grid = {"k": [1, 2]}

    def indicators(self, bars, params, xp=np):
        c = bars.close[:, 0]
        honest = np.sign(c - np.r_[np.nan, c[:-1]])
        nxt = np.r_[c[1:], np.nan]
        cheat = ((bars.ts // MINUTE) % 3000 == 0) & np.isfinite(nxt)
        return np.nan_to_num(np.where(cheat, np.sign(nxt - c), honest))

    def signal(self, state, params, xp, t0, t1):
        return (state[t0:t1, None] * np.ones(len(params["k"])) * self.max_position).astype(
            np.float32
        )


class Honest(PeeksNow):
    name = "honest_momentum"

    def indicators(self, bars, params, xp=np):
        c = bars.close[:, 0]
        return np.nan_to_num(np.sign(c - np.r_[np.nan, c[:-1]]))


@pytest.fixture(autouse=True)
def user_agents(monkeypatch: pytest.MonkeyPatch) -> None:
    registry._load_builtins()
    monkeypatch.setitem(registry._REGISTRY, PeeksNow.name, PeeksNow)
    monkeypatch.setitem(registry._REGISTRY, Honest.name, Honest)


def config(out: Path, agents: list[dict], **extra) -> TournamentConfig:
    """Real FTX BTC-PERP 1m bars as 15m bars, 2022-01-11 .. 02-01 (about 2,000 bars)."""
    return TournamentConfig.from_dict({
        "name": "audited", "seed": 1,
        "data": {"files": [{"path": str(ROOT / "data/sample/btc-perp-20211231-20220201_1m.csv"),
                            "symbol": "BTCPERP"}],
                 "interval": "15m", "start": "2022-01-11", "end": "2022-02-01"},
        "schedule": {"round": "7d", "lookback": "5d", "warmup": "1d"},
        "agents": agents,
        "tracking": {"output_dir": str(out)},
        **extra,
    })  # fmt: skip


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("panel")
    return load_panel(config(out, [{"name": "m", "kind": "momentum"}]))


def test_a_leaking_entrant_is_refused_with_one_line(tmp_path: Path, panel) -> None:
    cfg = config(
        tmp_path,
        [
            {"name": "trend", "kind": "momentum", "params": {"fast": [4, 8], "slow": 24}},
            {"name": "sneaky", "kind": PeeksNow.name},
        ],
    )
    with pytest.raises(AgentRefused) as err:
        prepare(cfg, panel=panel)
    msg = str(err.value)
    r = err.value.result
    assert "\n" not in msg and msg.startswith("agent 'sneaky' refused: look-ahead at bar ")
    assert r["check"] == "every_bar" and r["first_ts"] % (3000 * MINUTE) == 0
    stamp = pd.Timestamp(r["first_ts"], unit="ns", tz="UTC").isoformat()
    assert f"bar {r['first_bar']} ({stamp})" in msg and "audit: false" in msg
    assert isinstance(err.value, ValueError)  # the CLI shows it as one red line


def test_audit_false_lets_it_in_for_the_tournament_or_the_agent(tmp_path: Path, panel) -> None:
    agents = [{"name": "sneaky", "kind": PeeksNow.name}, {"name": "hodl", "kind": "buy_hold"}]
    assert len(prepare(config(tmp_path / "a", agents, audit=False), panel=panel).entries) == 2
    agents[0]["audit"] = False
    inputs = prepare(config(tmp_path / "b", agents), panel=panel)
    assert [e.name for e in inputs.entries] == ["sneaky", "hodl"]
    # the honest one was audited and cached, the other was not
    assert len(list(audit_cache_dir(config(tmp_path / "b", agents)).glob("*.json"))) == 1


def test_verdicts_are_cached_by_code_params_and_data(
    tmp_path: Path, panel, monkeypatch: pytest.MonkeyPatch
) -> None:
    agents = [
        {"name": "trend", "kind": "momentum", "params": {"fast": [4, 8], "slow": 24}},
        {"name": "mine", "kind": Honest.name},
    ]
    cfg = config(tmp_path, agents)
    entries = prepare(cfg, panel=panel, audit=False).entries
    first = entrant_audit.audit_entries(
        entries, panel, cache_dir=audit_cache_dir(cfg), seed=cfg.seed
    )
    assert all(r["passed"] and not r["cached"] for r in first.values())
    assert first["trend"]["checks"] == ["every_bar", "truncate", "perturb", "stream"]

    calls = []
    real = entrant_audit.audit
    monkeypatch.setattr(entrant_audit, "audit", lambda *a, **k: calls.append(a) or real(*a, **k))
    prepare(cfg, panel=panel)  # same code, params, data: both verdicts come from the cache
    assert calls == []
    # other params for one agent: only that one is audited again
    agents[0]["params"] = {"fast": [4, 12], "slow": 24}
    prepare(config(tmp_path, agents), panel=panel)
    assert len(calls) == 1 and calls[0][0].name == "momentum"
    # other data: audited again
    calls.clear()
    prepare(cfg, panel=panel.select(slice(0, panel.n_bars - 10)))
    assert len(calls) == 2


def test_the_key_follows_the_agent_source_attributes_and_settings(panel) -> None:
    bars = panel.select(slice(0, 500))
    pop = Honest().grid()
    k = audit_key(Honest(), pop, bars, {"n_cuts": 4})
    assert k == audit_key(Honest(), pop, bars, {"n_cuts": 4})  # stable
    assert k != audit_key(Honest(max_position=0.2), pop, bars, {"n_cuts": 4})
    assert k != audit_key(Honest(), pop, bars, {"n_cuts": 5})
    assert k != audit_key(Honest(), {"k": np.array([1, 3])}, bars, {"n_cuts": 4})


def test_editing_the_agent_file_changes_the_key(tmp_path: Path, panel) -> None:
    from quantarena.strategies.registry import get_agent

    bars = panel.select(slice(0, 500))
    src = (
        "import numpy as np\nfrom quantarena.strategies import Agent, Int\n\n"
        "class Mine(Agent):\n    name = 'mine'\n    space = {'k': Int(1, 3, default=1)}\n"
        "    def indicators(self, bars, params, xp=np):\n        return bars.close[:, 0] * 0\n"
        "    def signal(self, state, params, xp, t0, t1):\n"
        "        return state[t0:t1, None].astype(np.float32)\n"
    )
    path = tmp_path / "mine_agent.py"
    path.write_text(src)
    a = get_agent(f"{path}:Mine")
    k = audit_key(a, a.defaults(), bars, {})
    assert k == audit_key(get_agent(f"{path}:Mine"), a.defaults(), bars, {})
    path.write_text(src.replace("* 0", "* 0.0"))  # same behaviour, other code
    b = get_agent(f"{path}:Mine")
    assert audit_key(b, b.defaults(), bars, {}) != k


def test_a_refusal_is_cached_too(tmp_path: Path, panel, monkeypatch) -> None:
    cfg = config(tmp_path, [{"name": "sneaky", "kind": PeeksNow.name}])
    with pytest.raises(AgentRefused):
        prepare(cfg, panel=panel)
    monkeypatch.setattr(entrant_audit, "audit", None)  # a second audit would crash
    with pytest.raises(AgentRefused, match="agent 'sneaky' refused"):
        prepare(cfg, panel=panel)


def test_the_cli_refuses_it_in_one_red_line(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from quantarena.cli import app

    cfg = config(tmp_path / "out", [{"name": "sneaky", "kind": PeeksNow.name}])
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    res = CliRunner().invoke(
        app,
        ["tournament", "run", str(path), "--no-ray", "--no-mlflow"],
        env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
    )
    assert res.exit_code == 2, res.output
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1 and msg.startswith("error:"), msg
    assert "agent 'sneaky' refused: look-ahead at bar" in msg and "Traceback" not in res.output


def test_a_tuned_entrant_is_audited_on_its_defaults_and_a_sample_of_its_box(
    tmp_path: Path,
) -> None:
    from quantarena.tournaments.entrant_audit import TUNED_SAMPLE, audit_population
    from quantarena.tournaments.setup import build_entries

    cfg = config(
        tmp_path,
        [
            {
                "name": "tuned",
                "kind": "momentum",
                "params": {"fast": "2:20:1", "slow": "30:80:2"},
                "tuning": {"sampler": "tpe", "trials": 8, "batch": 4, "oos_top": 2},
            }
        ],
    )
    (entry,) = build_entries(cfg)
    pop = audit_population(entry, seed=1)
    n = TUNED_SAMPLE + 1
    assert all(len(v) == n for v in pop.values())
    assert pop["fast"][0] == entry.agent.defaults()["fast"][0]  # the defaults come first
    drawn_fast, drawn_slow = pop["fast"][1:], pop["slow"][1:]
    assert ((2 <= drawn_fast) & (drawn_fast <= 20)).all()  # inside the tuned box
    assert ((30 <= drawn_slow) & (drawn_slow <= 80)).all()
    assert len(set(drawn_fast.tolist())) > 1
    again = audit_population(entry, seed=1)
    assert all(np.array_equal(pop[k], again[k]) for k in pop)  # seeded


def test_the_ray_driver_refuses_before_starting_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    from quantarena.actors.driver import run_on_ray
    from quantarena.cluster import runtime

    def no_ray(*a, **k):
        raise AssertionError("Ray was started for a tournament with a refused agent")

    monkeypatch.setattr(runtime, "connect", no_ray)
    cfg = config(tmp_path, [{"name": "sneaky", "kind": PeeksNow.name}])
    with pytest.raises(AgentRefused, match="agent 'sneaky' refused"):
        run_on_ray(cfg, log_mlflow=False)
