"""Shared fixtures: one small generated demo data set per test session (raw data stays read-only)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ace_assets.defs.resources import PathsResource
from ace_assets_tests.helpers.projects import demo_catalog_copy


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo raw data at the CI size, made read-only like a lab server's raw share."""
    from ace_assets.demo.generate import generate_demo

    root = tmp_path_factory.mktemp("demo") / "data"
    generate_demo(root)
    for path in root.rglob("*"):
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return root


@pytest.fixture()
def demo_project(tmp_path: Path) -> Path:
    """A writable copy of the embedded catalog CSVs."""
    return demo_catalog_copy(tmp_path / "project")


@pytest.fixture()
def demo_paths(demo_project: Path, demo_data: Path, tmp_path: Path) -> PathsResource:
    return PathsResource(
        project_path=str(demo_project),
        data_path=str(demo_data),
        results_path=str(tmp_path / "results"),
    )
