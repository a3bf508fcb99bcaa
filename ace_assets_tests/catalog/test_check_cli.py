"""``python -m ace_assets.catalog check``: a table of lines and their problems, and an exit code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ace_assets.catalog.__main__ import main
from ace_assets_tests.helpers.projects import demo_catalog_copy
from ace_assets_tests.helpers.reference_catalog import (
    ABSOLUTE,
    LINES,
    NO_CHANNELS_LINE,
    SPLIT_LINE,
    build_tree,
    mapped_catalog,
    materialize,
    reference_project,
    write_path_map,
)


def table_rows(out: str) -> dict[str, tuple[str, str, str]]:
    """line -> (modalities, status, first problem) from the printed table."""
    rows = {}
    for text in out.splitlines():
        m = re.match(
            r"^\s*(\d+|-)\s+(\d+)\s{2}(.+?)\s{2,}(ok|warning|error|skipped)\b\s*(.*)$", text
        )
        if m:
            key = m[1] if m[1] != "-" else f"row {m[2]}"
            rows[key] = (m[3].strip(), m[4], m[5])
    return rows


def test_reference_catalog_without_a_map_fails_naming_each_line(tmp_path, capsys) -> None:
    project = reference_project(tmp_path / "project")
    code = main(["check", str(project)])
    out = capsys.readouterr().out
    assert code == 1
    rows = table_rows(out)
    assert [k for k in rows if not k.startswith("row")] == [str(n) for n in LINES]
    for line, column in ABSOLUTE.items():
        modalities, status, problem = rows[str(line)]
        assert status == "error" and problem.startswith(f"{column}: 'D:\\Dropbox")
        assert "absolute Windows path" in problem and "--path-map" in problem
        assert modalities == ("ephys" if column == "ephys directory" else "miniscope")
    assert rows["10"] == ("miniscope", "ok", "")
    assert rows["12"] == ("miniscope, ephys", "ok", "")
    assert rows["row 33"][1] == "skipped" and "'Example' is not a line number" in rows["row 33"][2]
    assert rows[str(NO_CHANNELS_LINE)][1:] == (
        "warning",
        "(warning) LFP and EEG CSCs: no channels are listed: every .ncs file in the ephys directory "
        "is used; list the channels (e.g. PFCvsCBEEG;EMG) to process only those",
    )
    assert rows[str(SPLIT_LINE)] == ("miniscope, ephys", "ok", "")
    assert "30 lines: 20 ok, 1 with warnings, 9 with errors" in out
    assert "files not checked" in out and "--data DATA_PATH" in out


def test_reference_catalog_with_a_map_and_data_reports_missing_files_per_line(
    tmp_path: Path, demo_data: Path, capsys
) -> None:
    project = reference_project(tmp_path / "project")
    data = tmp_path / "data"
    catalog = mapped_catalog(project)
    # every folder exists; only lines 3, 8, 12, 16 and 19 hold recordings
    build_tree(data, catalog)
    for line in (3, 8, 12, SPLIT_LINE, NO_CHANNELS_LINE):
        materialize(data, demo_data, catalog, line)
    path_map = write_path_map(tmp_path / "path_map.json")
    code = main(["check", str(project), "--data", str(data), "--path-map", str(path_map)])
    out = capsys.readouterr().out
    assert code == 1
    rows = table_rows(out)
    # absolute rows mapped onto the copy, relative ones, a split session, no channels listed
    for line in (3, 8, 12, SPLIT_LINE, NO_CHANNELS_LINE):
        assert rows[str(line)][1] in ("ok", "warning"), out
    # an empty folder: the line's own missing files, by folder column
    assert rows["4"][1] == "error"
    assert rows["4"][2].startswith("files (calcium imaging directory): no Miniscope movie found")
    assert rows["1"][2].startswith("files (ephys directory): channel 'CBvsACCEEG' has no file")
    assert "absolute Windows path" not in out
    # a line with both folders empty lists both
    block = out[out.index("\n  13 ") : out.index("\n  14 ")]
    assert "files (calcium imaging directory)" in block and "files (ephys directory)" in block
    assert f"data_path: {data}" in out and "'testing'" in out


def test_clean_project_with_its_data_passes(tmp_path: Path, demo_data: Path) -> None:
    """Run as a user would, in a fresh interpreter: exit 0, and Dagster is never imported."""
    project = demo_catalog_copy(tmp_path / "project")
    script = (
        "import sys; from ace_assets.catalog.__main__ import main; "
        f"code = main(['check', {str(project)!r}, '--data', {str(demo_data)!r}]); "
        "assert 'dagster' not in sys.modules, 'the checker imported dagster'; sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = table_rows(done.stdout)
    assert {k: v[1] for k, v in rows.items() if not k.startswith("row")}.keys() == {
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
    }
    assert all(v[1] in ("ok", "warning") for k, v in rows.items() if not k.startswith("row"))
    assert "6 lines:" in done.stdout and "0 with errors" in done.stdout


def test_a_bad_parameter_cell_is_an_error_of_its_line(tmp_path: Path, capsys) -> None:
    project = demo_catalog_copy(tmp_path / "project")
    params = project / "analysis_parameters.csv"
    params.write_text(params.read_text().replace('"(3, 3)"', '"(3, 3"', 1))
    assert main(["check", str(project)]) == 1
    rows = table_rows(capsys.readouterr().out)
    assert rows["1"][1] == "error" and rows["1"][2].startswith("analysis_parameters.csv gSig")
    assert rows["2"][1] == "ok"


@pytest.mark.parametrize(
    ("map_text", "expected"),
    [('{"D:\\Dropbox": "."}', "write each Windows backslash twice"), ("[1, 2]", "JSON object")],
)
def test_an_unreadable_map_or_catalog_exits_2(tmp_path, capsys, map_text, expected) -> None:
    project = reference_project(tmp_path / "project")
    path_map = tmp_path / "map.json"
    path_map.write_text(map_text)
    assert main(["check", str(project), "--path-map", str(path_map)]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(path_map) in err
    assert main(["check", str(tmp_path / "nowhere")]) == 2
    assert "experiments.csv: file not found" in capsys.readouterr().err
    assert main(["check", str(project), "--data", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
