"""The paths a new user walks: every one ends in a result or in one line saying what to do.

Help pages, storage errors, the tune table and JSON, shared studies on the real Redis at
127.0.0.1:6379 under a custom key prefix, flag names in errors, audit cut counts, library
noise, the first-run compile status and the shared number formatter.
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
import warnings
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from quantarena.cli import app
from quantarena.cli.help import EXAMPLES

runner = CliRunner()
ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
REDIS_URL = "redis://127.0.0.1:6379/0"


def _is_group(cmd: object) -> bool:
    return bool(getattr(cmd, "commands", None))


def _commands(cmd: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    if _is_group(cmd):
        for name, sub in cmd.commands.items():  # type: ignore[attr-defined]
            out += _commands(sub, (*path, name))
    return out


def _tune_args(csv: Path, *extra: str) -> list[str]:
    return [
        "tune",
        "--file",
        str(csv),
        "--end",
        "2022-01-07",
        "--backend",
        "cpu",
        "--param",
        "fast=5:30",
        "--param",
        "slow=40:120",
        *extra,
    ]


# ------------------------------------------------------------------ help


def test_every_help_page_has_an_example_and_no_type_placeholders():
    root = typer.main.get_command(app)
    paths = _commands(root)
    leaves = [p for p in paths if p and not _is_group(_lookup(root, p))]
    assert {" ".join(p) for p in leaves} >= {"backtest", "tune", "audit", "submit"}
    for path in paths:
        res = runner.invoke(app, [*path, "--help"], env=ENV)
        assert res.exit_code == 0, (path, res.output)
        text = res.output
        assert "<bool>" not in text, (path, text)
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert not re.search(r"\{\w+\}", usage), usage  # arguments read CONFIG, not {config}
        assert "(see --help)" not in text
        if path in leaves:
            assert "Example:" in text, path
            example = EXAMPLES[" ".join(path)]
            assert example.startswith(f"quantarena {' '.join(path)} "), example
            assert " ".join(example.split()[:3]) in " ".join(text.split())


def _lookup(root: object, path: tuple[str, ...]) -> object:
    cmd = root
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    return cmd


def test_help_shows_flags_as_flags_and_lists_the_agents():
    res = runner.invoke(app, ["tune", "--help"], env=ENV)
    line = next(x for x in res.output.splitlines() if "--json" in x)
    assert "<" not in line  # a flag takes no value
    text = " ".join(res.output.split())
    for name in ("momentum", "mean_reversion", "breakout", "vol_target", "buy_hold"):
        assert name in text
    usage = runner.invoke(app, ["tournament", "run", "--help"], env=ENV).output
    assert "tournament run [OPTIONS] CONFIG" in usage
    top = runner.invoke(app, ["--help"], env=ENV).output
    assert "--verbose" in top and "Run a tournament config as a job on a Ray cluster" in top


# ------------------------------------------------------------------ errors name the flag


def test_cost_errors_name_the_cli_flag(btc_1m_csv):
    res = runner.invoke(
        app, ["backtest", "--file", str(btc_1m_csv), "--fee-bps", "-1", "--param", "fast=5"]
    )
    assert res.exit_code == 2
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1 and "--fee-bps" in msg and "Fees.taker_bps" not in msg
    res = runner.invoke(app, [*_tune_args(btc_1m_csv, "--slippage-bps", "-2")])
    assert res.exit_code == 2 and "--slippage-bps" in res.stderr
    assert "Slippage.bps" not in res.stderr


def test_cli_message_rewrites_fields_only_where_they_are_named():
    from quantarena.cli.errors import cli_message

    assert cli_message("BTC has bars at several intervals (1m, 5m): pass interval=") == (
        "BTC has bars at several intervals (1m, 5m): pass --interval"
    )
    assert cli_message("max_position must be a positive fraction, got -1.0").startswith(
        "--max-position must"
    )
    assert cli_message("the leverage is fine") == "the leverage is fine"


def test_unknown_backend_is_one_line(btc_1m_csv):
    res = runner.invoke(
        app,
        ["backtest", "--file", str(btc_1m_csv), "--backend", "tpu", "--param", "fast=5"],
    )
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.strip().startswith("error: --backend: unknown backend 'tpu'")


def test_audit_reports_as_many_cuts_as_asked(btc_1m_csv):
    from quantarena.strategies.audit import default_cuts

    for n in (1, 2, 3, 4, 6, 9):
        cuts = default_cuts(45_000, n, seed=5)
        assert len(cuts) == n and len(set(cuts)) == n and all(0 < c < 44_999 for c in cuts)
    res = runner.invoke(
        app,
        [
            "audit",
            "--file",
            str(btc_1m_csv),
            "--agent",
            "momentum",
            "--param",
            "fast=5,10",
            "--param",
            "slow=50",
            "--end",
            "2022-01-04",
            "--cuts",
            "3",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)[0]["cuts"]) == 3
    res = runner.invoke(app, ["audit", "--file", str(btc_1m_csv), "--cuts", "0"])
    assert res.exit_code == 2 and "--cuts must be at least 1" in res.stderr


# ------------------------------------------------------------------ storage


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis://127.0.0.1:1/0", "Redis at redis://127.0.0.1:1/0 is not answering"),
        ("foo://bar", "storage scheme 'foo' is unknown"),
    ],
)
def test_storage_errors_are_one_line_naming_the_option(btc_1m_csv, url, words):
    res = runner.invoke(app, _tune_args(btc_1m_csv, "--storage", url, "--study", "s"))
    assert res.exit_code == 2
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert msg.startswith("error: --storage: ") and words in msg
    assert "Traceback" not in res.output


def test_bad_redis_prefix_is_one_line_naming_the_option(btc_1m_csv):
    args = _tune_args(btc_1m_csv, "--storage", REDIS_URL, "--study", "s", "--redis-prefix", "a b")
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert res.stderr.strip().startswith("error: --redis-prefix: Redis key prefix 'a b'")


def test_redis_keys_live_under_one_prefix():
    from quantarena.redis_keys import DEFAULT_PREFIX, normalize_prefix, redis_key
    from quantarena.training.storage import optuna_journal_prefix

    assert DEFAULT_PREFIX == "quantarena:"
    assert redis_key("optuna", "log", "0") == "quantarena:optuna:log:0"
    assert redis_key("a", prefix="team1") == "team1:a" == redis_key("a", prefix="team1:")
    assert optuna_journal_prefix() == "quantarena:optuna"
    for bad in ("", ":", "a b", "x*"):
        with pytest.raises(ValueError, match="Redis key prefix"):
            normalize_prefix(bad)


def _redis_or_skip():
    redis = pytest.importorskip("redis")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
    except Exception as exc:
        pytest.skip(f"Redis is not answering at {REDIS_URL} ({type(exc).__name__})")
    return client


def test_shared_study_on_redis_under_a_custom_prefix(btc_1m_csv, monkeypatch):
    client = _redis_or_skip()
    prefix = f"qa-firsthour-{uuid.uuid4().hex[:10]}:"
    study = "shared"
    monkeypatch.setenv("QUANTARENA_REDIS_PREFIX", prefix)
    try:
        args = _tune_args(
            btc_1m_csv, "--storage", REDIS_URL, "--study", study, "--trials", "16", "--batch", "8"
        )
        first = runner.invoke(app, [*args, "--seed", "1", "--json"], env=ENV)
        assert first.exit_code == 0, first.output
        second = runner.invoke(app, [*args, "--seed", "2", "--top", "3"], env=ENV)
        assert second.exit_code == 0, second.output
        keys = {k.decode() for k in client.scan_iter(match=f"{prefix}*")}
        assert keys and all(k.startswith(f"{prefix}optuna:") for k in keys)
        assert f"{prefix}optuna:log_number" in keys
        # the table ranks this worker's trials, the best line the whole study: both say so
        text = " ".join(second.stdout.split())
        assert "top 3 of this worker's 16 trials (32 in the study)" in text
        assert f"best of the whole study {study} (32 trials, every worker):" in text
        doc = json.loads(first.stdout)
        assert doc["shared"] is True and doc["study_trials"] == 16
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    assert not list(client.scan_iter(match=f"{prefix}*"))


# ------------------------------------------------------------------ tune --json


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """a dominates b for (maximise sharpe, minimise max_drawdown)."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def test_tune_json_has_the_top_trials_and_the_pareto_front(btc_1m_csv):
    args = _tune_args(
        btc_1m_csv,
        "--trials",
        "48",
        "--batch",
        "16",
        "--sampler",
        "nsga2",
        "--objective",
        "sharpe,max_drawdown",
        "--top",
        "1000",
        "--json",
    )
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    top = doc["top"]
    assert [t["rank"] for t in top] == list(range(1, len(top) + 1))
    assert len(top) == len({tuple(sorted(t["params"].items())) for t in top})
    points = {(t["metrics"]["sharpe"], t["metrics"]["max_drawdown"]) for t in top}
    # the front, by brute force over every replayed trial: the points nobody dominates
    expected = {p for p in points if not any(_dominates(q, p) for q in points)}
    front = doc["pareto_front"]
    got = {(f["values"]["sharpe"], f["values"]["max_drawdown"]) for f in front}
    assert got == expected and front
    # the top list is ordered by sharpe first (the first objective)
    sharpes = [t["metrics"]["sharpe"] for t in top]
    assert sharpes == sorted(sharpes, reverse=True)

    single = runner.invoke(
        app, _tune_args(btc_1m_csv, "--trials", "16", "--batch", "16", "--top", "3", "--json")
    )
    d1 = json.loads(single.stdout)
    assert d1["pareto_front"] is None and len(d1["top"]) == 3
    assert d1["top"][0]["params"] == d1["best_params"]
    assert d1["top"][0]["metrics"]["sharpe"] == pytest.approx(d1["best_value"], rel=1e-12)


