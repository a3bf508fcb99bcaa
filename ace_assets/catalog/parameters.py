"""analysis_parameters.csv: typed per-line settings, defaults < CSV row < run config.

Each value remembers where it came from, so the UI can show which settings
a result was computed with and why.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ace_assets.catalog.cells import MISSING, CellError, parse_cell, preview
from ace_assets.catalog.csv_table import RowProblem, normalize_header, read_table
from ace_assets.catalog.line_numbers import keyed_rows
from ace_assets.catalog.parameter_specs import ALIASES, IDENTITY_COLUMNS, SPECS, ParamSpec
from ace_assets.errors import AceInputError

_CANONICAL = {normalize_header(k): k for k in SPECS}
_CANONICAL.update({normalize_header(k): v for k, v in ALIASES.items()})
_IDENTITY = {normalize_header(c) for c in IDENTITY_COLUMNS}


@dataclass
class LineParameters:
    """The settings of one line; ``sources[name]`` is 'default', 'csv' or 'run_config'."""

    line_number: int
    values: dict[str, Any]
    sources: dict[str, str]
    unknown: dict[str, str] = field(default_factory=dict)
    problems: list[RowProblem] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def group(self, group: str) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if SPECS[k].group == group}

    def to_json(self) -> dict[str, Any]:
        return {
            "line_number": self.line_number,
            "values": {k: _jsonable(v) for k, v in self.values.items()},
            "sources": self.sources,
            "unknown": self.unknown,
            "problems": [p.as_dict() for p in self.problems],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LineParameters:
        values = {k: coerce(SPECS[k], v, k) for k, v in data["values"].items() if k in SPECS}
        for name, spec in SPECS.items():  # settings added since this was stored
            values.setdefault(name, spec.default)
        problems = [RowProblem(**p) for p in data.get("problems", [])]
        return cls(data["line_number"], values, data["sources"], data.get("unknown", {}), problems)


@dataclass
class ParameterTable:
    file: str
    rows: dict[int, tuple[int, dict[str, str]]]  # line -> (physical row, {canonical: cell})
    unknown_columns: list[str]
    problems: list[RowProblem]


def read_parameter_table(path: str | Path) -> ParameterTable:
    """Map the CSV's columns to parameter names once; cells are parsed per line on demand."""
    table = read_table(path)
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    for header in table.header:
        key = normalize_header(header)
        if key in _CANONICAL:
            mapping[header] = _CANONICAL[key]
        elif key in _IDENTITY or not header:
            continue
        else:
            unknown.append(header)
            guess = difflib.get_close_matches(header, list(SPECS), n=1, cutoff=0.75)
            hint = f"; did you mean '{guess[0]}'?" if guess else ""
            table.problems.append(
                RowProblem(
                    table.file, 1, None, header, f"unknown column kept, not used{hint}", "warning"
                )
            )
    rows: dict[int, tuple[int, dict[str, str]]] = {}
    for line, raw in keyed_rows(table).items():
        cells = {mapping[h]: v for h, v in raw.cells.items() if h in mapping}
        cells.update({f"?{h}": raw.cells[h] for h in unknown if raw.cells.get(h, "").strip()})
        rows[line] = (raw.row, cells)
    return ParameterTable(table.file, rows, unknown, table.problems)


def resolve_parameters(
    table: ParameterTable | None,
    line_number: int,
    overrides: dict[str, str] | None = None,
) -> LineParameters:
    """Defaults, then the line's CSV row, then run-config overrides (same cell grammar).

    A cell that cannot be parsed is an error for this line: silently falling
    back to a default would produce results with settings nobody chose.
    """
    values = {k: spec.default for k, spec in SPECS.items()}
    sources = dict.fromkeys(SPECS, "default")
    unknown: dict[str, str] = {}
    problems: list[RowProblem] = []
    if table is not None:
        problems = [p for p in table.problems if p.line_number in (None, line_number)]
        fatal = [p for p in problems if p.line_number == line_number and p.severity == "error"]
        if fatal:
            raise AceInputError(
                fatal[0].message,
                file=table.file,
                row=fatal[0].row,
                line=line_number,
                column=fatal[0].column,
            )
        if line_number in table.rows:
            row, cells = table.rows[line_number]
            for name, text in cells.items():
                if name.startswith("?"):
                    unknown[name[1:]] = text
                    continue
                value = _parse(text, name, table.file, row, line_number)
                if value is not MISSING:
                    values[name], sources[name] = value, "csv"
    for name, text in (overrides or {}).items():
        canonical = _CANONICAL.get(normalize_header(name))
        if canonical is None:
            guess = difflib.get_close_matches(name, list(SPECS), n=1)
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            raise AceInputError(f"unknown parameter '{name}' in run config{hint}", column=name)
        value = _parse(text, canonical, "run config", None, line_number)
        if value is not MISSING:
            values[canonical], sources[canonical] = value, "run_config"
    return LineParameters(line_number, values, sources, unknown, problems)


