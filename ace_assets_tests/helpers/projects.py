"""Lab projects for tests: a copy of the embedded catalog, and an instance that has read it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from ace_assets.defs.resources import DEMO_PROJECT, PathsResource


def demo_catalog_copy(target: Path, lines: Sequence[int] | None = None) -> Path:
    """The embedded catalog CSVs in ``target``; with ``lines``, only those experiment rows."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_PROJECT / "analysis_parameters.csv", target / "analysis_parameters.csv")
    experiments = DEMO_PROJECT / "experiments.csv"
    if lines is None:
        shutil.copy(experiments, target / "experiments.csv")
    else:
        rows = experiments.read_text().splitlines()
        keep = [r for r in rows[1:] if r.split(",", 1)[0] in {str(n) for n in lines}]
        (target / "experiments.csv").write_text("\n".join([rows[0], *keep]) + "\n")
    return target


def lab_paths(root: Path, data: Path, lines: Sequence[int] | None = None) -> PathsResource:
    """Paths to a catalog copy under ``root`` (``root/project``), ``data`` and ``root/results``."""
    project = demo_catalog_copy(root / "project", lines)
    return PathsResource(
        project_path=str(project), data_path=str(data), results_path=str(root / "results")
    )


@contextmanager
def catalog_read(
    assets: Sequence[dg.AssetsDefinition], paths: PathsResource
) -> Iterator[dg.DagsterInstance]:
    """A test instance in which ``experiments`` has read the catalog (lines registered)."""
    with dg.instance_for_test() as instance:
        assert dg.materialize(
            list(assets), selection="experiments", instance=instance, resources={"paths": paths}
        ).success
        yield instance
