"""experiments.csv: one validated record per recording session.

A row that cannot be trusted (unsafe path, shifted cells, a duplicated key) is
reported with its row, line number and column; every other row is still usable,
so one typo never blocks a night of processing. A row whose line number is valid
stays a line even when the rest of it is not (:attr:`ExperimentCatalog.invalid`):
the scientist sees it, with what is wrong, where the line's results would be.
Only a row without a usable line number is left out, as there is no key to show
it under.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from ace_assets.catalog.cells import NA_TOKENS, preview
from ace_assets.catalog.csv_table import RawRow, RowProblem, normalize_header, read_table
from ace_assets.catalog.line_numbers import keyed_rows
from ace_assets.catalog.path_map import SETTING, PathMap, is_absolute, split_path
from ace_assets.catalog.paths import UnsafePathError, check_name, normalize_relative_dir

#: header text labs use -> attribute name of :class:`Experiment`
COLUMNS: dict[str, str] = {
    "line number": "line_number",
    "id": "animal_id",
    "date (YYMMDD)": "date",
    "Box Calcium Folder ID": "box_calcium_folder_id",
    "calcium imaging directory": "calcium_dir",
    "Box ephys folder ID": "box_ephys_folder_id",
    "ephys directory": "ephys_dir",
    "rat weight (kg)": "weight_kg",
    "systemic drug": "systemic_drug",
    "systemic dose (% or mg/kg/min)": "systemic_dose",
    "systemic drug concentration (mg/mL)": "systemic_drug_concentration",
    "total systemic time (min)": "total_systemic_time_min",
    "emg channel": "emg_channel",
    "events filename": "events_filename",
    "LFP and EEG CSCs": "channels",
    "comments": "comments",
}
_BY_KEY = {normalize_header(k): k for k in COLUMNS}
#: attribute -> header of the folder columns, for messages about a line's raw files
FOLDER_COLUMNS: dict[str, str] = {
    attr: header for header, attr in COLUMNS.items() if attr in ("calcium_dir", "ephys_dir")
}


@dataclass(frozen=True)
class Experiment:
    line_number: int
    row: int
    animal_id: str | None = None
    date: dt.date | None = None
    calcium_dir: PurePosixPath | None = None
    ephys_dir: PurePosixPath | None = None
    weight_kg: float | None = None
    systemic_drug: str | None = None
    systemic_dose: str | None = None
    systemic_drug_concentration: str | None = None
    total_systemic_time_min: str | None = None
    emg_channel: str | None = None
    events_filename: str | None = None
    channels: tuple[str, ...] = ()
    comments: str | None = None
    box_calcium_folder_id: str | None = None
    box_ephys_folder_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: further calcium folders of a session the acquisition software split (``a;b`` in the
    #: cell): recorded after ``calcium_dir``, processed as one movie
    calcium_continued: tuple[PurePosixPath, ...] = ()
    #: the errors that keep this line from being processed (empty: the line is usable)
    problems: tuple[RowProblem, ...] = ()

    @property
    def modalities(self) -> tuple[str, ...]:
        """The recordings this row lists: "miniscope", "ephys"."""
        return tuple(
            m for m, has in (("miniscope", self.has_calcium), ("ephys", self.has_ephys)) if has
        )

    @property
    def calcium_dirs(self) -> tuple[PurePosixPath, ...]:
        """Every calcium folder of the line, in the order the cell lists them."""
        return (self.calcium_dir, *self.calcium_continued) if self.calcium_dir else ()

    @property
    def has_calcium(self) -> bool:
        return self.calcium_dir is not None

    @property
    def has_ephys(self) -> bool:
        return self.ephys_dir is not None

    def as_row(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("calcium_dir", "ephys_dir"):
            out[key] = str(out[key]) if out[key] is not None else None
        if self.calcium_continued:  # one cell, as the catalog writes it: see row_folders
            out["calcium_dir"] = ";".join(str(d) for d in self.calcium_dirs)
        del out["calcium_continued"]
        out["date"] = self.date.isoformat() if self.date else None
        out["channels"] = ";".join(self.channels)
        out["extra"] = dict(self.extra)
        out["problems"] = problem_text(self.problems)
        return out


def row_folders(row: dict[str, Any], column: str) -> list[str]:
    """The folders of a stored row's folder column (several calcium folders are ';'-joined)."""
    cell = row.get(column)
    return [part for part in str(cell).split(";") if part] if cell else []


