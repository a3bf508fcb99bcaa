import json
from pathlib import Path

import dagster as dg
import pytest

from ace_assets.defs.resources import DEMO_PROJECT, PathsResource
from ace_assets.defs.results import MovieResult, NotApplicable, ResultsIOManager


def test_results_io_manager_hands_typed_handles(tmp_path: Path) -> None:
    """(asset, line) -> the asset's folder, as the type the downstream parameter names."""
    paths = PathsResource(project_path=str(DEMO_PROJECT), results_path=str(tmp_path / "r"))
    manager = ResultsIOManager(paths)
    folder = paths.line_dir(3) / "denoised_movie"

    def load(handle: type) -> object:
        return manager.load_input(
            dg.build_input_context(
                name="denoised_movie",
                asset_key=dg.AssetKey("denoised_movie"),
                partition_key="3",
                asset_partitions_def=dg.StaticPartitionsDefinition(["3"]),
                dagster_type=dg.PythonObjectDagsterType(handle),
            )
        )

    movie = load(MovieResult)
    assert isinstance(movie, MovieResult) and movie.folder == folder
    with pytest.raises(Exception, match="has not been materialized"):
        movie.manifest  # noqa: B018 - read lazily: a line without the modality opens nothing
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"movie": str(folder / "movie.npyd")}))
    assert load(MovieResult).manifest["movie"].endswith("movie.npyd")
    with pytest.raises(TypeError, match="Result type"):
        load(dict)
    out = dg.build_output_context(asset_key=dg.AssetKey("denoised_movie"), partition_key="3")
    manager.handle_output(out, NotApplicable("no Miniscope recording"))  # nothing to store
    manager.handle_output(out, MovieResult(folder))
    with pytest.raises(ValueError, match="returned"):
        manager.handle_output(out, MovieResult(paths.line_dir(4) / "denoised_movie"))
