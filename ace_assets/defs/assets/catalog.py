"""Catalog assets: experiments (registers partitions) and per-line analysis parameters."""

import hashlib
import json
from pathlib import Path

import dagster as dg
import pandas as pd

from ace_assets.catalog.csv_table import RowProblem
from ace_assets.catalog.experiments import read_experiments
from ace_assets.catalog.parameter_specs import SPECS
from ace_assets.catalog.parameters import (
    LineParameters,
    ParameterTable,
    read_parameter_table,
    resolve_parameters,
)
from ace_assets.catalog.periods import COLUMN_OF, LinePeriods, line_periods, period_rows
from ace_assets.defs.checks import CHECK_DESCRIPTIONS, check_result
from ace_assets.defs.failures import input_errors_as_failures
from ace_assets.defs.manifests import write_manifest
from ace_assets.defs.partitions import LINE_PARTITIONS_NAME, line_of, line_partitions
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.results import Parameters, Result, results_asset, staged
from ace_assets.errors import AceInputError
from ace_assets.io.csv_export import write_csv

CATALOG_GROUP = "catalog"

_EXPERIMENT_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("line_number", "int", description="key of both CSVs and the partition"),
        dg.TableColumn("row", "int", description="row in experiments.csv (header = 1)"),
        dg.TableColumn("animal_id", "string"),
        dg.TableColumn("date", "date"),
        dg.TableColumn("calcium_dir", "string", description="relative to data_path"),
        dg.TableColumn("ephys_dir", "string", description="relative to data_path"),
        dg.TableColumn("weight_kg", "float"),
        dg.TableColumn("systemic_drug", "string"),
        dg.TableColumn("emg_channel", "string"),
        dg.TableColumn("events_filename", "string"),
        dg.TableColumn("channels", "string", description="';'-separated .ncs names"),
        dg.TableColumn("comments", "string"),
        dg.TableColumn(
            "problems", "string", description="why the line is not processed; empty when it is"
        ),
    ]
)
#: shown beside the check in the UI
LINES_IN_CATALOG = (
    "Every line partition still has its row in experiments.csv. A partition whose row was "
    "deleted or renumbered keeps its old results but is never processed again; it is listed "
    "here, not deleted. Warning only."
)
_PROBLEM_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("row", "int"),
        dg.TableColumn("line_number", "int"),
        dg.TableColumn("column", "string"),
        dg.TableColumn("severity", "string"),
        dg.TableColumn("message", "string"),
    ]
)


def problems_table(problems: list[RowProblem]) -> dg.MetadataValue:
    records = [
        dg.TableRecord(
            {
                "row": p.row,
                "line_number": p.line_number,
                "column": p.column or "",
                "severity": p.severity,
                "message": p.message,
            }
        )
        for p in problems
    ]
    return dg.MetadataValue.table(records=records, schema=_PROBLEM_SCHEMA)