def problem_text(problems: tuple[RowProblem, ...] | list[RowProblem]) -> str:
    """'column: message' per problem, one cell of a table."""
    return "; ".join(f"{p.column}: {p.message}" if p.column else p.message for p in problems)


@dataclass
class ExperimentCatalog:
    file: str
    #: usable lines: every cell valid
    experiments: dict[int, Experiment]
    problems: list[RowProblem]
    unknown_columns: list[str]
    #: lines whose row has errors: kept, with what could be read and ``problems`` set
    invalid: dict[int, Experiment] = field(default_factory=dict)

    @property
    def lines(self) -> dict[int, Experiment]:
        """Every line with a valid line number, usable or not, in line order."""
        return dict(sorted({**self.experiments, **self.invalid}.items()))

    def to_frame(self) -> pd.DataFrame:
        rows = [e.as_row() for e in self.lines.values()]
        columns = [c for c in Experiment.__dataclass_fields__ if c != "calcium_continued"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.drop(columns=["extra"])


def read_experiments(path: str | Path, path_map: PathMap | None = None) -> ExperimentCatalog:
    """Parse and validate experiments.csv; raises only when the file itself is unusable.

    ``path_map`` rewrites folder cells written on another machine (see
    :mod:`ace_assets.catalog.path_map`) before they are checked against data_path.
    """
    table = read_table(path)
    known: dict[str, str] = {}
    unknown: list[str] = []
    for header in table.header:
        canonical = _BY_KEY.get(normalize_header(header))
        if canonical:
            known[header] = COLUMNS[canonical]
        elif header:
            unknown.append(header)
    for header in unknown:
        guess = difflib.get_close_matches(header, list(COLUMNS), n=1, cutoff=0.75)
        hint = f"; did you mean '{guess[0]}'?" if guess else ""
        table.problems.append(
            RowProblem(
                table.file, 1, None, header, f"unknown column kept as extra{hint}", "warning"
            )
        )
    records: dict[int, Experiment] = {}
    for line, raw in keyed_rows(table).items():
        records[line] = _parse_row(
            table.file, line, raw, known, unknown, table.problems, path_map or PathMap()
        )
    errors: dict[int, list[RowProblem]] = {}
    for p in table.problems:
        if p.severity == "error" and p.line_number is not None:
            errors.setdefault(p.line_number, []).append(p)
    experiments = {n: e for n, e in records.items() if n not in errors}
    invalid: dict[int, Experiment] = {}
    for line, problems in sorted(errors.items()):
        # a row refused whole (shifted cells, a NUL byte, a duplicated key) is still its line
        base = records.get(line) or Experiment(line_number=line, row=problems[0].row)
        invalid[line] = replace(base, problems=tuple(problems))
    return ExperimentCatalog(table.file, experiments, table.problems, unknown, invalid)


def _text(value: str) -> str | None:
    s = value.strip()
    return None if s == "" or s.lower() in NA_TOKENS else s


def _parse_row(
    file: str,
    line: int,
    raw: RawRow,
    known: dict[str, str],
    unknown: list[str],
    problems: list[RowProblem],
    path_map: PathMap,
) -> Experiment:
    values: dict[str, Any] = {}
    errors: list[RowProblem] = []
    refused: set[str] = set()  # folder cells that were given but refused

    def problem(column: str, message: str, severity: str = "error") -> None:
        (errors if severity == "error" else problems).append(
            RowProblem(file, raw.row, line, column, message, severity)
        )

    for header, attr in known.items():
        text = _text(raw.cells.get(header, ""))
        if attr == "line_number" or text is None:
            continue
        if attr in ("calcium_dir", "ephys_dir"):
            try:
                if attr == "calcium_dir":
                    first, *more = folder_cells(text, path_map)
                    values[attr] = first
                    if more:
                        values["calcium_continued"] = tuple(more)
                else:
                    values[attr] = folder_cell(text, path_map)
            except UnsafePathError as exc:
                refused.add(attr)
                problem(header, str(exc))
        elif attr == "date":
            values[attr] = _parse_date(text, lambda m, h=header: problem(h, m, "warning"))
        elif attr == "weight_kg":
            try:
                values[attr] = float(text)
            except ValueError:
                problem(header, f"'{preview(text)}' is not a number (kg)", "warning")
        elif attr == "channels":
            names = [_strip_ext(c, ".ncs") for c in text.replace(",", ";").split(";")]
            values[attr] = tuple(n for n in names if n)
        elif attr == "emg_channel":
            values[attr] = _strip_ext(text, ".ncs")
        elif attr == "events_filename":
            values[attr] = text if text.lower().endswith(".nev") else f"{text}.nev"
        else:
            values[attr] = text
    for name in ("emg_channel", "events_filename", "channels"):
        cell = values.get(name)
        if cell and "/" in str(cell).replace("\\", "/"):
            problem(
                _header_for(known, name), f"'{preview(str(cell))}' must be a file name, not a path"
            )
        elif cell:
            names = f"{cell}.ncs" if name == "emg_channel" else cell
            _check_file_names(names, lambda m, n=name: problem(_header_for(known, n), m))
    if "ephys_dir" in values and not values.get("channels"):
        problem(
            _header_for(known, "channels"),
            "no channels are listed: every .ncs file in the ephys directory is used; list "
            "the channels (e.g. PFCvsCBEEG;EMG) to process only those",
            "warning",
        )
    ephys_given = "ephys_dir" in values or "ephys_dir" in refused
    if not ephys_given and (values.get("channels") or values.get("events_filename")):
        problem(
            _header_for(known, "ephys_dir"),
            "channels or events are listed but there is no ephys directory; ephys is ignored",
            "warning",
        )
    problems.extend(errors)
    extra = {h: raw.cells.get(h, "") for h in unknown if raw.cells.get(h, "").strip()}
    return Experiment(line_number=line, row=raw.row, extra=extra, **values)


def folder_cells(text: str, path_map: PathMap) -> tuple[PurePosixPath, ...]:
    """The calcium column: one folder, or the parts of a session split across folders
    (``a;b``: the acquisition software restarted). Each part is checked as one folder."""
    parts = [part for p in text.split(";") if (part := _text(p))] or [text]
    folders = tuple(folder_cell(part, path_map) for part in parts)
    repeated = sorted({str(f) for f in folders if folders.count(f) > 1})
    if repeated:
        raise UnsafePathError(
            f"'{preview(text)}' lists {', '.join(repeated)} more than once; list each folder "
            "of the session once, in recording order"
        )
    return folders


def folder_cell(text: str, path_map: PathMap) -> PurePosixPath:
    """A folder cell as a data_path-relative path, after ``path_map``; refusals say what to do."""
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if len(parts) > 1:
        for part in parts:
            folder_cell(part, path_map)  # a bad folder is reported as such first
        raise UnsafePathError(
            f"'{preview(text)}' lists {len(parts)} folders joined by ';'; an ephys line is "
            "one Neuralynx recording: give each folder its own row and line number"
        )
    text = parts[0] if parts else text
    mapped = path_map.apply(text)
    if mapped is not None:
        try:
            return normalize_relative_dir(mapped.text)
        except UnsafePathError as exc:
            raise UnsafePathError(
                f"path_map rule {mapped.rule} turns '{preview(text)}' into: {exc}; correct "
                f"the rule in {SETTING}, or the cell"
            ) from None
    try:
        return normalize_relative_dir(text)
    except UnsafePathError as exc:
        if not is_absolute(text):
            raise
        root, components = split_path(text)
        head = components[:2]
        example = root + "/".join(head) if root else "\\\\".join(head)
        raise UnsafePathError(
            f"{exc}, or map its prefix to a folder under data_path with a rule in {SETTING}, "
            f'e.g. {{"{example}": "."}}'
        ) from None


def _check_file_names(cell: str | tuple[str, ...], fail: Any) -> None:
    """File-name cells become paths under the ephys folder: each must be a name a disk holds."""
    names = [cell] if isinstance(cell, str) else [f"{c}.ncs" for c in cell]
    for name in names:
        try:
            check_name(name)
        except UnsafePathError as exc:
            fail(str(exc))
            return


def _header_for(known: dict[str, str], attr: str) -> str:
    """The column as this file spells it, else as the template does."""
    spelled = next((h for h, a in known.items() if a == attr), None)
    return spelled or next((h for h, a in COLUMNS.items() if a == attr), attr)


def _strip_ext(name: str, ext: str) -> str:
    name = name.strip()
    return name[: -len(ext)] if name.lower().endswith(ext) else name


def _parse_date(text: str, warn: Any) -> dt.date | None:
    try:
        number = float(text)
        digits = f"{int(number):06d}"
        if not number.is_integer() or len(digits) != 6:
            raise ValueError
        return dt.date(2000 + int(digits[:2]), int(digits[2:4]), int(digits[4:]))
    except (ValueError, OverflowError):
        warn(f"'{preview(text)}' is not a YYMMDD date; kept without a date")
        return None
