"""Check a project's catalogs, and the files each line points at, without Dagster.

What a lab runs after editing experiments.csv, or before pointing the server at an
existing catalog: every line with what is wrong with it, in one table, and an exit code
a script can test. The same readers as the pipeline are used, so a line the checker
passes is a line the pipeline accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ace_assets.catalog.cells import preview
from ace_assets.catalog.csv_table import RowProblem
from ace_assets.catalog.experiments import (
    FOLDER_COLUMNS,
    Experiment,
    ExperimentCatalog,
    read_experiments,
)
from ace_assets.catalog.parameters import ParameterTable, read_parameter_table, resolve_parameters
from ace_assets.catalog.path_map import PathMap
from ace_assets.catalog.paths import UnsafePathError
from ace_assets.catalog.periods import line_periods
from ace_assets.errors import AceInputError

_MODALITY = {"calcium_dir": "miniscope", "ephys_dir": "ephys"}


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a line: where (a column, or 'files') and what."""

    where: str
    message: str
    severity: str  # "error" | "warning"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass
class LineReport:
    line: int | None  # None: a row without a usable line number
    row: int
    modalities: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.line is None:
            return "skipped"
        severities = {f.severity for f in self.findings}
        return "error" if "error" in severities else "warning" if severities else "ok"


@dataclass
class CheckReport:
    experiments_csv: Path
    parameters_csv: Path | None
    data_path: Path | None
    path_map: PathMap
    lines: list[LineReport]
    file_problems: list[Finding]  # the header and other problems of no particular line

    @property
    def failed(self) -> bool:
        return any(r.status == "error" for r in self.lines) or any(
            f.severity == "error" for f in self.file_problems
        )


def check_project(
    project: str | Path, data: str | Path | None = None, path_map: PathMap | None = None
) -> CheckReport:
    """Validate experiments.csv and analysis_parameters.csv of ``project``.

    With ``data``, every usable line's folders and files are resolved as
    ``session_files`` would resolve them. Raises AceInputError only when
    experiments.csv itself cannot be read.
    """
    project = Path(project).expanduser()
    path_map = path_map or PathMap()
    if data is not None and not Path(data).expanduser().is_dir():
        raise AceInputError(
            f"data_path {data} is not a folder; give the root of the raw recordings",
            column="--data",
        )
    catalog = read_experiments(project / "experiments.csv", path_map)
    params_csv = project / "analysis_parameters.csv"
    file_problems: list[Finding] = []
    table: ParameterTable | None = None
    if params_csv.is_file():
        try:
            table = read_parameter_table(params_csv)
        except AceInputError as exc:
            file_problems.append(Finding(params_csv.name, exc.reason, "error"))
    reports = {n: _line_report(catalog, e) for n, e in catalog.lines.items()}
    skipped: dict[int, LineReport] = {}
    for p in catalog.problems:
        if p.line_number is None and p.row > 1:
            entry = skipped.setdefault(p.row, LineReport(None, p.row, ()))
            entry.findings.append(Finding(p.column or "", p.message, p.severity))
        elif p.line_number is None:
            file_problems.append(Finding(_where("experiments.csv", p), p.message, p.severity))
    if table is not None:
        _add_parameter_findings(table, reports, file_problems)
    if data is not None:
        for report in reports.values():
            if report.status != "error" and report.line in catalog.experiments:
                report.findings.extend(_file_findings(Path(data), catalog, report.line))
    lines = sorted(reports.values(), key=lambda r: r.line or 0) + [
        skipped[r] for r in sorted(skipped)
    ]
    return CheckReport(
        project / "experiments.csv",
        params_csv if params_csv.is_file() else None,
        Path(data).expanduser() if data is not None else None,
        path_map,
        lines,
        file_problems,
    )


def _line_report(catalog: ExperimentCatalog, experiment: Experiment) -> LineReport:
    line = experiment.line_number
    mine = [p for p in catalog.problems if p.line_number == line]
    listed = {_MODALITY[a] for a in FOLDER_COLUMNS if getattr(experiment, a) is not None}
    # a folder cell that was refused still says which recording the line has
    listed |= {_MODALITY[a] for a, h in FOLDER_COLUMNS.items() if any(p.column == h for p in mine)}
    modalities = tuple(m for m in ("miniscope", "ephys") if m in listed)
    findings = [Finding(_where("", p), p.message, p.severity) for p in mine]
    return LineReport(line, experiment.row, modalities, findings)


