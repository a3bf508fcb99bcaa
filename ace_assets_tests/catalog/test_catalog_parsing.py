"""Cell grammar, experiments.csv and analysis_parameters.csv, with the shared templates and hostile rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path, PurePosixPath

import pytest

from ace_assets.catalog.cells import MISSING, CellError, parse_cell
from ace_assets.catalog.experiments import read_experiments
from ace_assets.catalog.parameters import read_parameter_table, resolve_parameters
from ace_assets.catalog.paths import UnsafePathError, normalize_relative_dir
from ace_assets.errors import AceInputError
from ace_assets_tests.helpers.paths import DATA, REPO, TEMPLATES

SHIFTED = DATA / "lab_templates_shifted"  # the lab templates as distributed
EMBEDDED = REPO / "data_catalog"
HEADER = (
    "line number,id,date (YYMMDD),Box Calcium Folder ID,calcium imaging directory,"
    "Box ephys folder ID,ephys directory,rat weight (kg),systemic drug,"
    "systemic dose (% or mg/kg/min),systemic drug concentration (mg/mL),"
    "total systemic time (min),emg channel,events filename,LFP and EEG CSCs,comments"
)


def write(tmp_path: Path, text: str, name: str = "experiments.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", MISSING),
        ("  ", MISSING),
        ("None", None),
        ("NA", None),
        ("TRUE", True),
        ("false", False),
        ("7", 7),
        ("-0.5", -0.5),
        ("1e-3", 1e-3),
        ("(7, 7)", (7, 7)),
        ("[0, 5]", [0, 5]),
        ("[[0, 60], [120, 180.5]]", [[0, 60], [120, 180.5]]),
        ("oasis", "oasis"),
        ("copy", "copy"),
    ],
)
def test_cell_grammar(text: str, expected: object) -> None:
    assert parse_cell(text) == expected


@pytest.mark.parametrize(
    "text", ["(7, 7", "(__import__('os'), 1)", "[1, 'a']", "(1, nan)", "{1: 2}"]
)
def test_cell_grammar_rejects_code_and_garbage(text: str) -> None:
    with pytest.raises(CellError):
        parse_cell(text)


def test_directory_normalisation() -> None:
    assert normalize_relative_dir(r"raw\rat1\day1") == PurePosixPath("raw/rat1/day1")
    assert normalize_relative_dir("raw/./rat1/../rat2/") == PurePosixPath("raw/rat2")
    for bad in ["../../etc", "/mnt/server/rat", r"C:\data\rat", r"\\server\share\rat", "a/../../b"]:
        with pytest.raises(UnsafePathError):
            normalize_relative_dir(bad)


def test_shared_experiments_template_row_is_reported_as_shifted() -> None:
    catalog = read_experiments(SHIFTED / "experiments_template.csv")
    assert catalog.experiments == {}
    (problem,) = [p for p in catalog.problems if p.severity == "error"]
    assert problem.row == 2 and problem.line_number == 1
    assert "17 fields" in problem.message and "16" in problem.message


def test_shared_parameters_template_row_is_reported_as_shifted() -> None:
    table = read_parameter_table(SHIFTED / "analysis_parameters_template.csv")
    assert 1 not in table.rows
    with pytest.raises(AceInputError, match=r"row 2, line number 1: row has 52 fields"):
        resolve_parameters(table, 1)


def test_corrected_experiments_template_row_is_read_into_its_columns() -> None:
    catalog = read_experiments(TEMPLATES / "experiments_template.csv")
    assert not [p for p in catalog.problems if p.severity == "error"], catalog.problems
    row = catalog.experiments[1]
    assert row.calcium_dir == PurePosixPath(
        "relative/path/to/miniscope/data/ExampleRat/2024_01_01/12_00_00"
    )
    assert row.ephys_dir == PurePosixPath(
        "relative/path/to/ephys/data/ExampleRat/2024-01-01_12-00-00"
    )
    assert row.weight_kg == 0.5 and row.emg_channel == "EMG"  # the .ncs name, as a channel
    assert row.events_filename == "Events.nev" and row.channels[-1] == "EMG"
    assert row.comments is not None and row.comments.startswith("Example baseline recording")


def test_corrected_parameters_template_row_resolves() -> None:
    table = read_parameter_table(TEMPLATES / "analysis_parameters_template.csv")
    params = resolve_parameters(table, 1)
    assert params["gSig"] == (7, 7) and params["border_nan"] == "copy"
    assert params["ca_ephys_burst_suppression_video_num"] is None  # the comment is a comment


def test_embedded_demo_catalog() -> None:
    catalog = read_experiments(EMBEDDED / "experiments.csv")
    assert sorted(catalog.experiments) == [1, 2, 3, 4, 5, 6]
    one = catalog.experiments[1]
    assert one.calcium_dir == PurePosixPath("miniscope/DemoRat/2024_01_01/12_00_00")
    assert one.ephys_dir == PurePosixPath("ephys/DemoRat/2024-01-01_12-00-00")
    assert one.date == dt.date(2024, 1, 1)  # arrived as the float 240101.0
    assert one.channels == ("PFCLFPvsCBEEG", "PFCEEGvsCBEEG", "EMG")
    assert one.extra == {"surgeon": "AB"}
    assert not catalog.experiments[2].has_ephys and not catalog.experiments[3].has_calcium
    (template,) = [p for p in catalog.problems if p.severity == "error"]
    assert template.row == 2 and "'example' is not a line number" in template.message
    assert any(p.column == "surgeon" and p.severity == "warning" for p in catalog.problems)


def test_hostile_rows_are_reported_and_good_rows_kept(tmp_path: Path) -> None:
    rows = [
        "1,RatA,240101,,ca\\a,,NA,0.5,NA,NA,NA,NA,NA,NA,NA,good",
        ",,,,,,,,,,,,,,,",
        "2,RatB,240102,,../../etc,,NA,0.5,NA,NA,NA,NA,NA,NA,NA,escapes",
        "3,RatC,240103,,C:\\data\\rat,,NA,0.5,NA,NA,NA,NA,NA,NA,NA,windows absolute",
        "4,RatD,240104,,/mnt/other/rat,,NA,0.5,NA,NA,NA,NA,NA,NA,NA,absolute",
        "2.5,RatE,240105,,ca/e,,NA,0.5,NA,NA,NA,NA,NA,NA,NA,not an integer",
        "5,RatF,240106,,ca/f,,NA,0.5,NA,NA,NA,NA,NA,NA,NA,dup",
        "5,RatG,240107,,ca/g,,NA,0.5,NA,NA,NA,NA,NA,NA,NA,dup",
        "6,RatH,notadate,,ca/h,,NA,heavy,NA,NA,NA,NA,NA,NA,NA,warnings only",
    ]
    catalog = read_experiments(write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n"))
    assert sorted(catalog.experiments) == [1, 6]
    assert catalog.experiments[6].date is None and catalog.experiments[6].weight_kg is None
    errors = {(p.row, p.column) for p in catalog.problems if p.severity == "error"}
    assert (4, "calcium imaging directory") in errors  # ../..
    assert (5, "calcium imaging directory") in errors  # C:\
    assert (6, "calcium imaging directory") in errors  # /mnt
    assert (7, "line number") in errors  # 2.5
    assert (8, "line number") in errors and (9, "line number") in errors  # duplicate 5
    dup = next(p for p in catalog.problems if p.row == 8)
    assert "rows 8, 9" in dup.message and dup.line_number == 5


def test_missing_file_and_missing_key_column(tmp_path: Path) -> None:
    with pytest.raises(AceInputError, match="nowhere.csv: file not found"):
        read_experiments(tmp_path / "nowhere.csv")
    path = write(tmp_path, "id,date (YYMMDD)\nRatA,240101\n")
    with pytest.raises(
        AceInputError, match=r"row 1, column 'line number': no 'line number' column"
    ):
        read_experiments(path)


PARAM_HEADER = (
    "line number,id,gSig,max_shifts,K,pw_rigid,crop,min_pnr,control periods (s),my_note,gsiz"
)


def test_parameters_defaults_csv_run_config_precedence(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        PARAM_HEADER
        + '\n1,RatA,"(5, 5)",,None,FALSE,"(0, 0, 100, 90)",12,"[[0, 10]]",hello,"(21, 21)"\n',
        "analysis_parameters.csv",
    )
    table = read_parameter_table(path)
    params = resolve_parameters(table, 1, {"min_pnr": "15", "max_shifts": "(4, 6)"})
    assert params["gSig"] == (5, 5) and params.sources["gSig"] == "csv"
    assert params["max_shifts"] == (4, 6) and params.sources["max_shifts"] == "run_config"
    assert params["min_pnr"] == 15.0 and params.sources["min_pnr"] == "run_config"
    assert params["K"] is None and params.sources["K"] == "csv"
    assert params["pw_rigid"] is False
    assert params["crop_coords"] == (0, 0, 100, 90)  # 'crop' is a known alias
    assert params["gSiz"] == (21, 21)  # case-insensitive header match
    assert params["control periods (s)"] == [[0.0, 10.0]]
    assert params["gSig_filt"] == (7, 7) and params.sources["gSig_filt"] == "default"
    assert params.unknown == {"my_note": "hello"}
    assert any(p.column == "my_note" for p in table.problems)
    # a line without a row gets defaults
    assert resolve_parameters(table, 9).sources["gSig"] == "default"


@pytest.mark.parametrize(
    ("cell", "column"),
    [('"(5, 5"', "gSig"), ("maybe", "pw_rigid"), ('"(1, 2, 3)"', "max_shifts"), ("abc", "min_pnr")],
)
def test_unparsable_parameter_cell_names_file_line_and_column(
    tmp_path: Path, cell: str, column: str
) -> None:
    path = write(tmp_path, f"line number,{column}\n7,{cell}\n", "analysis_parameters.csv")
    with pytest.raises(AceInputError) as info:
        resolve_parameters(read_parameter_table(path), 7)
    message = str(info.value)
    assert "analysis_parameters.csv" in message and "row 2" in message
    assert "line number 7" in message and f"column '{column}'" in message


def test_unknown_run_config_parameter_suggests_spelling() -> None:
    with pytest.raises(AceInputError, match="did you mean 'gSig'"):
        resolve_parameters(None, 1, {"gSigg": "(3, 3)"})
