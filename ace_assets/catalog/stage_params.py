"""Stage settings dataclasses whose defaults and cell grammar are the catalog's.

A stage (denoise, preprocess, motion, extraction) declares its settings' names and
types only; :func:`stage_params` takes each default from the stage's group in
:data:`~ace_assets.catalog.parameter_specs.SPECS` (analysis parameters, CSV columns) or
:data:`~ace_assets.catalog.parameter_specs.ENGINE_SPECS` (settings that are not), and
:meth:`StageParams.from_mapping` parses values with the catalog's grammar. So a notebook
calling a stage without settings runs what the asset runs for an empty CSV row, and a
value means the same in a CSV cell, a run config and a notebook.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from ace_assets.catalog.cells import MISSING
from ace_assets.catalog.parameter_specs import ALIASES, ENGINE_SPECS, SPECS, ParamSpec
from ace_assets.catalog.parameters import parse_value
from ace_assets.errors import AceInputError

T = TypeVar("T", bound=type)

#: group -> its settings dataclass, filled as the stage modules are imported
STAGE_CLASSES: dict[str, type[StageParams]] = {}


def group_specs(group: str) -> dict[str, ParamSpec]:
    """The group's analysis parameters, then its engine settings."""
    specs = {k: s for k, s in SPECS.items() if s.group == group}
    specs.update({k: s for k, s in ENGINE_SPECS.items() if s.group == group})
    return specs


def group_defaults(group: str) -> dict[str, Any]:
    """What an empty analysis_parameters.csv row gives the group (SPECS only)."""
    return {k: copy.deepcopy(s.default) for k, s in SPECS.items() if s.group == group}


class StageParams:
    """Base of the stage settings dataclasses (see :func:`stage_params`)."""

    GROUP: ClassVar[str] = ""

    @classmethod
    def specs(cls) -> dict[str, ParamSpec]:
        return group_specs(cls.GROUP)

    @classmethod
    def parse(
        cls,
        values: Mapping[str, Any] | None,
        *,
        strict: bool = True,
        file: str | Path | None = None,
        line: int | None = None,
    ) -> dict[str, Any]:
        """Typed values for the keys that are this stage's settings; empty cells dropped.

        ``strict``: a key that is not a setting is an error (a typo would otherwise be
        silently ignored); without it such keys are skipped (a whole CSV row).
        """
        specs = cls.specs()
        named = {ALIASES.get(str(k).strip(), str(k).strip()): v for k, v in (values or {}).items()}
        unknown = sorted(k for k in named if k not in specs)
        if strict and unknown:
            raise AceInputError(
                f"unknown {cls.GROUP} parameters {unknown}; known: {sorted(specs)}",
                file=file,
                line=line,
                column=unknown[0],
            )
        out: dict[str, Any] = {}
        for name, raw in named.items():
            if name in specs:
                value = parse_value(specs[name], raw, name, file=file, line=line)
                if value is not MISSING:
                    out[name] = value
        return out

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None = None) -> Self:
        """Build from config (a line's ``params.group(...)``, a dict of cells); validated.

        Empty cells keep the default; unknown keys are an error.
        """
        params = cls(**cls.parse(values))
        params.validate()
        return params

    def validate(self) -> None:
        """Ranges and combinations the grammar cannot express; AceInputError naming the column."""


def stage_params(group: str, *, frozen: bool = False) -> Callable[[T], T]:
    """Make a dataclass of ``group``'s settings, its defaults taken from the specs.

    The class declares every setting of the group (name and type, no default) and
    nothing else; a missing, extra or defaulted field is a TypeError at import, so the
    class cannot drift from the specs.
    """

    def build(cls: T) -> T:
        specs = group_specs(group)
        declared = list(cls.__dict__.get("__annotations__", {}))
        missing = [n for n in specs if n not in declared]
        extra = [n for n in declared if n not in specs]
        defaulted = [n for n in declared if n in cls.__dict__]
        if missing or extra or defaulted:
            raise TypeError(
                f"{cls.__name__} must declare exactly the '{group}' settings of the specs, "
                f"without defaults: missing {missing}, not in the specs {extra}, "
                f"with a default of their own {defaulted}"
            )
        for name in declared:
            default = specs[name].default
            if isinstance(default, (list, dict, set)):
                setattr(
                    cls, name, dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d))
                )
            else:
                setattr(cls, name, default)
        cls.GROUP = group
        made = dataclasses.dataclass(frozen=frozen)(cls)
        STAGE_CLASSES[group] = made
        return made

    return build
