"""Which lines are registered together: the project file, then the catalog column, then the
animal id; only calcium imaging lines, reference first by date."""

from __future__ import annotations

from pathlib import Path

import pytest

from ace_assets.catalog.experiments import read_experiments
from ace_assets.cohort.registration_groups import registration_groups
from ace_assets.errors import AceInputError

HEADER = "line number,id,date (YYMMDD),calcium imaging directory,ephys directory"


def catalog(tmp_path: Path, rows: list[str], extra_header: str = "") -> Path:
    path = tmp_path / "experiments.csv"
    path.write_text("\n".join([HEADER + extra_header, *rows]) + "\n")
    return path


def test_grouped_by_animal_reference_is_the_earliest_session(tmp_path: Path) -> None:
    path = catalog(
        tmp_path,
        [
            "1,RatA,240105,ms/a/5,NA",
            "2,RatA,240101,ms/a/1,NA",
            "3,RatB,240102,ms/b/2,NA",
            "4,RatA,240103,NA,ephys/a/3",  # no imaging: not registered
            "5,,240103,ms/x,NA",  # no id: a group of its own
        ],
    )
    groups, source = registration_groups(read_experiments(path), tmp_path)
    assert source == "catalog column 'id'"
    assert groups == {"RatA": [2, 1], "RatB": [3], "line 5 (no id)": [5]}


def test_catalog_column_splits_an_animal(tmp_path: Path) -> None:
    path = catalog(
        tmp_path,
        ["1,RatA,240101,ms/1,NA,left", "2,RatA,240102,ms/2,NA,right", "3,RatA,240103,ms/3,NA,"],
        extra_header=",registration groups",
    )
    groups, source = registration_groups(read_experiments(path), tmp_path)
    assert source == "catalog column 'registration groups'"
    assert groups == {"left": [1], "right": [2], "RatA": [3]}


def test_project_file_wins_and_is_checked(tmp_path: Path) -> None:
    path = catalog(tmp_path, ["1,RatA,240101,ms/1,NA", "2,RatB,240102,ms/2,NA"])
    (tmp_path / "registration_groups.csv").write_text("group,line number\nfov,1\nfov,2\n")
    groups, source = registration_groups(read_experiments(path), tmp_path)
    assert groups == {"fov": [1, 2]} and source.endswith("registration_groups.csv")
    (tmp_path / "registration_groups.csv").write_text("group,line number\nfov,one\n")
    with pytest.raises(AceInputError) as err:
        registration_groups(read_experiments(path), tmp_path)
    assert err.value.row == 2 and err.value.column == "line number"
    assert "registration_groups.csv" in str(err.value)
