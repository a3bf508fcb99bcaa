"""Hostile rows beside good ones: each is reported by row and column, the other lines proceed."""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

import pytest

from ace_assets.catalog.cells import CellError, parse_cell
from ace_assets.catalog.csv_table import MAX_CELL_CHARS, read_table
from ace_assets.catalog.experiments import read_experiments
from ace_assets.catalog.parameters import read_parameter_table, resolve_parameters
from ace_assets.catalog.paths import UnsafePathError, normalize_relative_dir, resolve_under
from ace_assets.errors import AceInputError
from ace_assets_tests.helpers.hostile_rows import (
    HOSTILE_EXPERIMENTS,
    add_hostile_experiments,
    append_rows,
)
from ace_assets_tests.helpers.projects import demo_catalog_copy

GOOD_LINES = [1, 2, 3, 4, 5, 6]


@pytest.fixture()
def hostile_project(tmp_path: Path) -> tuple[Path, dict[int, int]]:
    project = demo_catalog_copy(tmp_path / "project")
    return project, add_hostile_experiments(project)


def test_hostile_experiment_rows_are_reported_and_good_lines_kept(hostile_project) -> None:
    project, where = hostile_project
    catalog = read_experiments(project / "experiments.csv")
    assert sorted(catalog.experiments) == GOOD_LINES
    for line, (column, _, expected) in HOSTILE_EXPERIMENTS.items():
        (problem,) = [
            p for p in catalog.problems if p.line_number == line and p.severity == "error"
        ]
        assert (problem.row, problem.column) == (where[line], column), problem
        assert expected in problem.message, problem.message
        assert len(str(problem)) < 600  # the cell is previewed, not copied into the message


def test_a_junk_key_cell_is_previewed_not_copied(tmp_path: Path) -> None:
    path = tmp_path / "experiments.csv"
    path.write_text(f"line number,id\n{'k' * 60_000},RatA\n1,RatB\n")
    catalog = read_experiments(path)
    assert sorted(catalog.experiments) == [1]
    (problem,) = catalog.problems
    assert problem.row == 2 and "60000 characters" in problem.message
    assert len(problem.message) < 200


def test_one_byte_row_does_not_turn_the_file_into_latin1(tmp_path: Path) -> None:
    """Before, one undecodable byte re-read the whole file as latin-1: every 'µ' became 'Âµ'."""
    project = demo_catalog_copy(tmp_path / "project")
    csv_path = project / "experiments.csv"
    csv_path.write_text(csv_path.read_text().replace("Calcium imaging only.", "2 µL; Müller"))
    append_rows(csv_path, 2, {9: ("id", b"\xff\xfe\x81")})
    catalog = read_experiments(csv_path)
    assert catalog.experiments[2].comments == "2 µL; Müller"
    assert 9 not in catalog.experiments
    (problem,) = [p for p in catalog.problems if p.line_number == 9]
    assert problem.column == "id" and "save the CSV as UTF-8" in problem.message


def test_windows_excel_export_is_read_as_cp1252_with_a_warning(tmp_path: Path) -> None:
    """Excel's plain "CSV" on a European PC writes Windows-1252: the rows stay, each is warned."""
    project = demo_catalog_copy(tmp_path / "project")
    csv_path = project / "experiments.csv"
    text = csv_path.read_text().replace("Calcium imaging only.", "2 µL; Müller; 37 °C")
    csv_path.write_bytes(text.encode("cp1252"))
    catalog = read_experiments(csv_path)
    assert sorted(catalog.experiments) == GOOD_LINES
    assert catalog.experiments[2].comments == "2 µL; Müller; 37 °C"
    (warning,) = [p for p in catalog.problems if p.line_number == 2]
    assert warning.severity == "warning" and warning.column == "comments"
    assert "Windows-1252" in warning.message


def test_utf16_file_is_refused_with_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "experiments.csv"
    path.write_bytes("line number,id\n1,a\n".encode("utf-16"))
    with pytest.raises(AceInputError, match="CSV UTF-8"):
        read_table(path)


def test_hostile_parameter_rows_fail_their_line_only(tmp_path: Path) -> None:
    project = demo_catalog_copy(tmp_path / "project")
    hostile = {
        11: ("comments", "x" * 200_000, "200000 characters"),
        13: ("gSig", "(3,\x00 3)", "NUL byte"),
        14: ("method_init", b"corr\x81pnr", "invalid UTF-8"),
    }
    where = append_rows(
        project / "analysis_parameters.csv",
        2,
        {n: (c, v) for n, (c, v, _) in hostile.items()}
        | {12: ("calcium imaging directory", "a/" * 2500)},
    )
    table = read_parameter_table(project / "analysis_parameters.csv")
    for line in GOOD_LINES:
        assert resolve_parameters(table, line).values["gSig"] == (3, 3)
    # the folder columns of the parameters CSV only identify the row: a long one harms nothing
    assert resolve_parameters(table, 12).sources["gSig"] == "csv"
    for line, (column, _, expected) in hostile.items():
        with pytest.raises(AceInputError) as caught:
            resolve_parameters(table, line)
        text = str(caught.value)
        assert f"row {where[line]}" in text and f"column '{column}'" in text, text
        assert expected in text and len(text) < 600


def test_oversized_cell_leaves_the_csv_field_limit_as_it_was(tmp_path: Path) -> None:
    before = csv.field_size_limit()
    path = tmp_path / "t.csv"
    path.write_text(f"line number,big\n1,{'y' * (MAX_CELL_CHARS + 1)}\n2,ok\n")
    table = read_table(path)
    assert [r.cells["big"] for r in table.rows] == ["ok"]
    assert table.problems[0].row == 2 and table.problems[0].column == "big"
    assert csv.field_size_limit() == before


def test_quoted_line_breaks_stay_in_their_cell_and_rows_count_records(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b'line number,comments\r\n1,"a\rb\x0bc\x1cd\ne"\r\n2,plain\r\n')
    table = read_table(path)
    assert [(r.row, r.cells["comments"]) for r in table.rows] == [
        (2, "a\rb\x0bc\x1cd\ne"),
        (3, "plain"),
    ]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("raw/ra\x00t", "NUL byte"),
        ("raw/rat\n1", "control character"),
        ("raw/" + "r" * 256, "NAME_MAX"),
        ("raw/" + "ü" * 128, "256 bytes"),  # two bytes each in UTF-8
        ("r/" * 2049, "PATH_MAX"),
    ],
)
def test_paths_no_file_system_can_hold_are_refused(cell: str, expected: str) -> None:
    with pytest.raises(UnsafePathError, match=expected):
        normalize_relative_dir(cell)


def test_resolve_under_refuses_a_join_longer_than_path_max(tmp_path: Path) -> None:
    relative = PurePosixPath(*["d" * 200] * 21)  # every part fits; the whole does not
    with pytest.raises(UnsafePathError, match="PATH_MAX"):
        resolve_under(tmp_path, relative)
    with pytest.raises(UnsafePathError, match="NUL byte"):
        resolve_under(tmp_path, PurePosixPath("a\x00b"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(" + "-" * 100_000 + "1)", "nested too deeply"),
        ("9" * 5000, "too many digits"),
        ("1e999", "too large"),
    ],
)
def test_cell_grammar_refuses_hostile_numbers_as_cell_errors(text: str, expected: str) -> None:
    with pytest.raises(CellError, match=expected) as caught:
        parse_cell(text)
    assert len(str(caught.value)) < 200
