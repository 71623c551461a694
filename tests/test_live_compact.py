"""Compaction of a paper trader's Parquet events: one file per UTC day, exactly once at every
crash point, ``read_events`` unchanged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from quantarena.live.events import EVENT_COLUMNS, compact, read_events

MIN = 60_000_000_000
DAY = 1440 * MIN
T0 = 19_000 * DAY  # 2022-01-08 00:00 UTC


def _write_batches(folder: Path, first_bar: int, n_bars: int, per_batch: int) -> None:
    """Batch files as a trader writes them: hourly bars, an order and a fill per bar, a
    refused message without a bar time now and then; batches straddle UTC midnight."""
    folder.mkdir(parents=True, exist_ok=True)
    for b0 in range(first_bar, first_bar + n_bars, per_batch):
        ev = []
        for bar in range(b0, min(b0 + per_batch, first_bar + n_bars)):
            ts = T0 + bar * 60 * MIN
            ev.append({"kind": "fill", "id": f"a:{bar - 1}:X", "bar": bar, "ts": ts,
                       "symbol": "X", "qty": 0.5 + bar, "price": 100.0 + bar, "fee": 0.01})  # fmt: skip
            ev.append({"kind": "order", "id": f"a:{bar}:X", "bar": bar, "ts": ts,
                       "symbol": "X", "target": 0.1 * (bar % 3)})  # fmt: skip
            if bar % 7 == 0:
                ev.append({"kind": "refused", "id": f"feed entry {bar}-0", "bar": bar,
                           "reason": "duplicate"})  # fmt: skip
        df = pd.DataFrame(ev).reindex(columns=EVENT_COLUMNS)
        df.to_parquet(folder / f"events-{b0:012d}.parquet", index=False)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_compact_merges_batches_into_one_file_per_day(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    _write_batches(folder, 0, 80, 10)  # 80 hourly bars: days 0..3, batches across midnight
    before = read_events(tmp_path, "a")
    assert len(before) == 80 * 2 + len(range(0, 80, 7))
    res = compact(tmp_path, "a")
    # days 0, 1, 2 compacted; day 3 (the newest: a trader may still write it) left alone
    assert res["days"] == 3
    names = _names(folder)
    assert [n for n in names if n.startswith("day-")] == [
        "day-20220108-0001.parquet", "day-20220109-0001.parquet", "day-20220110-0001.parquet"
    ]  # fmt: skip
    # the batch holding bars 70..79 spans days 2 and 3: it stays (its day-3 rows live there)
    assert [n for n in names if n.startswith("events-")] == ["events-000000000070.parquet"]
    pd.testing.assert_frame_equal(read_events(tmp_path, "a"), before)
    day0 = pd.read_parquet(folder / "day-20220108-0001.parquet")
    assert set(day0["bar"]) == set(range(24))  # hours 0..23 of the first day, no more

    # more batches arrive (days 3 and 4), a batch of day 1 is re-written by a restarted
    # trader (same name, same events: already merged, so dropped) and one re-read under a
    # new name (same events: de-duplicated into a second generation of day 1)
    _write_batches(folder, 80, 30, 10)
    _write_batches(folder, 40, 2, 2)
    _write_batches(folder, 41, 1, 1)
    assert len(read_events(tmp_path, "a")) == len(before) + 30 * 2 + 4  # bars 84, 91, 98, 105
    before = read_events(tmp_path, "a")
    compact(tmp_path, "a", include_last_day=True)
    assert _names(folder) == [
        "day-20220108-0001.parquet", "day-20220109-0002.parquet", "day-20220110-0001.parquet",
        "day-20220111-0001.parquet", "day-20220112-0001.parquet",
    ]  # fmt: skip
    pd.testing.assert_frame_equal(read_events(tmp_path, "a"), before)
    assert compact(tmp_path, "a", include_last_day=True)["days"] == 0  # nothing left to do


class _Crash(Exception):
    pass


@pytest.mark.parametrize("stage", ["written", "renamed", "deleted"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_crash_at_any_point_leaves_every_event_readable_once(
    tmp_path: Path, stage: str, k: int
) -> None:
    folder = tmp_path / "a"
    _write_batches(folder, 0, 80, 10)
    before = read_events(tmp_path, "a")
    calls = []

    def hook(s: str, path: Path) -> None:
        if s == stage:
            calls.append(path)
            if len(calls) == k:
                raise _Crash(f"{s} {path.name}")

    with pytest.raises(_Crash):
        compact(tmp_path, "a", include_last_day=True, hook=hook)
    pd.testing.assert_frame_equal(read_events(tmp_path, "a"), before)
    # no row is read twice: without the (kind, id) safety net the count is the same
    from quantarena.live.events import _state

    rows, _ = _state(folder)
    assert sum(len(df) for df in rows.values()) == len(before)
    # a temp file left by the crash is never read; the next compaction finishes the job
    compact(tmp_path, "a", include_last_day=True)
    assert _names(folder) == [f"day-202201{d:02d}-0001.parquet" for d in (8, 9, 10, 11)]
    pd.testing.assert_frame_equal(read_events(tmp_path, "a"), before)


def test_bad_agent_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no events of agent 'nobody'"):
        compact(tmp_path, "nobody")


def test_cli_compacts_every_agent(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from quantarena.cli.live import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    for a in ("a", "b"):
        _write_batches(tmp_path / a, 0, 50, 10)
    before = {a: read_events(tmp_path, a) for a in ("a", "b")}
    res = CliRunner().invoke(app, ["live", "compact", "--out", str(tmp_path), "--all-days"])
    assert res.exit_code == 0, res.output
    assert "a: 5 files merged into 3 day files, 5 removed" in res.output
    for a in ("a", "b"):
        assert all(n.startswith("day-") for n in _names(tmp_path / a))
        pd.testing.assert_frame_equal(read_events(tmp_path, a), before[a])
    res = CliRunner().invoke(app, ["live", "compact", "--out", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no agent folders there" in res.output


# ------------------------------------------------------------------ traders compact themselves


def test_traders_compact_finished_days_as_they_go(tmp_path: Path, sample_dir: Path) -> None:
    """A long replay (9 weeks of hourly bars) through a trader that compacts: it ends with day
    files and only the last day's batch files, and reads back exactly the events of a trader
    that never compacted — also when it is killed in the middle of a compaction."""
    redis = pytest.importorskip("redis")
    from quantarena.engine.api import load_bars_any
    from quantarena.live.feed import replay
    from quantarena.live.redis_io import LiveKeys
    from quantarena.live.redis_trader import RedisTrader
    from quantarena.live.service import AgentSpec, make_trader

    r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        r.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    bars = load_bars_any(sample_dir / "Coinbase_BTCUSD_1h.csv", None, "2018-01-01", "2018-03-05",
                         None)  # fmt: skip
    spec = AgentSpec("mr", "mean_reversion", {"window": 24})
    lim = {"max_drawdown": None, "daily_loss": None, "max_orders": None}

    def trader(prefix: str, out: Path, comp: bool) -> RedisTrader:
        tr = make_trader(spec, bars.symbols, bars.interval_ns, lim)
        return RedisTrader(r, tr, "f", out, keys=LiveKeys(prefix), batch=7, compact=comp)

    prefixes = ("qa-compact-self-a", "qa-compact-self-b")
    for p in prefixes:
        for k in r.scan_iter(match=p + ":*"):
            r.delete(k)
        replay(r, LiveKeys(p).feed("f"), bars)
    try:
        plain = trader(prefixes[0], tmp_path / "plain", False)
        plain.run(idle_stop_s=0.3)
        # killed in the middle of its 20th compaction: after a day file was renamed into
        # place, before its sources were deleted
        seen = {"n": 0}

        def crash(stage: str, path: Path) -> None:
            if stage == "renamed":
                seen["n"] += 1
                if seen["n"] == 20:
                    raise RuntimeError("killed mid-compaction")

        t1 = trader(prefixes[1], tmp_path / "self", True)
        t1.compact_hook = crash
        with pytest.raises(RuntimeError, match="killed mid-compaction"):
            t1.run(idle_stop_s=0.3)
        t2 = trader(prefixes[1], tmp_path / "self", True)  # restarted: resumes, compacts on
        t2.run(idle_stop_s=0.3)
        assert t2.trader.exchange.n_bars == plain.trader.exchange.n_bars == bars.n_bars
        assert t2.trader.exchange.equity == plain.trader.exchange.equity
    finally:
        for p in prefixes:
            for k in r.scan_iter(match=p + ":*"):
                r.delete(k)
    folder = tmp_path / "self" / "mr"
    last = int(bars.ts[-1]) // DAY
    stamp = pd.Timestamp(last * DAY, tz="UTC").strftime("%Y%m%d")
    names = _names(folder)
    days = [n for n in names if n.startswith("day-")]
    batches = [n for n in names if n.startswith("events-")]
    assert not [n for n in names if n.endswith(".tmp")]
    # a day file per finished day with events, none of the last (running) day
    plain_ev = read_events(tmp_path / "plain", "mr")
    ev_days = sorted({int(t) // DAY for t in plain_ev["ts"].dropna()})
    assert sorted(n[4:12] for n in days) == sorted(
        {pd.Timestamp(d * DAY, tz="UTC").strftime("%Y%m%d") for d in ev_days if d < last}
    )
    # only batch files holding the last day's events are left
    assert 0 < len(batches) < len(list((tmp_path / "plain" / "mr").glob("events-*")))
    for n in batches:
        assert (pd.read_parquet(folder / n)["ts"].dropna() // DAY == last).any(), n
    assert stamp not in "".join(days)
    got = read_events(tmp_path / "self", "mr")
    assert len(got) > 100
    pd.testing.assert_frame_equal(got, plain_ev)
