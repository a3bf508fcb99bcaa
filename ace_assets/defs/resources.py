"""The one place a deployment says where the catalog, the raw data and the results live."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from ace_assets.errors import AceInputError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_PROJECT = REPO_ROOT / "data_catalog"
DEMO_DATA = DEMO_PROJECT / "demo_data"


class PathsResource(dg.ConfigurableResource):
    """Explicit paths; defaults are the embedded demo so the UI works out of the box.

    ``results_path`` empty means ``$DAGSTER_HOME/ace_results`` when Dagster has
    a home, else ``<project_path>/results``. Results never go under data_path:
    raw data is read-only.
    """

    project_path: str = str(DEMO_PROJECT)
    data_path: str = str(DEMO_DATA)
    results_path: str = ""

    @property
    def project(self) -> Path:
        return Path(self.project_path).expanduser()

    @property
    def data(self) -> Path:
        return Path(self.data_path).expanduser()

    @property
    def experiments_csv(self) -> Path:
        return self.project / "experiments.csv"

    @property
    def parameters_csv(self) -> Path:
        return self.project / "analysis_parameters.csv"

    @property
    def curation_dir(self) -> Path:
        return self.project / "curation"

    @property
    def results(self) -> Path:
        if self.results_path:
            root = Path(self.results_path).expanduser()
        elif os.environ.get("DAGSTER_HOME"):
            root = Path(os.environ["DAGSTER_HOME"]) / "ace_results"
        else:
            root = self.project / "results"
        data = self.data.resolve()
        resolved = root.resolve()
        if resolved == data or data in resolved.parents:
            raise AceInputError(
                f"results root {resolved} is inside data_path {data}; raw data is read-only",
                column="results_path",
            )
        return root

    def line_dir(self, line_number: int | str) -> Path:
        return self.results / f"line_{int(line_number)}"
