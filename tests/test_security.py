"""Security: no planted secret in anything a run writes; the secrets file must be private;
Redis with an ACL user (and rediss:// TLS URLs); submitted jobs confined to their working
dir; passwords masked in messages."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from quantarena.redact import MASK, redact, redact_text, redacted

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "pl4nted-S3CRET-" + uuid.uuid4().hex


def test_redact_masks_secret_keys_and_url_passwords():
    data = {
        "name": "ok",
        "exchange": {"api_key": "k1", "API_SECRET": "k2", "passphrase": "k3", "window": 5},
        "ray": {"runtime_env": {"env_vars": {"BINANCE_TOKEN": "k4", "OMP_NUM_THREADS": "1"}}},
        "storage": "redis://qa:hunter2@127.0.0.1:6379/0",
        "db": "postgresql://mlflow:pw%40x@db:5432/mlflow",
        "list": ["rediss://u:p@h:6380", "plain"],
    }
    out = redact(data)
    assert out["exchange"] == {"api_key": MASK, "API_SECRET": MASK, "passphrase": MASK,
                               "window": 5}  # fmt: skip
    assert out["ray"]["runtime_env"]["env_vars"] == {"BINANCE_TOKEN": MASK, "OMP_NUM_THREADS": "1"}
    assert out["storage"] == f"redis://qa:{MASK}@127.0.0.1:6379/0"
    assert out["db"] == f"postgresql://mlflow:{MASK}@db:5432/mlflow"
    assert out["list"] == [f"rediss://u:{MASK}@h:6380", "plain"]
    assert out["name"] == "ok" and data["exchange"]["api_key"] == "k1"  # input untouched
    assert redact_text("no url here, token-free") == "no url here, token-free"


def test_nothing_a_run_writes_holds_a_planted_secret(tmp_path, capfd):
    """A secret in the config (a job's environment variable): the leaderboard, config.yaml,
    checkpoint, MLflow database and artifacts, and the console output hold only the mask."""
    from test_faults import config_dict
    from typer.testing import CliRunner

    from quantarena.cli import app
    from quantarena.config import TournamentConfig

    d = config_dict(tmp_path / "out")
    d["ray"] = {"runtime_env": {"env_vars": {"EXCHANGE_API_SECRET": PLANTED}}}
    path = tmp_path / "cfg.yaml"
    path.write_text(TournamentConfig.from_dict(d).to_yaml())
    assert PLANTED in path.read_text()  # the user's own file holds it
    res = CliRunner().invoke(app, ["tournament", "run", str(path), "--no-ray", "--json"])
    assert res.exit_code == 0, res.output
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"mlflow.db", "config.yaml", "checkpoint.pkl", "leaderboard.csv"} <= names
    assert any("artifacts" in p.parts for p in written)
    for p in written:
        assert PLANTED.encode() not in p.read_bytes(), p
    assert "EXCHANGE_API_SECRET" in (tmp_path / "out" / "config.yaml").read_text()
    captured = capfd.readouterr()
    assert PLANTED not in res.output + captured.out + captured.err


# ------------------------------------------------------------------ secrets file


def test_secrets_come_from_the_environment_or_a_private_file(tmp_path, monkeypatch):
    from quantarena.secrets import SecretsError, get_secret

    f = tmp_path / "secrets.env"
    f.write_text("# exchange keys\nBINANCE_API_KEY = abc\nBINANCE_API_SECRET='xyz'\n")
    os.chmod(f, 0o600)
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    assert get_secret("BINANCE_API_KEY", f) == "abc"
    assert get_secret("BINANCE_API_SECRET", f) == "xyz"
    monkeypatch.setenv("BINANCE_API_KEY", "from-env")
    assert get_secret("BINANCE_API_KEY", f) == "from-env"  # the environment first
    with pytest.raises(SecretsError, match=r"secret NOPE is not set: export NOPE"):
        get_secret("NOPE", f)
    assert get_secret("NOPE", f, required=False) is None
    os.chmod(f, 0o640)
    with pytest.raises(SecretsError) as exc:
        get_secret("BINANCE_API_SECRET", f)
    assert "0640" in str(exc.value) and "chmod 600" in str(exc.value)
    assert "xyz" not in str(exc.value)


# ------------------------------------------------------------------ Redis


def test_redis_urls_with_user_password_and_tls_are_understood():
    from quantarena.redis_url import check_redis_url, redis_client, safe_url

    info = check_redis_url("rediss://qa:pw@redis.example:6380/2")
    assert info == {"scheme": "rediss", "tls": True, "username": "qa", "host": "redis.example",
                    "port": 6380, "db": 2}  # fmt: skip
    client = redis_client("rediss://qa:pw@redis.example:6380/2?ssl_cert_reqs=required")
    import redis

    pool = client.connection_pool
    assert issubclass(pool.connection_class, redis.SSLConnection)
    assert pool.connection_kwargs["username"] == "qa"
    assert pool.connection_kwargs["password"] == "pw"
    with pytest.raises(ValueError) as exc:
        check_redis_url("http://qa:pw@h:1")
    assert "pw" not in str(exc.value) and MASK in str(exc.value)
    assert safe_url("redis://qa:pw@h:1/0") == f"redis://qa:{MASK}@h:1/0"


@pytest.fixture
def acl_user():
    """A Redis ACL user that may touch only keys under its own quantarena prefix."""
    redis = pytest.importorskip("redis")
    admin = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=2)
    try:
        admin.ping()
    except Exception as exc:
        pytest.skip(f"Redis is not answering at 127.0.0.1:6379 ({type(exc).__name__})")
    tag = uuid.uuid4().hex[:8]
    user, password, prefix = f"qa-acl-{tag}", f"pw-{uuid.uuid4().hex}", f"qa-acltest-{tag}:"
    admin.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", "resetkeys", f"~{prefix}*",
        "+@all", "-@dangerous",
    )  # fmt: skip
    try:
        yield user, password, prefix
    finally:
        for key in admin.scan_iter(match=f"{prefix}*"):
            admin.delete(key)
        admin.execute_command("ACL", "DELUSER", user)
        admin.close()


def test_optuna_storage_through_an_acl_user_reaches_only_its_keys(acl_user):
    import optuna
    import redis

    from quantarena.redis_url import redis_client
    from quantarena.training.storage import StorageError, make_storage

    user, password, prefix = acl_user
    url = f"redis://{user}:{password}@127.0.0.1:6379/0"
    storage = make_storage(url, prefix=prefix)
    study = optuna.create_study(storage=storage, study_name=f"acl-{user}")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert len(study.trials) == 3
    client = redis_client(url, socket_timeout=2)
    keys = [k.decode() for k in client.scan_iter(match=f"{prefix}*")]
    assert keys and all(k.startswith(prefix) for k in keys)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("not-quantarena:key", "1")
    client.close()
    with pytest.raises(StorageError) as exc:
        make_storage(f"redis://{user}:wrong-{password}@127.0.0.1:6379/0", prefix=prefix)
    msg = str(exc.value)
    assert password not in msg and MASK in msg and "\n" not in msg


# ------------------------------------------------------------------ submitted jobs


def test_submitted_job_paths_are_confined_to_the_working_dir(tmp_path):
    from quantarena.cluster.jobs import submit
    from quantarena.config import ConfigError

    address = "http://127.0.0.1:9"  # never reached: the checks fail first
    (tmp_path / "data").mkdir()
    climb = tmp_path / "climb.yaml"
    climb.write_text("name: x\nagents: [{name: a, kind: momentum}]\n"
                     "data: {files: [../etc/passwd]}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"data\.files\.0\.path: \.\./etc/passwd leads outside"):
        submit(climb, address=address, working_dir=tmp_path)
    absolute = tmp_path / "abs.yaml"
    absolute.write_text(f"name: x\nagents: [{{name: a, kind: momentum}}]\n"
                        f"data: {{files: [{ROOT / 'data/sample/README.md'}]}}\n")  # fmt: skip
    with pytest.raises(ConfigError, match="--allow-absolute-paths"):
        submit(absolute, address=address, working_dir=tmp_path)


def test_job_refuses_data_outside_its_dir_unless_allowed(tmp_path, monkeypatch):
    from test_faults import config_dict
    from typer.testing import CliRunner

    from quantarena.cli import app
    from quantarena.cluster.jobs import CONFINE_ENV
    from quantarena.config import TournamentConfig

    path = tmp_path / "cfg.yaml"  # its data file is an absolute path outside tmp_path
    path.write_text(TournamentConfig.from_dict(config_dict(tmp_path / "out")).to_yaml())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CONFINE_ENV, "1")
    res = CliRunner().invoke(app, ["tournament", "run", "cfg.yaml", "--no-ray", "--no-mlflow"])
    assert res.exit_code != 0
    assert "outside the job's working dir" in res.output
    assert not (tmp_path / "out").exists()  # nothing ran


def test_submitted_live_config_paths_and_password_are_checked_before_submitting(
    tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from quantarena.cli import app
    from quantarena.cli.live_jobs import is_live_config, submit_live
    from quantarena.cluster.jobs import CONFINE_ENV
    from quantarena.config import ConfigError

    address = "http://127.0.0.1:9"  # never reached: the checks fail first
    agents = "agents: [{name: h, agent: buy_hold}]\n"
    cfg = tmp_path / "live.yaml"
    cfg.write_text(agents + "out: ../elsewhere\n")
    assert is_live_config(cfg) and not is_live_config(ROOT / "configs" / "quick.yaml")
    with pytest.raises(ConfigError, match=r"out: \.\./elsewhere leads outside"):
        submit_live(cfg, address=address, log=print, working_dir=tmp_path)
    cfg.write_text(agents + "out: /srv/live\n")
    with pytest.raises(ConfigError, match="--allow-absolute-paths"):
        submit_live(cfg, address=address, log=print, working_dir=tmp_path)
    cfg.write_text(agents + "redis: redis://:s3cret-pw@10.0.0.5:6379/0\n")
    with pytest.raises(ConfigError, match="holds a password") as info:
        submit_live(cfg, address=address, log=print, working_dir=tmp_path)
    assert "s3cret-pw" not in str(info.value)
    # inside the job, `live run` refuses an out folder outside its working dir
    cfg.write_text(agents + "out: /srv/live\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CONFINE_ENV, "1")
    res = CliRunner().invoke(app, ["live", "run", "live.yaml"])
    assert res.exit_code == 2 and "outside the job's working dir" in res.output


def test_keep_results_here_on_a_local_cluster(tmp_path, monkeypatch):
    from quantarena.cluster.jobs import keep_results_here

    monkeypatch.chdir(tmp_path)
    cfg = ROOT / "configs" / "quick.yaml"
    uri, out = keep_results_here(cfg, "http://127.0.0.1:8265")
    assert uri == f"sqlite:///{tmp_path.resolve()}/runs/quick/mlflow.db"
    assert out == str(tmp_path.resolve() / "runs" / "quick")
    assert keep_results_here(cfg, "http://10.1.2.3:8265") == (None, None)


def test_submit_never_prints_the_token(tmp_path, monkeypatch):
    import socket

    from typer.testing import CliRunner

    from quantarena.cli import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RAY_AUTH_TOKEN", PLANTED)
    res = CliRunner().invoke(
        app, ["submit", str(ROOT / "configs" / "quick.yaml"), "--address",
              f"http://127.0.0.1:{port}", "--mlflow-uri", f"sqlite:///{tmp_path}/m.db"],
    )  # fmt: skip
    assert res.exit_code != 0
    assert "no Ray Jobs API answers there" in res.output
    assert PLANTED not in res.output


def test_redacted_config_masks_a_tracking_password_and_stays_valid(tmp_path):
    from test_faults import config_dict

    from quantarena.config import TournamentConfig

    d = config_dict(tmp_path)
    d["tracking"]["mlflow_uri"] = f"http://qa:{PLANTED}@mlflow.internal:5000"
    cfg = TournamentConfig.from_dict(d)
    clean = redacted(cfg)
    assert isinstance(clean, TournamentConfig)
    assert clean.tracking.mlflow_uri == f"http://qa:{MASK}@mlflow.internal:5000"
    assert PLANTED not in clean.to_yaml() and PLANTED in cfg.to_yaml()
    assert redacted(TournamentConfig.from_dict(config_dict(tmp_path))) is not None