@results_asset(
    group_name=CATALOG_GROUP,
    kinds={"csv", "pandas"},
    check_specs=[
        dg.AssetCheckSpec(
            "rows_valid", asset="experiments", description=CHECK_DESCRIPTIONS["rows_valid"]
        ),
        dg.AssetCheckSpec("lines_in_catalog", asset="experiments", description=LINES_IN_CATALOG),
    ],
)
def experiments(context: dg.AssetExecutionContext, paths: PathsResource):
    """experiments.csv, validated; registers every line number as a partition.

    A row with problems is still a line: it is listed with its problems (metadata and
    the ``rows_valid`` check) and its ``session_files`` fails with them, so the
    scientist sees the line and what to fix. Partitions are only ever added, so
    results of removed rows stay browsable; such partitions are named by the
    ``lines_in_catalog`` check.
    """
    with input_errors_as_failures():
        catalog = read_experiments(paths.experiments_csv, paths.path_rules)
    frame = catalog.to_frame()
    keys = [str(n) for n in catalog.lines]
    existing = set(context.instance.get_dynamic_partitions(LINE_PARTITIONS_NAME))
    new_keys = [k for k in keys if k not in existing]
    if new_keys:
        context.instance.add_dynamic_partitions(LINE_PARTITIONS_NAME, new_keys)
    # a key typed into the UI need not be a number; it must not break the listing
    orphaned = sorted(existing - set(keys), key=lambda k: (not k.isdigit(), k.zfill(20)))

    with staged(context, paths) as out:
        write_csv(frame, out / "experiments.csv")
        write_manifest(
            out,
            {
                "file": catalog.file,
                "path_map": paths.path_rules.as_dict(),
                "experiments": {str(k): e.as_row() for k, e in catalog.lines.items()},
                "invalid_lines": [str(k) for k in catalog.invalid],
                "partitions_without_row": orphaned,
                "problems": [p.as_dict() for p in catalog.problems],
                "unknown_columns": catalog.unknown_columns,
            },
        )
    errors = [p for p in catalog.problems if p.severity == "error"]
    invalid = ", ".join(str(n) for n in catalog.invalid) or "none"
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(frame),
            "dagster/column_schema": _EXPERIMENT_SCHEMA,
            "source": dg.MetadataValue.path(str(paths.experiments_csv)),
            "table": dg.MetadataValue.md(_markdown_table(frame)),
            "lines": dg.MetadataValue.text(", ".join(keys)),
            "lines_with_problems": dg.MetadataValue.text(invalid),
            "new_partitions": dg.MetadataValue.text(", ".join(new_keys) or "none"),
            "partitions_without_row": dg.MetadataValue.text(", ".join(orphaned) or "none"),
            "calcium_lines": sum(e.has_calcium for e in catalog.experiments.values()),
            "ephys_lines": sum(e.has_ephys for e in catalog.experiments.values()),
            "rows_rejected": len({p.row for p in errors}),
            "problems": problems_table(catalog.problems),
            "unknown_columns": dg.MetadataValue.text(", ".join(catalog.unknown_columns) or "none"),
        },
        value=Result.of(context, paths),
    )
    yield check_result(
        "rows_valid",
        passed=not errors,
        severity=dg.AssetCheckSeverity.WARN,
        measured=f"{len({p.row for p in errors})} rows rejected (lines with problems: {invalid})",
        threshold="none",
        setting="the rows named in 'problems': fix them in experiments.csv",
        metadata={
            "rows_rejected": len({p.row for p in errors}),
            "lines_with_problems": dg.MetadataValue.text(invalid),
            "problems": dg.MetadataValue.md(
                "\n".join(f"- {p}" for p in catalog.problems) or "no problems"
            ),
        },
    )
    yield check_result(
        "lines_in_catalog",
        passed=not orphaned,
        severity=dg.AssetCheckSeverity.WARN,
        measured=f"{len(orphaned)} partitions without a row ({', '.join(orphaned) or 'none'})",
        threshold="none",
        setting=(
            "the 'line number' column of experiments.csv: restore the row, or delete the "
            "partition key (Dagster UI: the line_number partitions of any line asset)"
        ),
        metadata={"partitions_without_row": dg.MetadataValue.text(", ".join(orphaned) or "none")},
    )


class ParameterConfig(dg.Config):
    """Run-config overrides, written in the CSV cell grammar, e.g. {"gSig": "(5, 5)"}."""

    overrides: dict[str, str] = {}


@results_asset(
    group_name=CATALOG_GROUP,
    partitions_def=line_partitions,
    deps=[experiments],
    kinds={"json"},
)
def analysis_parameters(
    context: dg.AssetExecutionContext, config: ParameterConfig, paths: PathsResource
) -> dg.MaterializeResult:
    """The typed settings of one line: defaults < analysis_parameters.csv row < run config."""
    line = line_of(context)
    csv_path = paths.parameters_csv
    with input_errors_as_failures():
        experiment_row(paths, line)  # the line must be a valid experiment
        table = read_parameter_table(csv_path) if csv_path.is_file() else None
        params = resolve_parameters(table, line, dict(config.overrides))
        periods = parsed_periods(params, table, csv_path, line)
    notes = []
    if table is None:
        notes.append(f"{csv_path} not found: every setting is the default")
    elif line not in table.rows:
        notes.append(f"line {line} has no row in {csv_path}: every setting is the default")
    data = params.to_json()
    data["notes"] = notes
    with staged(context, paths) as out:
        write_manifest(out, data)
    changed = {k: v for k, v in params.values.items() if params.sources[k] != "default"}
    rows = "\n".join(
        f"| {k} | `{v}` | {params.sources[k]} | {SPECS[k].group} |"
        for k, v in sorted(changed.items())
    )
    return dg.MaterializeResult(
        metadata={
            "settings_from_csv": sum(s == "csv" for s in params.sources.values()),
            "settings_from_run_config": sum(s == "run_config" for s in params.sources.values()),
            "non_default_settings": dg.MetadataValue.md(
                "| parameter | value | source | stage |\n|---|---|---|---|\n" + rows
                if rows
                else "all defaults"
            ),
            "unknown_columns": dg.MetadataValue.json(params.unknown),
            "problems": problems_table(params.problems),
            "notes": dg.MetadataValue.text("; ".join(notes) or "none"),
            "periods": periods_table(periods),
        },
        data_version=dg.DataVersion(parameters_digest(data["values"])),
        value=Parameters.of(context, paths),
    )


