"""Config sections generated from the core's own dataclasses: one declaration per setting.

A section of the tournament YAML (``costs``, ``allocation``, ``agents[].tuning``, ...) is not
re-declared field by field: :func:`section` reads the core dataclass that the setting feeds
(:class:`~quantarena.tournaments.director.AllocationConfig`,
:class:`~quantarena.training.tuning.TuningSpec`, the cost models of
:mod:`quantarena.engine.costs`) and builds the pydantic model from it:

* **type** — the dataclass field's annotation (``int``, ``float``, ``bool``, ``Literal``,
  ``X | None``);
* **default** — the dataclass default (or one given, e.g. from ``DEFAULT_COSTS``), so there
  is one default per concept;
* **range** — the field's ``metadata``: ``ge`` / ``gt`` / ``le`` / ``lt`` bounds, a plain
  ``check(value) -> value`` function raising ``ValueError``, ``key`` (the YAML name when it
  differs from the field's) and ``config=False`` to leave a field out of the YAML;
* **doc** — ``metadata["doc"]``, kept as the field's description.

Numbers reject ``true`` / ``false`` and non-finite values; a bad value gives a one-line
message such as ``must be in (0, 1], got 2`` that :mod:`quantarena.config` prefixes with the
file and the key path. A new cost or risk model is therefore one dataclass with annotated
fields; the config picks it up.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Collection, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

__all__ = [
    "CompositeSection",
    "Section",
    "composite_section",
    "config_fields",
    "range_check",
    "reject_bool",
    "section",
    "section_fields",
]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors; assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def range_check(
    lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False
) -> AfterValidator:
    """A validator for a finite number within ``lo``/``hi`` (None: unbounded; ``*_open``:
    that bound excluded); its message reads ``must be in (0, 1]`` / ``must be >= 0``."""
    if hi is None and lo is not None:
        text = f"{'>' if lo_open else '>='} {_num(lo)}"
    elif lo is None and hi is not None:
        text = f"{'<' if hi_open else '<='} {_num(hi)}"
    elif lo is None and hi is None:
        text = ""
    else:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        text = f"in {left}{_num(lo)}, {_num(hi)}{right}"  # type: ignore[arg-type]

    def check(v: float) -> float:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"must be a finite number {text}".rstrip())
        bad_lo = lo is not None and (v <= lo if lo_open else v < lo)
        bad_hi = hi is not None and (v >= hi if hi_open else v > hi)
        if bad_lo or bad_hi:
            raise ValueError(f"must be {text}")
        return v

    return AfterValidator(check)


def reject_bool(v: Any) -> Any:
    """Refuse ``true`` / ``false`` where a number is expected (pydantic would take 1 / 0)."""
    if isinstance(v, bool):
        raise ValueError("must be a number, not true/false")
    return v


def _is_number(tp: Any) -> bool:
    return tp in (int, float)


def _optional(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(tp)):
            return args[0], True
    return tp, False


def _annotation(tp: Any, meta: Mapping[str, Any]) -> Any:
    """The pydantic annotation of one dataclass field: its type plus the metadata's checks."""
    inner, optional = _optional(tp)
    extra: list[Any] = []
    if "check" in meta:  # the field's own validator sees the raw value, then the type applies
        extra.append(BeforeValidator(meta["check"]))
    elif _is_number(inner):
        extra.append(BeforeValidator(reject_bool))
        lo = meta.get("gt", meta.get("ge"))
        hi = meta.get("lt", meta.get("le"))
        extra.append(range_check(lo, hi, "gt" in meta, "lt" in meta))
    ann = Annotated[(inner, *extra)] if extra else inner  # type: ignore[valid-type]
    return ann | None if optional else ann


def config_fields(source: type) -> list[dataclasses.Field]:
    """The fields of dataclass ``source`` that a config section shows (not ``config=False``)."""
    return [f for f in dataclasses.fields(source) if f.metadata.get("config", True)]


