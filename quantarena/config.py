"""The tournament configuration: one validated object built from YAML.

:class:`TournamentConfig` is the only way settings reach a tournament: the CLI and the
director build it once (``TournamentConfig.from_yaml(path)`` or ``.model_validate(dict)``)
and pass it down; nothing deep in the core reads files or the environment.

Every section rejects unknown keys, and any bad key or value raises :class:`ConfigError`
with ONE line naming the file and the key path, e.g.::

    configs/x.yaml: agents.0.gpu_fraction: must be in (0, 1], got 2

The sections for core settings — ``costs``, ``allocation``, ``agents[].tuning``,
``agents[].stops`` — are generated from the core's own dataclasses
(:mod:`quantarena.config_sections`): types, defaults and ranges are declared once, in the core
(``costs`` defaults are ``quantarena.engine.costs.DEFAULT_COSTS``, as for ``qa.backtest`` and
the CLI); ``gates`` is the core's :class:`~quantarena.tournaments.gates.GateConfig`. Agent
kinds, parameter names and parameter values are checked against the agent registry when the
config is loaded, so ``tournament run``, ``submit`` and the Python API refuse a bad agent
before Ray starts.

Conventions:

* Durations (``schedule.round``, ``lookback``, ``warmup``) are written ``"7d"``, ``"3w"``,
  ``"4h"``, ``"90m"`` (``"0d"`` where zero is allowed) and held as int nanoseconds; they dump
  back to the shortest exact text (``"21d"`` dumps as ``"3w"``).
* ``data.start`` / ``data.end`` are ISO dates or times (UTC unless an offset is given), held
  as int64 ns since the epoch; ``end`` is exclusive.
* Costs are in basis points (1 bp = 0.01 %) of traded notional.
* Relative paths (``data.store``, ``data.files``, ``tracking.output_dir``) are relative to
  the current directory — the repository root for ``quantarena`` commands and Ray jobs.
* Parameter grids (``agents[].params``): a list of values, a ``"start:stop:step"`` string
  (stop INCLUDED when on the step; integers stay integers), a comma list ``"5,10,20"`` or a
  scalar — the same text the ``backtest --param`` option takes
  (:func:`quantarena.strategies.params.parse_param`).
"""

from __future__ import annotations

import datetime as _dt
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from quantarena.config_sections import (
    Section,
    composite_section,
    range_check,
    reject_bool,
    section,
)
from quantarena.data.intervals import interval_ns, interval_str
from quantarena.engine.costs import DEFAULT_COSTS, Costs
from quantarena.engine.filters import ExchangeFilters, SymbolFilters
from quantarena.engine.stops import Stops
from quantarena.strategies.params import as_values
from quantarena.tournaments import director as _director
from quantarena.tournaments.carried import DEFAULT_IN_SAMPLE
from quantarena.tournaments.gates import GateConfig
from quantarena.tournaments.schedule import duration_ns
from quantarena.training.spec import TuningSpec

__all__ = [
    "OBJECTIVES",
    "AgentConfig",
    "AllocationConfig",
    "ConfigError",
    "CostsConfig",
    "DataConfig",
    "FileSpec",
    "FundingConfig",
    "GateConfig",
    "RayConfig",
    "ScheduleConfig",
    "StopsConfig",
    "TournamentConfig",
    "TrackingConfig",
    "TuningConfig",
    "format_validation_error",
]

#: Objectives an agent may be tuned and ranked on (in-sample, per round).
OBJECTIVES = ("sharpe", "sortino", "calmar", "total_return", "deflated_sharpe")

#: Largest full grid accepted without ``population`` (parameter sets per agent).
MAX_GRID = 10_000_000

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class ConfigError(ValueError):
    """A bad configuration: ``str(err)`` is one line naming the file and key path."""


# --------------------------------------------------------------------------- field types


_range_check = range_check
_no_bool = reject_bool


