"""What ``--help`` shows: one example per command, flags without a type, arguments in CAPS.

* :data:`EXAMPLES` holds one runnable example per command (``"tune"``, ``"data ingest"``,
  ...); :func:`add_examples` puts each into its command's ``--help`` epilog.
* :func:`tidy_typer_help` makes typer's help read like a man page: an on/off flag
  (``--json``, ``--ray/--no-ray``) takes no value, so no ``<bool>`` type is shown next to it,
  and a required argument reads ``CONFIG`` in the usage line, not ``{config}``.

Only typer is imported here.
"""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["EXAMPLES", "add_examples", "agents_help", "tidy_typer_help"]

#: one example per command path; the first word after ``quantarena`` is the command
EXAMPLES: dict[str, str] = {
    "backtest": "quantarena backtest --store store --symbol BTCPERP --agent momentum "
    "--param fast=5:50:5 --param slow=50:200:10 --fee-bps 5 --top 10 --plot best.png",
    "audit": "quantarena audit --agent momentum --cuts 6",
    "tune": "quantarena tune --store store --symbol BTCPERP --agent momentum "
    "--trials 512 --batch 128 --sampler tpe --mlflow-uri sqlite:///runs/tuning.db",
    "submit": "quantarena submit configs/demo.yaml --address http://127.0.0.1:8265 --wait",
    "tournament run": "quantarena tournament run configs/demo.yaml --no-ray",
    "tournament report": "quantarena tournament report runs/demo --out report/",
    "data ingest": "quantarena data ingest data/sample/btc-perp-20211231-20220201_1m.csv "
    "--store store --symbol BTCPERP",
    "data info": "quantarena data info --store store",
    "feed replay": "quantarena feed replay --store store --symbols BTCPERP --speed 600x",
    "feed exchange": "quantarena feed exchange --exchange binance --symbols BTC/USDT --timeframe 1m",
    "live trade": "quantarena live trade --agent momentum --param fast=10 --param slow=50",
    "live status": "quantarena live status --watch",
    "live run": "quantarena live run configs/live.yaml",
    "live promote": "quantarena live promote --from runs/demo --top 5",
    "live compact": "quantarena live compact --out runs/live",
    "kill": "quantarena kill --agent momentum --reason drill",
    "resume": "quantarena resume --agent momentum",
    "data synth": "quantarena data synth --store store --symbols 4 --bars 10000 --interval 1m",
}


def agents_help(lead: str = "Agent") -> str:
    """Help text of an ``--agent`` option naming the registered agents."""
    from quantarena.strategies.registry import list_agents

    return f"{lead}: {', '.join(list_agents())}, or module:Class / path/to/file.py:Class."


def _command_name(info: Any) -> str:
    if info.name:
        return str(info.name)
    return info.callback.__name__.replace("_", "-")


def add_examples(app: typer.Typer, prefix: str = "") -> None:
    """Set the ``--help`` epilog of every command of ``app`` (and its sub-apps) from
    :data:`EXAMPLES`; ``prefix`` is the path of ``app`` (``"data"``)."""
    for info in app.registered_commands:
        path = f"{prefix} {_command_name(info)}".strip()
        if path in EXAMPLES and not info.epilog:
            info.epilog = f"Example:\n\n  {EXAMPLES[path]}"
    for group in app.registered_groups:
        name = group.name or group.typer_instance.info.name
        add_examples(group.typer_instance, f"{prefix} {name}".strip())


def tidy_typer_help() -> None:
    """Patch typer's help rendering once: no type shown next to flags, required arguments
    in capitals in the usage line. A no-op on typer versions without these hooks."""
    from typer import core

    opt_cls = getattr(core, "TyperOption", None)
    if opt_cls is not None and not getattr(opt_cls, "_quantarena_tidy", False):
        show_type = opt_cls.display_type_rich

        def display_type_rich(self: Any, ctx: Any) -> str | None:
            if getattr(self, "is_flag", False) and self.metavar is None:
                return None
            return show_type(self, ctx)

        opt_cls.display_type_rich = display_type_rich
        opt_cls._quantarena_tidy = True
    arg_cls = getattr(core, "TyperArgument", None)
    if (
        arg_cls is not None
        and hasattr(arg_cls, "_usage_display_name")
        and not getattr(arg_cls, "_quantarena_tidy", False)
    ):

        def _usage_display_name(self: Any) -> str:
            name = str(self.display_name_raw).upper()
            if not self.required:
                name = f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

        arg_cls._usage_display_name = _usage_display_name
        arg_cls._quantarena_tidy = True