def _parse(text: Any, name: str, file: str, row: int | None, line: int) -> Any:
    return parse_value(SPECS[name], text, name, file=file, row=row, line=line)


def parse_value(
    spec: ParamSpec,
    raw: Any,
    name: str,
    *,
    file: str | Path | None = None,
    row: int | None = None,
    line: int | None = None,
) -> Any:
    """A cell's text (or an already parsed value) by the catalog's grammar.

    ``MISSING`` when the cell is empty (keep the default); a value the grammar or the
    parameter's kind refuses raises AceInputError naming the parameter. The CSV, run
    config and every stage's ``from_mapping`` go through here, so a cell means the same
    wherever it is typed.
    """
    try:
        value = parse_cell(raw) if isinstance(raw, str) else raw
        return MISSING if value is MISSING else coerce(spec, value, name)
    except (CellError, ValueError, TypeError) as exc:
        raise AceInputError(str(exc), file=file, row=row, line=line, column=name) from None


def coerce(spec: ParamSpec, value: Any, name: str) -> Any:
    """Check a parsed cell against the parameter's kind; raise ValueError saying what was expected."""
    kind = spec.kind
    if value is None and (kind.startswith("opt_") or kind == "border"):
        return None
    if kind.startswith("opt_"):
        kind = kind[4:]
    expected = _EXPECTED.get(kind, kind)

    def fail() -> None:
        raise ValueError(f"{preview(repr(value))} is not valid for {name}: expected {expected}")

    if kind == "bool":
        if not isinstance(value, bool):
            fail()
    elif kind == "int":
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or float(value) != int(value)
        ):
            fail()
        value = int(value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail()
        value = float(value)
    elif kind == "str":
        if not isinstance(value, str):
            fail()
    elif kind in ("int2", "int4"):
        size = int(kind[-1])
        if isinstance(value, (int, float)) and not isinstance(value, bool) and size == 2:
            value = (value, value)
        if not isinstance(value, (tuple, list)) or len(value) != size:
            fail()
        if any(isinstance(v, bool) or float(v) != int(v) for v in value):
            fail()
        value = tuple(int(v) for v in value)
    elif kind in ("int_list", "float_list"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (tuple, list)) or any(
            isinstance(v, (tuple, list, bool)) for v in value
        ):
            fail()
        value = [int(v) for v in value] if kind == "int_list" else [float(v) for v in value]
        if kind == "int_list" and any(v < 0 for v in value):
            fail()
    elif kind == "intervals":
        if (
            isinstance(value, (tuple, list))
            and len(value) == 2
            and all(isinstance(v, (int, float)) for v in value)
        ):
            value = [value]
        if not isinstance(value, (tuple, list)) or any(
            not isinstance(v, (tuple, list)) or len(v) != 2 or float(v[0]) > float(v[1])
            for v in value
        ):
            fail()
        value = [[float(a), float(b)] for a, b in value]
    elif kind == "border":
        if not isinstance(value, (bool, str)) or (isinstance(value, str) and value != "copy"):
            fail()
    if spec.choices and value not in spec.choices:
        raise ValueError(
            f"{preview(repr(value))} is not valid for {name}: expected one of {list(spec.choices)}"
        )
    return value


_EXPECTED = {
    "bool": "TRUE or FALSE",
    "int": "an integer",
    "float": "a number",
    "str": "a word such as oasis",
    "int2": "a pair of integers such as (7, 7)",
    "int4": "four integers (x0, y0, x1, y1)",
    "int_list": "a list of non-negative integers such as [0, 5]",
    "float_list": "a list of numbers such as [0.5, 4]",
    "intervals": "a list of [start, end] pairs such as [[0, 60], [120, 180]]",
    "border": "copy, TRUE or FALSE",
}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