# ------------------------------------------------------------------ noise and status


def test_quiet_hides_library_noise_that_verbose_shows(monkeypatch):
    import optuna
    from optuna.storages.journal import JournalRedisBackend

    from quantarena.cli.quiet import quiet_library_noise

    for var in ("MLFLOW_LOGGING_LEVEL", "PYTHONWARNINGS", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
        monkeypatch.delenv(var, raising=False)
    from quantarena.cli.quiet import _LOGGERS

    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    before = {name: logging.getLogger(name).level for name in _LOGGERS}

    def warn_experimental() -> list[warnings.WarningMessage]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            yield_filters()
            # constructing it warns (experimental) and connects to nothing
            JournalRedisBackend("redis://127.0.0.1:1/0", prefix="unused")
        return [w for w in seen if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]

    state = {"quiet": False}

    def yield_filters() -> None:
        if state["quiet"]:
            quiet_library_noise()

    assert warn_experimental()  # the noise is real
    state["quiet"] = True
    try:
        assert not warn_experimental()
        assert auth.level == logging.ERROR
        import os

        assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"
        assert "The given NumPy array is not writable" in os.environ["PYTHONWARNINGS"]
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def test_verbose_leaves_library_noise_on(monkeypatch):
    import quantarena.cli.quiet as quiet

    calls: list[int] = []
    monkeypatch.setattr(quiet, "quiet_library_noise", lambda: calls.append(1))
    assert runner.invoke(app, ["data", "info", "--help"]).exit_code == 0
    assert calls == [1]
    assert runner.invoke(app, ["--verbose", "data", "info", "--help"]).exit_code == 0
    assert calls == [1]


def test_kernels_cold_reads_the_numba_cache(tmp_path, monkeypatch):
    from quantarena.cli.quiet import compiling_status, kernels_cold

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert kernels_cold()  # an empty cache folder: the first run compiles
    buf = io.StringIO()
    from rich.console import Console

    with compiling_status(console=Console(file=buf, force_terminal=True, width=80)):
        pass
    assert "compiling kernels (first run only" in buf.getvalue()
    sub = tmp_path / "somewhere"
    sub.mkdir()
    (sub / "kernels_cpu._fill-137.py311.nbi").write_bytes(b"x")
    assert kernels_cold()  # the strategies' kernels are still missing
    (sub / "kernels.sma_stack-103.py311.nbi").write_bytes(b"x")
    assert not kernels_cold()
    buf = io.StringIO()
    with compiling_status(console=Console(file=buf, force_terminal=True, width=80)):
        pass
    assert buf.getvalue() == ""


# ------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        (0.0086, "pct", "0.86%"),
        (-0.1033, "pct", "-10.33%"),
        (2.014, "ratio", "2.01"),
        (1.299e-13, "prob", "<0.001"),
        (0.1667, "prob", "0.167"),
        (77.0, "int", "77"),
        (4.149e-09, "num", "<0.0001"),
        (0.0001234, "num", "0.0001234"),
        (123456.7, "num", "123,457"),
        (float("nan"), "pct", ""),
        (None, "ratio", ""),
        ("history, paper", "num", "history, paper"),
        (False, "num", "no"),
    ],
)
def test_numbers_read_without_exponents(value, kind, text):
    from quantarena.numfmt import fmt

    assert fmt(value, kind) == text
    assert "e-" not in fmt(value, kind)


