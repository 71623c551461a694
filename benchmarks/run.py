"""Run every benchmark and print the figures side by side with the peer tool.

``python -m benchmarks.run [--only data,engine] [--record]`` — ``--record`` also rewrites the
generated section of docs/benchmarks.md (between the ``bench:`` markers) with this run's table,
the machine and the date. Each ``benchmarks/bench_*.py`` module exposes ``run(console) -> list[dict]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import re
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
MODULES = {
    "data": "benchmarks.bench_data",
    "ticks": "benchmarks.bench_ticks",
    "ticksim": "benchmarks.bench_tick_sim",
    "kernel": "benchmarks.bench_engine_kernel",
    "engine": "benchmarks.bench_engine",
    "fused": "benchmarks.bench_fused",
    "tuning": "benchmarks.bench_tuning",
    "ml": "benchmarks.bench_ml",
    "tournament": "benchmarks.bench_tournament",
    "audit": "benchmarks.bench_audit",
    "live": "benchmarks.bench_live",
    "arblive": "benchmarks.bench_arb_live",
}
START, END = "<!-- bench:cpu:start -->", "<!-- bench:cpu:end -->"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-2):
            return f"{v:.3g}"
        return f"{v:,.2f}"
    return str(v)


def to_markdown(rows: list[dict]) -> str:
    """One Markdown table per suite, with that suite's own columns."""
    out: list[str] = []
    suites: list[str] = []
    for r in rows:
        if r.get("suite") not in suites:
            suites.append(r.get("suite"))
    for suite in suites:
        part = [
            {k: v for k, v in r.items() if k != "suite"} for r in rows if r.get("suite") == suite
        ]
        cols: list[str] = []
        for r in part:
            cols += [k for k in r if k not in cols]
        out.append(f"### {suite}\n")
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        for r in part:
            out.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default="", help="comma list of: " + ", ".join(MODULES))
    ap.add_argument("--record", action="store_true", help="update docs/benchmarks.md")
    args = ap.parse_args(argv)
    console = Console()
    wanted = [m for m in (args.only.split(",") if args.only else MODULES) if m]
    rows: list[dict] = []
    for key in wanted:
        try:
            mod = importlib.import_module(MODULES[key])
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("benchmarks."):
                console.print(f"[yellow]skip {key}: {MODULES[key]} not present[/]")
                continue
            raise
        console.rule(f"[bold]{key}")
        for r in mod.run(console):
            rows.append({"suite": key, **r})
    for suite in dict.fromkeys(r["suite"] for r in rows):
        part = [r for r in rows if r["suite"] == suite]
        table = Table(title=f"{suite} — {machine()}")
        cols: list[str] = []
        for r in part:
            cols += [k for k in r if k not in cols and k != "suite"]
        for c in cols:
            table.add_column(c)
        for r in part:
            table.add_row(*(_fmt(r.get(c, "")) for c in cols))
        console.print(table)
    out = ROOT / "bench-output"
    out.mkdir(exist_ok=True)
    prev = out / "results.json"
    if args.only and prev.exists():  # a partial run keeps the other suites' last figures
        old = [r for r in json.loads(prev.read_text()) if r.get("suite") not in wanted]
        rows = old + rows
    (out / "results.json").write_text(json.dumps(rows, indent=2, default=str))
    md = f"Run {dt.date.today().isoformat()} on {machine()} (`make bench`).\n\n" + to_markdown(rows)
    (out / "results.md").write_text(md + "\n")
    if args.record:
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text()
        block = f"{START}\n{md}\n{END}"
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
        tmp = doc.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(doc)
        console.print(f"recorded in {doc.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