def _where(prefix: str, p: RowProblem) -> str:
    parts = [prefix] if prefix else []
    if p.row and prefix:
        parts.append(f"row {p.row}")
    if p.column:
        parts.append(p.column)
    return ", ".join(parts)


def _add_parameter_findings(
    table: ParameterTable, reports: dict[int, LineReport], file_problems: list[Finding]
) -> None:
    name = Path(table.file).name
    for p in table.problems:
        if p.line_number is None:
            file_problems.append(Finding(_where(name, p), p.message, p.severity))
    for line, report in reports.items():
        try:
            row = table.rows[line][0] if line in table.rows else None
            line_periods(resolve_parameters(table, line), file=table.file, row=row, line=line)
        except AceInputError as exc:
            report.findings.append(
                Finding(f"{name} {exc.column or ''}".strip(), exc.reason, "error")
            )
    for line in sorted(set(table.rows) - set(reports)):
        file_problems.append(
            Finding(
                f"{name}, row {table.rows[line][0]}",
                f"line {line} has parameters but no row in experiments.csv; they are not used",
                "warning",
            )
        )


def _file_findings(data: Path, catalog: ExperimentCatalog, line: int) -> list[Finding]:
    """What ``session_files`` would say about each of the line's folders: an error, or notes."""
    from ace_assets.io.session import resolve_session  # imports the movie readers

    row = catalog.experiments[line].as_row()
    findings: list[Finding] = []
    for attr, header in FOLDER_COLUMNS.items():
        if not row.get(attr):
            continue
        alone = {**row, **{a: None for a in FOLDER_COLUMNS if a != attr}}
        where = f"files ({header})"
        try:
            session = resolve_session(data, alone, catalog.file)
        except AceInputError as exc:
            findings.append(Finding(where, exc.reason, "error"))
            continue
        except (UnsafePathError, OSError, ValueError) as exc:
            text = f"cannot be read ({type(exc).__name__}: {preview(str(exc), 300)})"
            findings.append(Finding(where, text, "error"))
            continue
        found = session.miniscope or session.ephys
        notes = found.notes if found is not None else []
        findings.extend(Finding(where, preview(n, 300), "warning") for n in notes)
    return findings


def render(report: CheckReport) -> str:
    """The report as a fixed-width table with a summary, for a terminal or a log."""
    out = [f"experiments.csv: {report.experiments_csv}"]
    out.append(
        f"analysis_parameters.csv: {report.parameters_csv}"
        if report.parameters_csv
        else "analysis_parameters.csv: not found (every line uses the defaults)"
    )
    out.append(
        f"data_path: {report.data_path}"
        if report.data_path
        else "data_path: not given, files were not checked (add --data DATA_PATH)"
    )
    rules = report.path_map.rules
    out.append(
        "path_map: " + ("; ".join(str(r) for r in rules) if rules else "none (--path-map FILE)")
    )
    for f in report.file_problems:
        out.append(f"{f.severity.upper()} {f}")
    out.append("")
    header = ("line", "row", "modalities", "status", "problems")
    rows = [
        (
            str(r.line) if r.line is not None else "-",
            str(r.row),
            ", ".join(r.modalities) or "-",
            r.status,
            [str(f) if f.severity == "error" else f"(warning) {f}" for f in r.findings],
        )
        for r in report.lines
    ]
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(4)]

    def fmt(cells: tuple[str, ...], text: str) -> str:
        left = "  ".join(
            c.rjust(w) if i < 2 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return f"{left}  {text}".rstrip()

    out.append(fmt(header[:4], header[4]))
    out.append(fmt(tuple("-" * w for w in widths), "-" * len(header[4])))
    for *cells, problems in rows:
        out.append(fmt(tuple(cells), problems[0] if problems else ""))
        out.extend(fmt(("",) * 4, p) for p in problems[1:])
    counts = {s: sum(r.status == s for r in report.lines) for s in ("ok", "warning", "error")}
    skipped = sum(r.status == "skipped" for r in report.lines)
    total = len(report.lines) - skipped
    out.append("")
    out.append(
        f"{total} lines: {counts['ok']} ok, {counts['warning']} with warnings, "
        f"{counts['error']} with errors"
        + (f"; {skipped} row(s) without a line number skipped" if skipped else "")
        + ("." if report.data_path else "; files not checked.")
    )
    return "\n".join(out)