def section_fields(
    source: type,
    *,
    exclude: Collection[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, tuple[Any, Any]]:
    """``{yaml_key: (annotation, FieldInfo)}`` for the config fields of dataclass ``source``
    (named by ``metadata["key"]`` or the field name); ``defaults`` override the dataclass
    defaults by field name."""
    hints = typing.get_type_hints(source, include_extras=True)
    out: dict[str, tuple[Any, Any]] = {}
    for f in config_fields(source):
        if f.name in exclude:
            continue
        meta = f.metadata
        kw: dict[str, Any] = {"description": meta.get("doc")}
        if defaults is not None and f.name in defaults:
            kw["default"] = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kw["default_factory"] = f.default_factory
        out[meta.get("key", f.name)] = (_annotation(hints[f.name], meta), Field(**kw))
    return out


def section(
    source: type,
    *,
    name: str,
    doc: str | None = None,
    exclude: Collection[str] = (),
    defaults: Mapping[str, Any] | None = None,
    base: type[BaseModel] = Section,
) -> type[BaseModel]:
    """A pydantic model with one field per config field of dataclass ``source`` (see
    :func:`section_fields`). Subclass it to add cross-field validators or methods."""
    return create_model(  # type: ignore[call-overload, no-any-return]
        name,
        __base__=base,
        __doc__=doc or source.__doc__,
        __module__="quantarena.config",
        **section_fields(source, exclude=exclude, defaults=defaults),
    )


# --------------------------------------------------------------------------- composites


class CompositeSection(Section):
    """A section for a *container* dataclass whose fields are optional model dataclasses,
    e.g. :class:`~quantarena.engine.costs.Costs` (``fees``, ``slippage``, ``impact``,
    ``funding``). A container field's ``metadata["config"]`` says how its model appears:

    * ``"flat"`` — the model's config fields sit directly in the section, named by their
      ``key`` (``fee_bps``, ``slippage_bps``...); defaults come from the container's default
      instance, else from the model class;
    * ``"section"`` — a nested mapping under the field's name, ``null`` (absent) by default;
      its model is named ``<Model>Config`` (bind it under that name in the module that
      defines the composite, so instances pickle).

    :meth:`to_core` builds the container back.
    """

    _container: typing.ClassVar[type]
    _default: typing.ClassVar[Any]

    def to_core(self) -> Any:
        """The container dataclass for these settings. A flat model that is off by default
        (``None`` in the default instance) and left at its class defaults stays ``None``."""
        hints = typing.get_type_hints(self._container)
        parts: dict[str, Any] = {}
        for f in dataclasses.fields(self._container):
            how = f.metadata.get("config")
            model, _ = _optional(hints[f.name])
            if how == "section":
                sub = getattr(self, f.name)
                parts[f.name] = None if sub is None else model(**_by_name(model, sub))
            elif how == "flat":
                values = {
                    g.name: getattr(self, g.metadata.get("key", g.name))
                    for g in config_fields(model)
                }
                start = getattr(self._default, f.name)
                if start is None:
                    if all(values[g.name] == g.default for g in config_fields(model)):
                        parts[f.name] = None
                        continue
                    start = model()
                parts[f.name] = dataclasses.replace(start, **values)
        return self._container(**parts)


def _by_name(model: type, sub: BaseModel) -> dict[str, Any]:
    """A nested section's values keyed by the model's field names."""
    return {g.name: getattr(sub, g.metadata.get("key", g.name)) for g in config_fields(model)}


def composite_section(
    container: type, default: Any, *, name: str, doc: str | None = None
) -> type[CompositeSection]:
    """The :class:`CompositeSection` of ``container`` with defaults from instance ``default``
    (e.g. ``DEFAULT_COSTS``)."""
    hints = typing.get_type_hints(container)
    fields: dict[str, tuple[Any, Any]] = {}
    for f in dataclasses.fields(container):
        how = f.metadata.get("config")
        model, _ = _optional(hints[f.name])
        if how == "flat":
            start = getattr(default, f.name)
            defaults = (
                {g.name: getattr(start, g.name) for g in config_fields(model)}
                if start is not None
                else None
            )
            fields.update(section_fields(model, defaults=defaults))
        elif how == "section":
            sub = section(model, name=f"{model.__name__}Config")  # bind it under that name
            fields[f.name] = (sub | None, Field(default=None, description=model.__doc__))
    out = create_model(  # type: ignore[call-overload]
        name,
        __base__=CompositeSection,
        __doc__=doc or container.__doc__,
        __module__="quantarena.config",
        **fields,
    )
    out._container = container
    out._default = default
    return out  # type: ignore[no-any-return]