Fraction = Annotated[float, BeforeValidator(_no_bool), _range_check(0, 1, True, False)]
"""A float in (0, 1]."""
PositiveFloat = Annotated[float, BeforeValidator(_no_bool), _range_check(0, None, True, True)]
NonNegFloat = Annotated[float, BeforeValidator(_no_bool), _range_check(0, None, False, True)]
PositiveInt = Annotated[int, BeforeValidator(_no_bool), _range_check(1, None, False, True)]
NonNegInt = Annotated[int, BeforeValidator(_no_bool), _range_check(0, None, False, True)]


def _check_name(v: str) -> str:
    if not _NAME_RE.match(v):
        raise ValueError(
            "must start with a letter or digit and hold only letters, digits, '_', '-', '.'"
        )
    return v


Name = Annotated[str, AfterValidator(_check_name)]


def _parse_duration(allow_zero: bool):
    def parse(v: Any) -> int:
        if isinstance(v, bool) or isinstance(v, int | float):
            raise ValueError("must be a duration with a unit, like 7d, 3w, 4h or 90m")
        if isinstance(v, _dt.timedelta):
            return duration_ns(v, allow_zero=allow_zero)
        if not isinstance(v, str):
            raise ValueError("must be a duration like 7d, 3w, 4h or 90m")
        text = v.strip()
        if re.fullmatch(r"0+\s*[a-zA-Z]*", text):
            if allow_zero:
                return 0
            raise ValueError("must be positive, like 7d, 3w, 4h or 90m")
        try:
            return duration_ns(text, allow_zero=allow_zero)
        except ValueError:
            raise ValueError("must be a duration like 7d, 3w, 4h or 90m") from None

    return BeforeValidator(parse)


def _dump_duration(ns: int) -> str:
    ns = int(ns)
    if ns == 0:
        return "0d"
    for unit, size in (("d", 86_400 * 10**9), ("h", 3_600 * 10**9), ("m", 60 * 10**9)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return interval_str(ns)


Duration = Annotated[int, _parse_duration(False), PlainSerializer(_dump_duration, return_type=str)]
"""A positive duration in ns, written "7d" / "3w" / "4h" / "90m" in YAML."""
DurationOrZero = Annotated[
    int, _parse_duration(True), PlainSerializer(_dump_duration, return_type=str)
]


def _parse_time(v: Any) -> int | None:
    if v is None:
        return None
    import pandas as pd

    if isinstance(v, bool) or isinstance(v, int | float):
        raise ValueError("must be an ISO date or time such as 2022-01-01 or 2022-01-01T12:00")
    try:
        ts = pd.Timestamp(v)
    except (ValueError, TypeError):
        raise ValueError(
            "must be an ISO date or time such as 2022-01-01 or 2022-01-01T12:00"
        ) from None
    if ts is pd.NaT:
        raise ValueError("must be an ISO date or time, not empty")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)


def _dump_time(ns: int | None) -> str | None:
    if ns is None:
        return None
    import pandas as pd

    return pd.Timestamp(int(ns), tz="UTC").isoformat()


Timestamp = Annotated[
    int | None, BeforeValidator(_parse_time), PlainSerializer(_dump_time, return_type=str | None)
]
"""An instant as int64 ns since the epoch (UTC), written as ISO text in YAML."""


def _check_interval(v: str) -> str:
    interval_ns(v)  # raises ValueError with a hint
    return v


def _check_calendar(v: str | None) -> str | None:
    from quantarena.data.calendars import check_calendar

    return None if v is None else check_calendar(v)  # raises ValueError with a hint


def _check_grid_spec(v: Any) -> Any:
    """Validate one parameter's grid spec and return it unchanged (it is expanded later)."""
    if v is None or isinstance(v, Mapping):
        raise ValueError('must be a list, a "start:stop:step" range or a single value')
    if isinstance(v, list):
        if not v:
            raise ValueError("the list of values is empty")
        for item in v:
            if item is None or isinstance(item, Mapping | list):
                raise ValueError(f"list item {item!r} must be a number, a string or true/false")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("must be a finite number")
    values = as_values(v)  # raises ValueError on a malformed range
    if not values:
        raise ValueError("gives no values")
    return v


ParamSpec = Annotated[Any, AfterValidator(_check_grid_spec)]


_Section = Section


# --------------------------------------------------------------------------- sections


