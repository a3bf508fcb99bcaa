"""path_map: ordered prefix rewrites, matched by whole components, case and separators ignored."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from ace_assets.catalog.experiments import folder_cell
from ace_assets.catalog.path_map import PathMap, is_absolute
from ace_assets.catalog.paths import UnsafePathError
from ace_assets.errors import AceInputError

LAB = "D:\\Dropbox\\Lab\\experimental_data"


@pytest.mark.parametrize(
    "cell",
    [
        "D:\\Dropbox\\Lab\\experimental_data\\rat1\\day1",
        "d:\\dropbox\\LAB\\Experimental_Data\\rat1\\day1",
        "D:/Dropbox/Lab/experimental_data/rat1/day1",
        "D:\\\\Dropbox//Lab\\experimental_data\\.\\rat1\\day1\\",
    ],
)
def test_separator_style_and_case_do_not_matter(cell: str) -> None:
    rules = PathMap.of({LAB: "."})
    assert folder_cell(cell, rules) == PurePosixPath("rat1/day1")


def test_the_remainder_keeps_its_case_for_the_case_sensitive_copy() -> None:
    mapped = PathMap.of({LAB: "copy"}).apply("d:\\DROPBOX\\lab\\experimental_data\\Rat1\\Day1")
    assert mapped is not None and mapped.text == "copy/Rat1/Day1"


def test_prefixes_match_whole_components_only() -> None:
    rules = PathMap.of({"D:\\Dropbox\\Lab": "."})
    assert rules.apply("D:\\Dropbox\\Laboratory\\rat1") is None
    assert rules.apply("E:\\Dropbox\\Lab\\rat1") is None
    assert rules.apply("\\\\server\\Dropbox\\Lab\\rat1") is None  # a share, not a drive


def test_rules_are_tried_in_order_and_the_first_match_wins() -> None:
    specific_first = PathMap.of([(LAB + "\\miniscope", "scope"), (LAB, "all")])
    general_first = PathMap.of([(LAB, "all"), (LAB + "\\miniscope", "scope")])
    cell = LAB + "\\miniscope\\rat1"
    assert folder_cell(cell, specific_first) == PurePosixPath("scope/rat1")
    assert folder_cell(cell, general_first) == PurePosixPath("all/miniscope/rat1")


def test_unc_and_posix_prefixes_map_too() -> None:
    rules = PathMap.of({"\\\\nas\\raw": "nas", "/mnt/acq": "acq"})
    assert folder_cell("//NAS/raw/rat1", rules) == PurePosixPath("nas/rat1")
    assert folder_cell("/mnt/acq/rat2", rules) == PurePosixPath("acq/rat2")


def test_a_mapped_path_that_escapes_data_path_is_refused_naming_the_rule() -> None:
    rules = PathMap.of({LAB: "."})
    with pytest.raises(UnsafePathError) as caught:
        folder_cell(LAB + "\\..\\..\\Windows\\System32", rules)
    text = str(caught.value)
    assert "escapes data_path" in text and f"'{LAB}' -> '.'" in text
    assert "path_map" in text


def test_an_unmapped_absolute_path_is_refused_with_the_setting_to_use() -> None:
    with pytest.raises(UnsafePathError) as caught:
        folder_cell("E:\\scope\\rat1", PathMap.of({LAB: "."}))
    text = str(caught.value)
    assert "absolute Windows path" in text and "ACE_PATH_MAP" in text
    assert '{"E:\\\\scope": "."}' in text  # an example rule, in JSON as it must be typed


def test_relative_cells_can_be_mapped_and_unmatched_ones_stay() -> None:
    rules = PathMap.of({"K99": "."})
    assert folder_cell("K99/miniscope/rat1", rules) == PurePosixPath("miniscope/rat1")
    assert folder_cell("other/rat1", rules) == PurePosixPath("other/rat1")


def test_parse_reads_json_text_or_a_file_and_keeps_the_order(tmp_path: Path) -> None:
    rules = [["D:\\a\\b", "x"], ["D:\\a", "y"]]
    as_text = PathMap.parse(json.dumps(rules))
    path = tmp_path / "map.json"
    path.write_text(json.dumps(dict(rules)))
    as_file = PathMap.parse(str(path))
    assert [(r.prefix, r.replacement) for r in as_text.rules] == [tuple(r) for r in rules]
    assert as_file == as_text
    assert not PathMap.parse("") and not PathMap.parse(None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"D:\\Lab": "."}', "write each Windows backslash twice"),  # JSON as typed on Windows
        ('{"D:/Lab": "/mnt/lab"}', "relative to data_path"),
        ('{"": "."}', "prefix is empty"),
        ('"D:/Lab"', "JSON object"),
        ("/no/such/map.json", "cannot be read"),
    ],
)
def test_a_bad_map_is_refused_with_what_to_write(value: str, expected: str) -> None:
    with pytest.raises(AceInputError) as caught:
        PathMap.parse(value)
    assert expected in str(caught.value) and "ACE_PATH_MAP" in str(caught.value)
    assert caught.value.column == "path_map"


def test_is_absolute_on_either_system() -> None:
    for text in ("D:\\x", "d:", "/mnt/x", "\\\\nas\\x", "~/x"):
        assert is_absolute(text), text
    for text in ("K99/x", "x\\y", "."):
        assert not is_absolute(text), text
