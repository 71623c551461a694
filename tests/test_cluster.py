"""Ray plumbing: token lookup, actor sizing, job runtime env, and a real local Ray."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from quantarena.cluster.auth import (
    ClusterAuthError,
    Token,
    auth_error_message,
    auth_headers,
    find_token,
)
from quantarena.cluster.jobs import (
    EXCLUDES,
    ClusterUnreachableError,
    dashboard_url,
    job_runtime_env,
    repo_root,
    submit,
    submit_entrypoint,
)
from quantarena.cluster.runtime import agent_resources_for
from quantarena.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------ token lookup


def test_token_precedence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home\n")
    path_file = tmp_path / "tok"
    path_file.write_text("  from-path  ")
    env = {"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(path_file)}
    assert find_token("given", env=env, home=home) == Token("given", "the token given")
    assert find_token(None, env=env, home=home) == Token("from-env", "$RAY_AUTH_TOKEN")
    env.pop("RAY_AUTH_TOKEN")
    assert find_token(None, env=env, home=home) == Token("from-path", str(path_file))
    assert find_token(None, env={}, home=home) == Token(
        "from-home", str(home / ".ray" / "auth_token")
    )
    assert find_token(None, env={}, home=tmp_path / "nobody") is None
    assert "from-env" not in repr(Token("from-env", "x"))  # the secret is never printed


def test_token_path_problems_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ClusterAuthError, match=r"^RAY_AUTH_TOKEN_PATH=.*missing cannot be read"):
        find_token(None, env={"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")}, home=tmp_path)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ClusterAuthError, match=r"is empty — write the cluster's token there"):
        find_token(None, env={"RAY_AUTH_TOKEN_PATH": str(empty)}, home=tmp_path)


def test_auth_headers_and_messages() -> None:
    assert auth_headers(None) == {}
    assert auth_headers("abc") == {"Authorization": "Bearer abc"}
    assert auth_headers(Token("abc", "x")) == {"Authorization": "Bearer abc"}
    missing = auth_error_message("http://h:8265", None, "Authentication required: Unauthorized")
    assert missing.startswith("http://h:8265: the Ray cluster requires a token and none was found")
    assert "~/.ray/auth_token" in missing and "ray get-auth-token" in missing
    wrong = auth_error_message("http://h:8265", Token("t", "$RAY_AUTH_TOKEN"), "Forbidden")
    assert wrong.startswith(
        "http://h:8265: the Ray cluster rejected the token from $RAY_AUTH_TOKEN"
    )
    assert "\n" not in missing + wrong


# ------------------------------------------------------------------ sizing


def test_agent_resources_for() -> None:
    assert agent_resources_for(0.25, cluster_gpus=1) == {"num_gpus": 0.25, "num_cpus": 0}
    assert agent_resources_for(1.0, cluster_gpus=8) == {"num_gpus": 1.0, "num_cpus": 0}
    assert agent_resources_for(0.25, cluster_gpus=0) == {"num_cpus": 0.25}
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"gpu_fraction must be in \(0, 1\]"):
            agent_resources_for(bad, cluster_gpus=1)


# ------------------------------------------------------------------ jobs, without a cluster


def test_job_runtime_env_merges() -> None:
    env = job_runtime_env(
        base={"env_vars": {"A": "1"}, "excludes": ["big/"], "pip": ["x"]},
        excludes=["more/"],
        env_vars={"B": 2},
    )
    assert env["working_dir"] == str(repo_root()) and (repo_root() / "quantarena").is_dir()
    assert env["excludes"] == [*EXCLUDES, "big/", "more/"]
    assert {".git", ".venv", "/runs", "/store", "*.db"} <= set(env["excludes"])
    assert env["env_vars"] == {"A": "1", "B": "2"} and env["pip"] == ["x"]
    assert dashboard_url("http://h:8265/", "raysubmit_1") == "http://h:8265/#/jobs/raysubmit_1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_address_is_one_line() -> None:
    address = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ClusterUnreachableError) as info:
        submit_entrypoint("python -c 'print(1)'", address=address, token="t")
    msg = str(info.value)
    assert msg.startswith(f"{address}: no Ray Jobs API answers there") and "\n" not in msg


def test_submit_checks_the_config_before_any_network(tmp_path: Path) -> None:
    address = f"http://127.0.0.1:{_free_port()}"  # never reached
    outside = tmp_path / "c.yaml"
    outside.write_text((ROOT / "configs" / "quick.yaml").read_text())
    with pytest.raises(
        ConfigError, match=r"c\.yaml: the config must be inside .* copy it under configs/"
    ):
        submit(outside, address=address)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nagents: []\ndata: {store: /s}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: agents: list at least one agent"):
        submit(bad, address=address)
    rel_store = tmp_path / "store.yaml"
    rel_store.write_text("name: x\nagents: [{name: a, kind: momentum}]\ndata: {store: store}\n")
    with pytest.raises(ConfigError, match=r"data\.store: stores are not uploaded with a job"):
        submit(rel_store, address=address, working_dir=tmp_path)
    missing = tmp_path / "files.yaml"
    missing.write_text("name: x\nagents: [{name: a, kind: momentum}]\ndata: {files: [nope.csv]}\n")
    with pytest.raises(ConfigError, match=r"data\.files\.0\.path: nope\.csv is not in"):
        submit(missing, address=address, working_dir=tmp_path)


# ------------------------------------------------------------------ a real local Ray


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from quantarena.cluster import runtime

    if ray.is_initialized():  # a previous module's leftover: start from a clean slate
        ray.shutdown()
    info = runtime.connect(num_cpus=1, num_gpus=1)  # one logical GPU on a CPU box
    yield info
    runtime.shutdown()


@pytest.mark.ray
def test_connect_starts_local_ray_and_is_idempotent(local_ray) -> None:
    from quantarena.cluster import runtime

    assert local_ray.started and local_ray.num_gpus == 1.0 and local_ray.address
    again = runtime.connect(num_cpus=4)  # already connected: nothing restarts
    assert again.address == local_ray.address and again.started
    res = runtime.resources()
    assert (res["CPU"], res["GPU"], res["nodes"]) == (1.0, 1.0, 1.0)
    assert res["memory_gb"] > 0


@pytest.mark.ray
def test_gpu_fraction_actors_share_one_logical_gpu(local_ray) -> None:
    import ray

    from quantarena.cluster.runtime import agent_resources

    opts = agent_resources(0.25)
    assert opts == {"num_gpus": 0.25, "num_cpus": 0}

    @ray.remote(num_cpus=0)
    class Probe:
        def assigned(self) -> dict:
            return ray.get_runtime_context().get_assigned_resources()

    actors = [Probe.options(**opts).remote() for _ in range(4)]  # 4 x 0.25 = the whole GPU
    got = ray.get([a.assigned.remote() for a in actors], timeout=60)
    assert all(g == {"GPU": 0.25} for g in got)
    assert ray.available_resources().get("GPU", 0.0) == pytest.approx(0.0)
    for a in actors:
        ray.kill(a)