class FileSpec(_Section):
    """One exchange file to ingest: ``path`` and, for files that do not name their market
    (e.g. a plain OHLCV CSV), the ``symbol`` to store it under. In YAML a bare path is
    accepted for ``{path: ...}``."""

    path: Path
    symbol: str | None = None


def _file_entry(v: Any) -> Any:
    return {"path": v} if isinstance(v, str | Path) else v


class DataConfig(_Section):
    """Which market data the tournament replays.

    Give either ``store`` (an existing Parquet store) or ``files`` (exchange files ingested on
    the fly into a temporary store; each a path or ``{path, symbol}``). ``symbols`` None means
    every symbol found. ``start`` /
    ``end`` bound the bars by open time (``end`` exclusive); None = all. ``interval`` is the
    bar size the agents see ("1m", "5m", "1h", ...; finer data is resampled). ``calendar`` is
    the market's trading calendar, which sets the year of every annualised figure: ``"24/7"``
    (crypto) or an exchange code such as ``"XNYS"`` (see :mod:`quantarena.data.calendars`);
    None guesses from the bars (24/7 unless a week or more of them has no weekend bar).
    """

    store: Path | None = None
    files: list[Annotated[FileSpec, BeforeValidator(_file_entry)]] | None = None
    symbols: list[str] | None = None
    start: Timestamp = None
    end: Timestamp = None
    interval: Annotated[str, AfterValidator(_check_interval)] = "1m"
    calendar: Annotated[str | None, AfterValidator(_check_calendar)] = None

    @field_validator("files")
    @classmethod
    def _files_not_empty(cls, v: list[FileSpec] | None) -> list[FileSpec] | None:
        if v is not None and not v:
            raise ValueError("the list of files is empty")
        return v

    @field_validator("symbols")
    @classmethod
    def _symbols_ok(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("the list of symbols is empty: leave it out to use every symbol")
        dup = sorted({s for s in v if v.count(s) > 1})
        if dup:
            raise ValueError(f"symbol {dup[0]!r} is listed twice")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.store is None) == (self.files is None):
            raise ValueError("give exactly one of 'store' (a Parquet store) or 'files'")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError(
                f"start {_dump_time(self.start)} must be before end {_dump_time(self.end)}"
            )
        return self

    @property
    def interval_ns(self) -> int:
        """The bar interval in ns."""
        return interval_ns(self.interval)


class ScheduleConfig(_Section):
    """The walk-forward schedule (see :mod:`quantarena.tournaments.schedule`).

    ``round``: the out-of-sample window each round trades (7 days); ``lookback``: the
    in-sample window before it that agents tune on (21 days); ``warmup``: indicator history
    before the in-sample window, never scored; ``max_rounds``: stop after this many rounds
    (None: as many full rounds as the data holds); ``align``: ``"data"`` (first round right
    after the first full warm-up + lookback) or ``"week"`` (rounds run Monday to Monday UTC);
    ``in_sample``: how a scanned population is scored in sample — ``"carried"`` (each set's
    own continuous account; every bar replayed once per set) or ``"fresh"`` (each set
    replayed from flat over the lookback every round); see
    :mod:`quantarena.tournaments.carried`.
    """

    round: Duration = Field(default=7 * 86_400 * 10**9, validate_default=False)
    lookback: Duration = Field(default=21 * 86_400 * 10**9, validate_default=False)
    warmup: DurationOrZero = Field(default=0, validate_default=False)
    max_rounds: PositiveInt | None = None
    align: Literal["data", "week"] = "data"
    in_sample: Literal["carried", "fresh"] = DEFAULT_IN_SAMPLE  # type: ignore[assignment]


_TuningFields = section(TuningSpec, name="_TuningFields", exclude=("seed",))


class TuningConfig(_TuningFields):  # type: ignore[misc, valid-type]
    """Optuna tuning inside each in-sample window (instead of scanning a fixed population).

    The fields, defaults and ranges are those of the core's
    :class:`~quantarena.training.tuning.TuningSpec` (its ``seed`` is the tournament's):
    ``sampler``: tpe | cmaes | random | nsga2; ``trials``: trials per round; ``batch``: trials
    per engine call; ``oos_top``: best IS sets replayed out of sample (the PBO matrix width);
    ``warm_start``: the previous round's best sets asked first. The search box is spanned by
    the agent's ``params`` (min..max of each list, see
    :func:`quantarena.training.tuning.space_from_values`).
    """

    def spec(self, seed: int = 0) -> TuningSpec:
        """The core's :class:`~quantarena.training.tuning.TuningSpec` for this section."""
        return TuningSpec(**self.model_dump(), seed=int(seed))


