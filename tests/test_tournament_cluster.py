"""The same tournament on a two-node Ray cluster (started here with ``ray.cluster_utils``,
two raylets of one CPU each on this machine): agents spread over the nodes, each node runs
one agent-round at a time, and the numbers equal the in-process run."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent


def _config(out: Path, address: str | None = None):
    from quantarena.config import TournamentConfig

    return TournamentConfig.from_dict({
        "name": "two-nodes", "seed": 3,
        "data": {"files": [{"path": str(ROOT / "data/sample/btc-perp-20211231-20220201_1m.csv"),
                            "symbol": "BTCPERP"}],
                 "interval": "15m", "start": "2022-01-11", "end": "2022-02-01"},
        "schedule": {"round": "7d", "lookback": "5d", "warmup": "1d"},
        "agents": [
            {"name": "trend", "kind": "momentum",
             "params": {"fast": [4, 8, 12], "slow": [24, 48]}},
            {"name": "reversion", "kind": "mean_reversion",
             "params": {"window": [10, 20], "entry": [1.5, 2.0], "exit": 0.5}},
            {"name": "channel", "kind": "breakout",
             "params": {"window": [10, 20], "exit_window": [5, 10]}},
            {"name": "hodl", "kind": "buy_hold"},
        ],
        "costs": {"fee_bps": 5, "slippage_bps": 1},
        "gates": {"min_history_days": None, "min_paper_days": None},
        "tracking": {"output_dir": str(out)},
        "ray": {"address": address},
    })  # fmt: skip


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    from quantarena.cluster import runtime

    if ray.is_initialized():
        runtime.shutdown()
    # token auth on, as a real cluster has it: the nodes started here and this driver must
    # agree (Ray reads RAY_AUTH_MODE when a node starts; a local ray.init does this itself)
    from ray._private.authentication import authentication_token_setup as auth

    saved = os.environ.get("RAY_AUTH_MODE")
    auth.enable_token_auth_by_default()
    auth.ensure_token_if_auth_enabled(create_token_if_missing=True)
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        runtime.shutdown()
        cluster.shutdown()
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def test_agents_spread_over_nodes_and_match_the_in_process_run(two_nodes, tmp_path: Path):
    from quantarena.actors.driver import run_in_process, run_on_ray

    summary = run_on_ray(_config(tmp_path / "ray", two_nodes.address), log_mlflow=False)
    nodes = [i["node_id"] for i in summary["agents_info"]]
    assert len(set(nodes)) == 2 and sorted(nodes.count(n) for n in set(nodes)) == [2, 2]
    assert summary["timings"]["slots"] == 2  # one CPU per node: one agent-round each
    local = run_in_process(_config(tmp_path / "local"), log_mlflow=False)
    pd.testing.assert_frame_equal(
        pd.DataFrame(summary["leaderboard"]), pd.DataFrame(local["leaderboard"])
    )
    pd.testing.assert_frame_equal(
        pd.DataFrame(summary["portfolio"]), pd.DataFrame(local["portfolio"])
    )
