"""The one place a deployment says where the catalog, the raw data and the results live.

A deployment sets three environment variables once (the service's environment, or the
shell that starts ``dagster dev``); every sensor tick, schedule, automation run and UI
launch then uses them, and the UI shows them as environment-sourced resource config.
Unset, the embedded demo is used.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from ace_assets.catalog.path_map import PathMap
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

    project_path: str = Field(
        default=str(DEMO_PROJECT),
        description=(
            "Folder with experiments.csv, analysis_parameters.csv and curation.csv "
            "(deployment: ACE_PROJECT_PATH)."
        ),
    )
    data_path: str = Field(
        default=str(DEMO_DATA),
        description=(
            "Root of the raw recordings; catalog directories are relative to it. Read-only: "
            "nothing is ever written here (deployment: ACE_DATA_PATH)."
        ),
    )
    results_path: str = Field(
        default="",
        description=(
            "Where results are written, one folder per line; empty means "
            "$DAGSTER_HOME/ace_results (deployment: ACE_RESULTS_PATH)."
        ),
    )
    path_map: str = Field(
        default="",
        description=(
            "Ordered prefix rewrites for catalogs written on another machine, as JSON or the "
            'path of a JSON file, e.g. {"D:\\\\Lab\\\\experimental_data": "."}: a folder cell '
            "starting with a prefix is taken relative to data_path; matching ignores case and "
            "separator style; the first matching rule wins (deployment: ACE_PATH_MAP)."
        ),
    )

    @property
    def project(self) -> Path:
        return Path(self.project_path).expanduser()

    @property
    def data(self) -> Path:
        return Path(self.data_path).expanduser()

    @property
    def path_rules(self) -> PathMap:
        """The parsed ``path_map``; a malformed map raises, naming the setting."""
        return PathMap.parse(self.path_map)

    @property
    def experiments_csv(self) -> Path:
        return self.project / "experiments.csv"

    @property
    def parameters_csv(self) -> Path:
        return self.project / "analysis_parameters.csv"

    @property
    def results(self) -> Path:
        if self.results_path:
            root = Path(self.results_path).expanduser()
        elif os.environ.get("DAGSTER_HOME"):
            root = Path(os.environ["DAGSTER_HOME"]) / "ace_results"
        else:
            root = self.project / "results"
        refuse_overlap(root, self.data, chosen=bool(self.results_path))
        return root

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse overlapping results and data when a run starts, before any asset writes."""
        _ = self.results  # the property refuses an overlap

    def line_dir(self, line_number: int | str) -> Path:
        return self.results / f"line_{int(line_number)}"


#: Resource field -> the environment variable a deployment sets it with.
DEPLOYMENT_ENV = {
    "project_path": "ACE_PROJECT_PATH",
    "data_path": "ACE_DATA_PATH",
    "results_path": "ACE_RESULTS_PATH",
    "path_map": "ACE_PATH_MAP",
}


def refuse_overlap(results: Path, data: Path, *, chosen: bool = True) -> None:
    """Results and raw data never share a folder, in either direction.

    Results inside data_path would be written among the raw recordings (read-only, and
    scanned by the sensors as if they were recordings); data_path inside results would let
    a results clean-up or a republished folder touch the raw data. Both are compared after
    resolving links, so an alias of the same folder is caught too.
    """
    data_resolved = data.resolve()
    results_resolved = results.resolve()
    if results_resolved == data_resolved:
        relation = "is the same folder as"
    elif data_resolved in results_resolved.parents:
        relation = "is inside"
    elif results_resolved in data_resolved.parents:
        relation = "contains"
    else:
        return
    origin = (
        "results_path"
        if chosen
        else "results_path is empty, so the default ($DAGSTER_HOME/ace_results or "
        "<project_path>/results)"
    )
    raise AceInputError(
        f"{origin} {results_resolved} {relation} data_path {data_resolved}; raw data is "
        "read-only and results must live apart from it. Hint: set results_path to a folder "
        "outside data_path (run config resources.paths.config.results_path, or "
        f"{DEPLOYMENT_ENV['results_path']} for the deployment), or correct data_path "
        f"(resources.paths.config.data_path, {DEPLOYMENT_ENV['data_path']}).",
        column="results_path",
    )


def deployment_paths() -> PathsResource:
    """The paths in force: ``ACE_*`` variables where set (as ``dg.EnvVar``), else the demo."""
    values = {f: dg.EnvVar(v) for f, v in DEPLOYMENT_ENV.items() if os.environ.get(v)}
    return PathsResource(**values)


def paths_tags(paths: PathsResource | None = None) -> dict[str, str]:
    """Run tags that say which project and data a run used (visible on every run page)."""
    if paths is None:
        current = {f: os.environ.get(v, "") for f, v in DEPLOYMENT_ENV.items()}
        resolved = PathsResource(**{k: v for k, v in current.items() if v})
    else:
        resolved = paths
    return {
        "ace/project_path": str(resolved.project),
        "ace/data_path": str(resolved.data),
    }