_StopsFields = section(Stops, name="_StopsFields")


class StopsConfig(_StopsFields):  # type: ignore[misc, valid-type]
    """Protective exits of every parameter set of an agent, as fractions of price (0.02 =
    2 %), generated from the engine's :class:`~quantarena.engine.stops.Stops`:
    ``stop_loss``, ``take_profit``, ``trailing``; null (default) or 0 = off. Levels, gaps
    and fills are the engine's (docs/engine.md, "Stops")."""

    def to_core(self) -> Stops:
        """The engine's :class:`~quantarena.engine.stops.Stops`."""
        return Stops(**self.model_dump())


class AgentConfig(_Section):
    """One agent of the tournament.

    ``kind`` names a strategy in the registry (e.g. ``momentum``); ``params`` maps each
    parameter to a grid spec (see the module docstring); parameters left out use the
    strategy's own defaults. ``population``: evaluate this many random sets (seeded by the
    tournament's ``seed``) instead of the full grid. ``gpu_fraction``: the share of one GPU
    the agent's actor asks Ray for (on a CPU-only cluster, the same share of one CPU).
    ``max_position``: the largest position as a fraction of the agent's capital.
    ``objective``: what the agent maximises in-sample when choosing its parameters.
    ``tuning``: tune with Optuna inside each in-sample window (see :class:`TuningConfig`)
    instead of scanning the grid / population; None (default) scans. ``stops``: stop-loss /
    take-profit / trailing exits (see :class:`StopsConfig`), in sample and out of sample;
    ``leverage``: the cap on the sum of |weights| of the agent's positions per bar.
    ``audit``: false skips this agent's look-ahead audit at the start of the tournament.
    """

    name: Name
    kind: Name
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    population: PositiveInt | None = None
    gpu_fraction: Fraction = 0.25
    max_position: Fraction = 0.10
    objective: Literal[OBJECTIVES] = "sharpe"  # type: ignore[valid-type]
    tuning: TuningConfig | None = None
    stops: StopsConfig | None = None
    leverage: PositiveFloat = 1.0
    audit: bool = True

    def values(self, param: str) -> list[Any]:
        """The expanded value list of one parameter (``"5:20:5"`` -> ``[5, 10, 15, 20]``)."""
        return as_values(self.params[param])

    def grid(self) -> dict[str, list[Any]]:
        """Every parameter's expanded value list, in the order written."""
        return {name: self.values(name) for name in self.params}

    @property
    def grid_size(self) -> int:
        """Number of parameter sets in the full grid (product of the value-list lengths)."""
        n = 1
        for name in self.params:
            n *= len(self.values(name))
        return n

    @model_validator(mode="after")
    def _grid_not_huge(self) -> AgentConfig:
        _check_agent(self)
        if self.tuning is not None:
            if self.objective == "deflated_sharpe":
                raise ValueError(
                    "tuning: objective deflated_sharpe cannot be tuned trial by trial: "
                    "use sharpe, sortino, calmar or total_return"
                )
            if self.tuning.sampler == "nsga2":
                raise ValueError(
                    "tuning.sampler: nsga2 is multi-objective; a tournament agent tunes one "
                    "objective: use tpe, cmaes or random"
                )
            return self  # the params only span the search box: no grid is built
        if self.population is None and self.params and self.grid_size > MAX_GRID:
            raise ValueError(
                f"the full grid holds {self.grid_size:,} parameter sets (> {MAX_GRID:,}): "
                "set 'population' to sample fewer"
            )
        return self


#: grids up to this many sets are built at load time to check that one valid set exists
_CHECK_GRID_UP_TO = 20_000