# ------------------------------------------------------------------ plots


def _tick_boxes_overlap(fig) -> bool:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in fig.axes:
        boxes = [
            t.get_window_extent(renderer)
            for t in ax.get_xticklabels()
            if t.get_visible() and t.get_text()
        ]
        boxes.sort(key=lambda b: b.x0)
        if any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:], strict=False)):
            return True
    return False


@pytest.mark.parametrize(("n", "step_s"), [(200, 60), (45_000, 60), (1_000, 86_400)])
def test_date_labels_never_overlap(n, step_s):
    import numpy as np

    from quantarena.tracking.artifacts import plot_drawdowns, plot_equity

    ts = np.arange(n, dtype=np.int64) * step_s * 10**9 + 1_640_995_200 * 10**9
    curves = {"a": np.linspace(1.0, 2.0, n), "b": np.linspace(1.0, 0.5, n)}
    assert not _tick_boxes_overlap(plot_equity(curves, index=ts))
    assert not _tick_boxes_overlap(plot_drawdowns(curves, index=ts))


def test_backtest_plot_names_sets_as_the_table_does(btc_1m_csv, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    saved: list[Figure] = []
    real = Figure.savefig

    def keep(self, *args, **kwargs):
        saved.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    res = runner.invoke(
        app,
        [
            "backtest",
            "--file",
            str(btc_1m_csv),
            "--param",
            "fast=5:20:5",
            "--param",
            "slow=50,100",
            "--top",
            "3",
            "--plot",
            str(tmp_path / "best.png"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    table = [
        f"{row['rank']}. " + " ".join(f"{k}={v}" for k, v in row["params"].items())
        for row in doc["top"]
    ]
    legend = [t.get_text() for t in saved[-1].axes[0].get_legend().get_texts()]
    assert legend == table
    assert not _tick_boxes_overlap(saved[-1])


def test_study_history_names_its_objective():
    import numpy as np
    import optuna

    from quantarena.tracking.study import plot_history

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    values = [0.5, -1.0, 2.0, 1.5]
    for v in values:
        study.add_trial(optuna.trial.create_trial(value=v, params={}, distributions={}))
    ax = plot_history(study, title="momentum: sharpe by trial", ylabel="sharpe").axes[0]
    assert ax.get_ylabel() == "sharpe" and ax.get_title() == "momentum: sharpe by trial"
    best = next(ln for ln in ax.get_lines() if ln.get_label() == "best so far")
    np.testing.assert_array_equal(best.get_ydata(), np.maximum.accumulate(values))
