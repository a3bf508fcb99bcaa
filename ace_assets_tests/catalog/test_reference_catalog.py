"""A catalog shaped like the one a lab arrived with, read with and without a path map."""

from __future__ import annotations

from pathlib import Path

from ace_assets.catalog.experiments import read_experiments
from ace_assets.catalog.path_map import PathMap
from ace_assets.catalog.paths import resolve_under
from ace_assets_tests.helpers.reference_catalog import (
    ABSOLUTE,
    LINES,
    NO_CHANNELS_LINE,
    PATH_MAP,
    REFERENCE,
    SPLIT_LINE,
    build_tree,
    mapped_catalog,
)

FOLDER_COLUMNS = {"calcium imaging directory", "ephys directory"}


def test_without_a_map_every_numbered_row_is_a_line_and_each_says_what_is_wrong() -> None:
    catalog = read_experiments(REFERENCE / "experiments.csv")
    assert list(catalog.lines) == LINES  # nothing is hidden: absolute rows are lines too
    assert set(catalog.invalid) == set(ABSOLUTE)
    for line, column in ABSOLUTE.items():
        (problem,) = catalog.invalid[line].problems
        assert (problem.row, problem.column) == (line + 1, column)
        assert "absolute Windows path" in problem.message and "path_map" in problem.message
        assert "D:\\Dropbox\\Documents" in problem.message
    # what could be read of a refused row is kept for the table
    assert catalog.invalid[3].animal_id == "R201110" and catalog.invalid[3].calcium_dir is None
    frame = catalog.to_frame()
    assert list(frame["line_number"]) == LINES
    assert "absolute Windows path" in frame.set_index("line_number").loc[3, "problems"]
    # the template row has no line number: reported, not a line
    (template,) = [p for p in catalog.problems if p.line_number is None and p.row > 1]
    assert template.row == 33 and "'Example' is not a line number" in template.message


def test_with_a_map_every_folder_resolves_under_data_path(tmp_path: Path) -> None:
    catalog = mapped_catalog(REFERENCE)
    assert list(catalog.lines) == LINES
    assert not catalog.invalid  # with the map, every line of the catalog resolves
    assert not [p for p in catalog.problems if p.column in FOLDER_COLUMNS]
    # a session split across two folders is one line with both, in the cell's order
    split = catalog.experiments[SPLIT_LINE]
    assert [d.name for d in split.calcium_dirs] == ["14_42_17", "15_54_01"]
    assert split.as_row()["calcium_dir"] == ";".join(str(d) for d in split.calcium_dirs)
    # no channels listed: a warning (all .ncs files are used), not an error
    (warning,) = [p for p in catalog.problems if p.line_number == NO_CHANNELS_LINE]
    assert warning.severity == "warning" and "every .ncs file" in warning.message
    # the more specific rule came first; the second matched despite its case and slashes
    assert str(catalog.experiments[1].ephys_dir) == "testing/test_recordings/Rdemo_200805"
    assert (
        str(catalog.experiments[3].calcium_dir) == "K99/miniscope_data/R201110/2021_01_12/09_15_40"
    )
    assert catalog.experiments[8].ephys_dir == catalog.experiments[9].ephys_dir
    data = tmp_path / "data"
    made = build_tree(data, catalog)
    for experiment in catalog.experiments.values():
        for folder in (experiment.calcium_dir, experiment.ephys_dir):
            if folder is not None:
                assert resolve_under(data, folder).is_dir()
    # absolute and relative rows land in one tree
    assert (data / "K99/miniscope_data").is_dir() and (data / "testing").is_dir()
    assert len(made) == sum(len(e.calcium_dirs) + e.has_ephys for e in catalog.experiments.values())


def test_a_map_that_leads_out_of_data_path_is_refused_per_line() -> None:
    escaping = dict(PATH_MAP)
    escaping["d:/dropbox/documents/brown_lab/experimental_data"] = "../elsewhere"
    catalog = read_experiments(REFERENCE / "experiments.csv", PathMap.of(escaping))
    for line in (3, 4, 5, 6, 7, 8, 9):
        (problem,) = catalog.invalid[line].problems
        assert "escapes data_path" in problem.message and "../elsewhere" in problem.message
    assert 1 in catalog.experiments and 10 in catalog.experiments  # the other rule still works


def test_rows_refused_whole_are_still_their_lines(tmp_path: Path) -> None:
    """A shifted row, a NUL byte or a duplicated key costs the row its data, not its line."""
    path = tmp_path / "experiments.csv"
    path.write_text(
        "line number,id,calcium imaging directory\n"
        "1,RatA,ca/a\n"
        "2,RatB,ca/b,one cell too many\n"
        "3,Rat\x00C,ca/c\n"
        "4,RatD,ca/d\n"
        "4,RatE,ca/e\n"
        "5.5,RatF,ca/f\n"
        "6.5,Rat\x00G,ca/g\n"
    )
    catalog = read_experiments(path)
    assert list(catalog.experiments) == [1]
    assert list(catalog.invalid) == [2, 3, 4]  # 5.5 and 6.5 are not line numbers: no line
    assert catalog.invalid[2].row == 3 and "fields" in catalog.invalid[2].problems[0].message
    assert catalog.invalid[3].problems[0].column == "id"
    assert [p.row for p in catalog.invalid[4].problems] == [5, 6]
    assert all(p.line_number is None for p in catalog.problems if p.row in (7, 8))


def test_a_split_session_cell_checks_every_part(tmp_path: Path) -> None:
    path = tmp_path / "experiments.csv"
    path.write_text(
        "line number,id,calcium imaging directory\n"
        "1,RatA,ca/a;ca/b\n"
        "2,RatB,ca/c;D:\\scope\\ca\\d\n"
        "3,RatC,ca/e;ca/e\n"
        "4,RatD,ca/f; NA ;\n"
    )
    catalog = read_experiments(path)
    assert [str(d) for d in catalog.experiments[1].calcium_dirs] == ["ca/a", "ca/b"]
    (bad_part,) = catalog.invalid[2].problems
    assert "D:\\scope" in bad_part.message and "absolute Windows path" in bad_part.message
    (twice,) = catalog.invalid[3].problems
    assert "ca/e more than once" in twice.message
    assert [str(d) for d in catalog.experiments[4].calcium_dirs] == ["ca/f"]