def _unknown_agent(kind: str, known: typing.Collection[str]) -> str:
    near = difflib.get_close_matches(kind, list(known), n=1)
    hint = f" — did you mean {near[0]!r}?" if near else ""
    return f"unknown agent {kind!r}{hint} (known: {', '.join(sorted(known))})"


def _check_agent(a: AgentConfig) -> None:
    """Check ``kind`` against the agent registry and every ``params`` name and value against
    the agent's parameter space, so a bad agent is refused when the config is loaded (by
    ``tournament run``, ``submit`` and the Python API alike), not on the cluster later.
    Raises :class:`_KeyedError` naming ``kind`` or ``params.NAME``."""
    from quantarena.strategies.registry import get_agent_class, list_agents

    known = list_agents()
    if a.kind not in known:
        raise _KeyedError(("kind",), _unknown_agent(a.kind, known))
    cls = get_agent_class(a.kind)
    space = cls.space
    for name, spec in a.params.items():
        if name not in space:
            near = difflib.get_close_matches(name, list(space), n=1)
            hint = f" — did you mean {near[0]!r}?" if near else ""
            raise _KeyedError(
                ("params", name),
                f"unknown parameter {name!r} of agent {a.kind!r}{hint} "
                f"(parameters: {', '.join(space) or 'none'})",
            )
        try:
            space[name].coerce(name, as_values(spec))
        except ValueError as exc:
            msg = re.sub(rf"^parameter {re.escape(repr(name))}: ", "", str(exc))
            raise _KeyedError(("params", name), f"{msg} (agent {a.kind!r})") from None
    if a.tuning is None and a.params and a.grid_size <= _CHECK_GRID_UP_TO:
        try:
            cls().grid(**a.params)
        except ValueError as exc:
            raise _KeyedError(("params",), str(exc)) from None


_CostsFields = composite_section(Costs, DEFAULT_COSTS, name="_CostsFields")


class CostsConfig(_CostsFields):  # type: ignore[misc, valid-type]
    """Trading costs, in bps of traded notional, generated from the engine's cost models
    (:mod:`quantarena.engine.costs`) with defaults from ``DEFAULT_COSTS`` — the same costs
    ``quantarena.backtest`` and the CLI charge by default.

    ``fee_bps``: commission per fill (taker, :class:`~quantarena.engine.costs.Fees`);
    ``slippage_bps``: fixed adverse price move per fill (``Slippage``); ``impact_k_bps`` /
    ``impact_alpha`` / ``impact_max_bps``: volume impact ``min(k * participation**alpha,
    max)`` bps, 0 = off (``VolumeImpact``); ``funding``: perpetual funding
    ``{rate_per_8h, period_hours}`` (``Funding``; leave out for spot).
    """

    def to_costs(self) -> Costs:
        """The engine's :class:`~quantarena.engine.costs.Costs` for these settings."""
        return self.to_core()  # type: ignore[no-any-return]


FundingConfig = CostsConfig.model_fields["funding"].annotation.__args__[0]  # type: ignore[union-attr]
"""The ``costs.funding`` section, generated from :class:`~quantarena.engine.costs.Funding`."""


SymbolFiltersConfig = section(SymbolFilters, name="SymbolFiltersConfig")
"""One symbol's ``filters.symbols.<SYM>`` section, generated from
:class:`~quantarena.engine.filters.SymbolFilters` (null: the global value)."""
_SymbolFiltersFields = section(
    SymbolFilters, name="_SymbolFiltersFields", defaults={"lot_size": 0.0, "min_notional": 0.0}
)