_PERIOD_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("period", "string", description="baseline, high_slow_wave or control"),
        dg.TableColumn("column", "string", description="analysis_parameters.csv column"),
        dg.TableColumn("start_s", "float", description="session clock: s after zero time"),
        dg.TableColumn("end_s", "float", description="exclusive"),
        dg.TableColumn("duration_s", "float"),
        dg.TableColumn("ephys_start_s", "float", description="ephys clock: start + zero time"),
        dg.TableColumn("ephys_end_s", "float"),
    ]
)


def parsed_periods(
    params: LineParameters, table: ParameterTable | None, csv_path: Path, line: int
) -> LinePeriods:
    """The line's periods, parsed here so a bad cell fails before any processing.

    The error names the row of analysis_parameters.csv, or the run config when the bad
    value was an override there.
    """
    row = table.rows[line][0] if table is not None and line in table.rows else None
    try:
        return line_periods(params.values, file=csv_path, row=row, line=line)
    except AceInputError as exc:
        if params.sources.get(exc.column or "") != "run_config":
            raise
        raise AceInputError(
            f"{exc.reason} (set in the run config: ops.analysis_parameters.config.overrides)",
            file="run config",
            line=line,
            column=exc.column,
        ) from None


def periods_table(periods: LinePeriods) -> dg.MetadataValue:
    """The periods as the UI shows them: one row per interval, on both clocks."""
    records = [dg.TableRecord(r) for r in period_rows(periods)]
    if not records:
        return dg.MetadataValue.md(
            "no periods: set them in "
            + ", ".join(f"'{c}'" for c in COLUMN_OF.values())
            + f" (zero time {periods.zero_time_s:g} s)"
        )
    return dg.MetadataValue.table(records=records, schema=_PERIOD_SCHEMA)


def line_parameters(paths: PathsResource, line: int) -> Parameters:
    """The line's ``analysis_parameters``, where an asset does not take them as an input."""
    return Parameters.at(paths, analysis_parameters, line)


def experiment_row(paths: PathsResource, line: int) -> tuple[dict, str]:
    """The line's row and the file it came from, or every reason the row was refused.

    Read from experiments.csv itself, not from the last ``experiments`` run: a run the
    sensor requests for a line added tonight must not see yesterday's catalog.
    """
    catalog = read_experiments(paths.experiments_csv, paths.path_rules)
    experiment = catalog.experiments.get(line)
    if experiment is None:
        invalid = catalog.invalid.get(line)
        if invalid is not None:
            first, *rest = invalid.problems
            also = "".join(f"; also row {p.row}, column '{p.column}': {p.message}" for p in rest)
            raise AceInputError(
                f"{first.message}{also}. The line is not processed until its row in "
                "experiments.csv is corrected",
                file=first.file,
                row=first.row,
                line=line,
                column=first.column,
            )
        known = ", ".join(str(n) for n in sorted(catalog.lines)) or "none"
        raise AceInputError(
            f"line {line} is not in experiments.csv (its lines: {known}); partition keys come "
            "from the 'line number' column: add the row there, or delete this partition key",
            file=catalog.file,
            line=line,
            column="line number",
        )
    return experiment.as_row(), catalog.file


def parameters_digest(values: dict) -> str:
    """Stable hash of resolved settings: equal settings, equal data version."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _markdown_table(frame) -> str:
    cols = ["line_number", "animal_id", "date", "calcium_dir", "ephys_dir", "channels", "problems"]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = "\n".join(
        "| " + " | ".join("" if v is None or pd.isna(v) else str(v) for v in rec) + " |"
        for rec in frame[cols].itertuples(index=False)
    )
    return head + body
