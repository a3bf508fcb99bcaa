"""Exported CSVs: text that a spreadsheet would run as a formula is quoted, numbers stay numbers.

Hostile text reaches the tables from a catalog row (the experiments copy) and from a
``.nev`` event string; both are generated here and read back with pandas as a user would.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ace_assets.catalog.experiments import read_experiments
from ace_assets.demo.neuralynx_writer import write_nev
from ace_assets.io.csv_export import neutralize_cell, write_csv
from ace_assets.io.neuralynx import read_events

HOSTILE = ["=cmd|' /C calc'!A0", "+SUM(1)", "@SUM(1)", "-2+3", "\t=1", "\r=1"]


@pytest.mark.parametrize("cell", HOSTILE)
def test_formula_text_gets_a_leading_quote(cell: str) -> None:
    assert neutralize_cell(cell) == "'" + cell


@pytest.mark.parametrize(
    "cell", ["-3.5", "+2", "-1e-3", ".5", "DemoRat", "a=b", " =1", "", "'=already"]
)
def test_plain_numbers_and_ordinary_text_are_kept(cell: str) -> None:
    assert neutralize_cell(cell) == cell


@pytest.mark.parametrize(
    "value", [-3, -2.5, np.int64(-7), np.float32(-0.5), None, True, np.bool_(False), float("nan")]
)
def test_values_that_are_not_text_are_kept(value: object) -> None:
    assert neutralize_cell(value) is value


def written_cells(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_catalog_cells_are_neutralized_and_numbers_stay_numeric(tmp_path: Path) -> None:
    catalog = tmp_path / "experiments.csv"
    header = "line number,id,rat weight (kg),systemic drug,calcium imaging directory,comments"
    rows = [
        "1,=cmd|' /C calc'!A0,0.5,NA,ms/s1,+SUM(1)",
        "2,@SUM(1),0.41,-2+3,=cmd|' /C calc'!A0,plain note",
        '3,"\t=1",0.45,NA,,-3.5',
    ]
    catalog.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    frame = read_experiments(catalog).to_frame()
    out = write_csv(frame, tmp_path / "out" / "experiments.csv")

    back = pd.read_csv(out)
    assert back["line_number"].tolist() == [1, 2, 3]
    assert pd.api.types.is_integer_dtype(back["line_number"])
    assert pd.api.types.is_float_dtype(back["weight_kg"])
    assert back["weight_kg"].tolist() == [0.5, 0.41, 0.45]
    # the catalog strips the tab around a cell; what is left still starts a formula
    assert back["animal_id"].tolist() == ["'=cmd|' /C calc'!A0", "'@SUM(1)", "'=1"]
    assert back["systemic_drug"].tolist()[1] == "'-2+3"
    assert back["comments"].tolist() == ["'+SUM(1)", "plain note", "-3.5"]
    # a folder cell is a path object in the frame; it is judged by its text all the same
    assert back["calcium_dir"].tolist()[:2] == ["ms/s1", "'=cmd|' /C calc'!A0"]
    for row in written_cells(out):
        assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in row)
    assert not list((tmp_path / "out").glob(".*")), "no temporary file is left beside it"


def test_nev_event_strings_are_neutralized_and_negative_times_stay_numbers(
    tmp_path: Path,
) -> None:
    nev = write_nev(
        tmp_path / "Events.nev",
        np.array([1_000_000, 2_000_000, 3_000_000]),
        np.array([0, 1, 0]),
        ['=HYPERLINK("http://x")', "\t=1", "Starting Recording"],
        event_ids=np.array([19, 11, 19]),
    )
    events = read_events(nev, origin_us=2_500_000)  # events before the origin: negative times
    out = write_csv(events, tmp_path / "events.csv")

    back = pd.read_csv(out)
    assert back["string"].tolist() == ['\'=HYPERLINK("http://x")', "'\t=1", "Starting Recording"]
    assert pd.api.types.is_float_dtype(back["timestamp_s"])
    np.testing.assert_allclose(back["timestamp_s"], [-1.5, -0.5, 0.5])
    assert pd.api.types.is_integer_dtype(back["ttl"]) and back["ttl"].tolist() == [0, 1, 0]
    assert back["timestamp_us"].tolist() == [1_000_000, 2_000_000, 3_000_000]


def test_text_columns_of_every_kind_and_labels(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "component": pd.Series(["@c1", "c2"], dtype="string"),
            "channel": pd.Categorical(["-EEG", "EMG"]),
            "mixed": pd.Series([-4, "=1"], dtype=object),
            "=label": [-1.25, 3.0],
        }
    )
    back = pd.read_csv(write_csv(frame, tmp_path / "t.csv"))
    assert back.columns.tolist() == ["component", "channel", "mixed", "'=label"]
    assert back["component"].tolist() == ["'@c1", "c2"]
    assert back["channel"].tolist() == ["'-EEG", "EMG"]
    assert back["mixed"].tolist() == ["-4", "'=1"]  # the number is written as a number
    assert back["'=label"].tolist() == [-1.25, 3.0]
    assert frame["component"].tolist() == ["@c1", "c2"], "the caller's frame is not changed"