class FiltersConfig(_SymbolFiltersFields):  # type: ignore[misc, valid-type]
    """Exchange filters for every bar agent's replays (:mod:`quantarena.engine.filters`):
    ``lot_size`` (asset units) and ``min_notional`` (quote currency) for every symbol, with
    per-symbol overrides under ``symbols``; ``capital``: the account size in the quote
    currency that the filters are meant for (required).

    Tournament accounts start at 1.0 (returns, Sharpe and the allocation do not depend on
    the size), so the filters reach the engine scaled to that unit account: both amounts
    divided by ``capital`` — a 10 USDT minimum for a 10,000 USDT account is a 0.001 minimum
    for an account of 1.0, exactly as a 10,000 USDT backtest would filter the same trades.
    Tick agents (market making, arbitrage) have their own fill model and are not filtered.
    """

    capital: PositiveFloat
    symbols: dict[str, SymbolFiltersConfig] = Field(default_factory=dict)  # type: ignore[valid-type]

    def to_filters(self, symbols: list[str]) -> ExchangeFilters | None:
        """The engine's filters for ``symbols`` (column order) on the unit account; None
        when every amount is 0. ValueError (naming the key) for a symbol not in the data."""
        d = {
            "lot_size": self.lot_size,
            "min_notional": self.min_notional,
            "symbols": {k: v.model_dump() for k, v in self.symbols.items()},
        }
        f = ExchangeFilters.from_config(d, symbols, "filters")
        if f is None or not any(float(x) for a in f.compile(len(symbols)) for x in a):
            return None
        return f.per_unit(self.capital)


_AllocationFields = section(
    _director.AllocationConfig, name="_AllocationFields", exclude=("gated_by",)
)


class AllocationConfig(_AllocationFields):  # type: ignore[misc, valid-type]
    """How capital moves between agents (see :mod:`quantarena.tournaments.allocation`); the
    fields, defaults and ranges are the director's
    :class:`~quantarena.tournaments.director.AllocationConfig` (which gates hold back
    capital is ``gates.binding``).

    ``method``: ``"kelly"`` (fractional multivariate Kelly on the agents' out-of-sample
    returns), ``"equal"`` or ``"inverse_vol"``; ``kelly_fraction``: the Kelly multiplier (0.5 =
    half Kelly); ``shrinkage``: covariance shrinkage (``"ledoit-wolf"``, ``"none"`` or a fixed
    intensity in [0, 1]); ``cap_per_agent``: the largest weight of one agent; ``gross_cap``:
    the largest sum of |weights| (1.0 = no leverage); ``estimation_window``: rounds of history
    the estimates use; ``min_rounds``: rounds an agent must have played before it may get a
    non-zero weight; ``long_only``: no negative weights.
    """

    @model_validator(mode="after")
    def _caps(self) -> AllocationConfig:
        if self.cap_per_agent > self.gross_cap:
            raise ValueError(
                f"cap_per_agent {self.cap_per_agent:g} is above gross_cap {self.gross_cap:g}"
            )
        return self

    def to_core(self, gated_by: typing.Sequence[str] | None = None) -> Any:
        """The director's :class:`~quantarena.tournaments.director.AllocationConfig`;
        ``gated_by``: the binding gates (``gates.binding``), default the director's."""
        extra = {} if gated_by is None else {"gated_by": tuple(gated_by)}
        return _director.AllocationConfig(**self.model_dump(), **extra)


class TrackingConfig(_Section):
    """Where results go. ``output_dir`` (default ``runs/<name>``) holds plots and tables;
    ``mlflow_uri`` (default ``sqlite:///<output_dir>/mlflow.db``) is the MLflow tracking URI —
    a SQLite file, ``http://host:5000`` for a tracking server, or any URI MLflow accepts;
    ``experiment`` defaults to the tournament name; ``checkpoint`` (default
    ``<output_dir>/checkpoint.pkl``) is where the director saves its state after every round,
    a path or any fsspec URI (``s3://bucket/run.pkl``), for ``tournament run --resume``."""

    mlflow_uri: str | None = None
    experiment: str | None = None
    output_dir: Path | None = None
    checkpoint: str | None = None

    @field_validator("mlflow_uri", "experiment")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty: leave it out for the default")
        return v


