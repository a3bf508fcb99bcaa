"""results_path and data_path never share a folder: not equal, not one inside the other.

Compared after resolving links, so a symlinked alias of the same folder is caught; a run
whose paths overlap fails before any asset writes, naming both paths and the settings.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ace_assets.defs.assets.catalog import experiments
from ace_assets.defs.resources import PathsResource
from ace_assets.errors import AceInputError
from ace_assets_tests.helpers.projects import demo_catalog_copy

SETTINGS = ("resources.paths.config.results_path", "ACE_RESULTS_PATH")


def paths(project: Path, data: Path, results: Path | str) -> PathsResource:
    return PathsResource(project_path=str(project), data_path=str(data), results_path=str(results))


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    (tmp_path / "project").mkdir()
    (tmp_path / "lab" / "raw").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tmp_path / "lab" / "raw")
    return tmp_path


@pytest.mark.parametrize(
    ("data", "results", "relation"),
    [
        ("lab/raw", "lab/raw/results", "is inside"),  # results among the raw data
        ("lab/raw", "lab", "contains"),  # raw data inside the results
        ("lab/raw", "lab/raw", "is the same folder as"),
        ("lab/raw", "alias", "is the same folder as"),  # a link to the same folder
        ("alias", "lab/raw/out", "is inside"),  # data given through the link
        ("lab/raw/sub", "alias", "contains"),
    ],
)
def test_overlapping_results_and_data_are_refused(
    tree: Path, data: str, results: str, relation: str
) -> None:
    (tree / data).mkdir(parents=True, exist_ok=True)
    resource = paths(tree / "project", tree / data, tree / results)
    with pytest.raises(AceInputError) as caught:
        resource.line_dir(1)
    message = str(caught.value)
    assert caught.value.column == "results_path"
    assert f"results_path {(tree / results).resolve()} {relation} data_path " in message
    assert str((tree / data).resolve()) in message
    assert all(setting in message for setting in SETTINGS)


def test_separate_folders_are_accepted(tree: Path) -> None:
    resource = paths(tree / "project", tree / "lab/raw", tree / "lab/results")
    assert resource.line_dir(3) == tree / "lab/results/line_3"
    assert paths(tree / "project", tree / "lab/raw", tree / "lab/raw_results").results


def test_the_default_results_folder_is_checked_too(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tree / "home"))
    data = tree / "home/ace_results/raw"
    data.mkdir(parents=True)
    with pytest.raises(AceInputError, match="results_path is empty, so the default") as caught:
        _ = paths(tree / "project", data, "").results
    assert "contains data_path" in str(caught.value)


def test_a_run_with_overlapping_paths_fails_before_writing(tree: Path) -> None:
    project = demo_catalog_copy(tree / "project")
    data = tree / "lab/raw"
    results = data / "results"
    with dg.instance_for_test() as instance:
        run = dg.materialize(
            [experiments],
            instance=instance,
            resources={"paths": paths(project, data, results)},
            raise_on_error=False,
        )
        assert not run.success
        assert instance.get_dynamic_partitions("line_number") == []
    (failure,) = [e for e in run.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    text = failure.event_specific_data.error.message  # type: ignore[union-attr]
    assert f"{results.resolve()} is inside data_path {data.resolve()}" in text
    assert not results.exists(), "nothing was written among the raw data"
