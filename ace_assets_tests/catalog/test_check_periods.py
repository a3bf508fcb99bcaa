"""The catalog checker refuses the periods analysis_parameters would refuse, before any run."""

from __future__ import annotations

from pathlib import Path

from ace_assets.catalog.__main__ import main
from ace_assets_tests.catalog.test_check_cli import table_rows
from ace_assets_tests.helpers.projects import demo_catalog_copy


def test_overlapping_periods_are_an_error_of_their_line(tmp_path: Path, capsys) -> None:
    project = demo_catalog_copy(tmp_path / "project")
    params = project / "analysis_parameters.csv"
    text = params.read_text()
    assert '"[[12.5, 22.5]]"' in text  # line 1's control period, after [[2.5, 12.5]]
    params.write_text(text.replace('"[[12.5, 22.5]]"', '"[[10, 22.5]]"', 1))
    assert main(["check", str(project)]) == 1
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert rows["1"][1] == "error"
    assert rows["1"][2].startswith("analysis_parameters.csv control periods (s)")
    assert "overlaps the high slow wave period [2.5, 12.5]" in " ".join(out.split())
    assert rows["4"][1] == "ok"