class RayConfig(_Section):
    """The Ray cluster. ``address`` None starts a local Ray (inside a Ray job, the job's
    cluster); ``num_cpus`` / ``num_gpus`` size a local start (``num_gpus`` declares logical
    GPUs: ``1`` on a CPU machine lets GPU-fraction actors be placed, e.g. in tests);
    ``runtime_env`` is merged into the runtime environment of submitted jobs;
    ``include_dashboard`` starts the dashboard with a local Ray; ``max_running_agents`` caps
    the agent-rounds computing at once (default: the cluster's CPUs when agents run on CPUs —
    more would only time-share the cores — and every agent when they run on GPUs).
    Faults: an agent actor that dies is restarted up to ``max_restarts`` times and its
    interrupted call retried up to ``max_task_retries`` times (Ray's actor options); an
    agent-round that raises is run again up to ``round_retries`` times, then scored flat
    for that round (``failed_rounds`` in the leaderboard, its traceback in MLflow)."""

    address: str | None = None
    num_cpus: PositiveInt | None = None
    num_gpus: NonNegFloat | None = None
    runtime_env: dict[str, Any] | None = None
    include_dashboard: bool = False
    max_running_agents: PositiveInt | None = None
    max_restarts: int = Field(default=3, ge=-1)
    max_task_retries: int = Field(default=3, ge=-1)
    round_retries: NonNegInt = 2


class TournamentConfig(_Section):
    """A whole tournament: data, schedule, agents, costs, allocation, gates, tracking, Ray.

    Build it with :meth:`from_yaml` or :meth:`model_validate`; dump it with :meth:`to_yaml`
    (defaults resolved: the dump is what actually ran). ``audit`` (default true): audit every
    agent for look-ahead before the first round and refuse one that fails (see
    :mod:`quantarena.tournaments.entrant_audit`); false skips it for all agents.
    """

    name: Name
    seed: NonNegInt = 0
    data: DataConfig
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    agents: list[AgentConfig]
    costs: CostsConfig = Field(default_factory=CostsConfig)
    filters: FiltersConfig | None = None
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)
    gates: GateConfig = Field(default_factory=GateConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    audit: bool = True

    @field_validator("agents")
    @classmethod
    def _agents_ok(cls, v: list[AgentConfig]) -> list[AgentConfig]:
        if not v:
            raise ValueError("list at least one agent")
        return v

    @model_validator(mode="after")
    def _resolve(self) -> TournamentConfig:
        seen: dict[str, int] = {}
        for i, agent in enumerate(self.agents):
            if agent.name in seen:
                raise _KeyedError(
                    ("agents", i, "name"),
                    f"duplicate agent name {agent.name!r} (also agents.{seen[agent.name]}.name)",
                )
            seen[agent.name] = i
        t = self.tracking
        if t.output_dir is None or t.mlflow_uri is None or t.experiment is None:
            out = t.output_dir if t.output_dir is not None else Path("runs") / self.name
            self.tracking = TrackingConfig(
                output_dir=out,
                mlflow_uri=t.mlflow_uri or f"sqlite:///{out.as_posix()}/mlflow.db",
                experiment=t.experiment or self.name,
                checkpoint=t.checkpoint,
            )
        return self

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_yaml(cls, path: str | Path, *, check_paths: bool = False) -> TournamentConfig:
        """Read and validate a YAML file; raise :class:`ConfigError` (one line) on any problem.

        ``check_paths``: also check that ``data.store`` / ``data.files`` exist.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found — check the path") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot read the config file: {exc}") from None
        raw = _load_yaml(text, str(p))
        cfg = cls.from_dict(raw, source=str(p))
        if check_paths:
            cfg.check_paths(source=str(p))
        return cfg

    @classmethod
    def from_dict(cls, raw: Any, *, source: str | None = None) -> TournamentConfig:
        """Validate a mapping (as parsed from YAML); raise :class:`ConfigError` on a problem."""
        where = f"{source}: " if source else ""
        if not isinstance(raw, Mapping):
            kind = "empty" if raw is None else f"a {type(raw).__name__}"
            raise ConfigError(f"{where}the config is {kind}: it must be a mapping of sections")
        try:
            return cls.model_validate(dict(raw))
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, source, cls)) from None

    def to_yaml(self) -> str:
        """The resolved configuration as YAML text (durations and times as text)."""
        data = self.model_dump(mode="json")
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def check_paths(self, *, source: str | None = None) -> None:
        """Raise :class:`ConfigError` if the store or an input file does not exist (relative
        paths are resolved from the current directory)."""
        where = f"{source}: " if source else ""
        d = self.data
        if d.store is not None and not d.store.is_dir():
            raise ConfigError(
                f"{where}data.store: no store at {d.store} — ingest data first "
                "(quantarena data ingest FILE --store DIR) or fix the path "
                "(relative paths start at the current directory)"
            )
        for i, f in enumerate(d.files or []):
            if not f.path.exists():
                raise ConfigError(
                    f"{where}data.files.{i}.path: file not found: {f.path} — fix the path "
                    "(relative paths start at the current directory)"
                )

    def check_agent_kinds(
        self, known: typing.Collection[str], *, source: str | None = None
    ) -> None:
        """Raise :class:`ConfigError` naming ``agents.N.kind`` if a kind is not in ``known``
        (loading already checks every kind against the registry; this checks a narrower set,
        e.g. the agents a cluster's workers can import)."""
        where = f"{source}: " if source else ""
        for i, agent in enumerate(self.agents):
            if agent.kind not in known:
                raise ConfigError(f"{where}agents.{i}.kind: {_unknown_agent(agent.kind, known)}")

    def agent(self, name: str) -> AgentConfig:
        """The agent called ``name``."""
        for a in self.agents:
            if a.name == name:
                return a
        raise KeyError(f"no agent named {name!r}; agents: {', '.join(a.name for a in self.agents)}")


# --------------------------------------------------------------------------- errors


class _KeyedError(ValueError):
    """A model-level error that knows the key path it belongs to (relative to the model
    whose validator raised it)."""

    def __init__(self, loc: tuple[Any, ...], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{source}{line}: invalid YAML: {' '.join(str(problem).split())} — fix the syntax"
        ) from None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class reached by following ``loc`` from ``model`` (None if not a model)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (list, tuple):
            args = typing.get_args(current)
            current = args[0] if args else Any
        elif typing.get_origin(current) is dict:
            args = typing.get_args(current)
            current = args[1] if len(args) == 2 else Any
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``X | None``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


_BOUND_OPS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def _message(e: Mapping[str, Any], model: type[BaseModel]) -> tuple[tuple[Any, ...], str]:
    loc = tuple(e.get("loc", ()))
    kind = e.get("type", "")
    ctx = e.get("ctx") or {}
    got = e.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        allowed = list(parent.model_fields) if parent is not None else []
        msg = "unknown key"
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1) if allowed else []
        if near:
            msg += f" — did you mean {near[0]!r}?"
        if allowed:
            msg += f" (allowed: {', '.join(allowed)})"
        return loc, msg
    if kind == "missing":
        return loc, "required key is missing"
    if kind in ("value_error", "assertion_error"):
        err = ctx.get("error")
        if isinstance(err, _KeyedError):  # its key path is relative to the failing model
            return loc + tuple(err.loc), str(err)
        msg = str(err) if err is not None else str(e.get("msg", ""))
        msg = re.sub(r"^(Value|Assertion) error, ", "", msg)
        if isinstance(got, Mapping):  # a whole section: the message says what is wrong
            return loc, msg
        if "got " in msg or (isinstance(got, str) and repr(got) in msg):
            return loc, msg
        return loc, f"{msg}, got {_short(got)}"
    if kind in _BOUND_OPS:
        op, key = _BOUND_OPS[kind]
        return loc, f"must be {op} {ctx.get(key)}, got {_short(got)}"
    msg = str(e.get("msg", "invalid value"))
    msg = re.sub(r"^Input should be", "must be", msg)
    msg = re.sub(r"^Input", "value", msg)
    return loc, f"{msg}, got {_short(got)}"


def format_validation_error(
    err: ValidationError, source: str | None = None, model: type[BaseModel] | None = None
) -> str:
    """One line for a pydantic :class:`ValidationError`: ``SOURCE: key.path: message``
    (the first problem; a count of any others is appended)."""
    errors = err.errors(include_url=False)
    model = model or TournamentConfig
    if not errors:
        return f"{source}: invalid configuration" if source else "invalid configuration"
    loc, msg = _message(errors[0], model)
    path = ".".join(str(p) for p in loc) or "(top level)"
    head = f"{source}: " if source else ""
    line = f"{head}{path}: {msg}"
    if len(errors) > 1:
        n = len(errors) - 1
        line += f" (and {n} more problem{'s' if n > 1 else ''})"
    return " ".join(line.split())
