"""Empty catalog cells show as empty in the experiments table, never as "nan"."""

from __future__ import annotations

from ace_assets.catalog.experiments import read_experiments
from ace_assets.defs.assets.catalog import _markdown_table
from ace_assets_tests.helpers.paths import REPO


def test_empty_folder_cells_are_empty_in_the_table() -> None:
    catalog = read_experiments(REPO / "data_catalog" / "experiments.csv")
    assert catalog.experiments[2].ephys_dir is None  # a Miniscope-only line
    table = _markdown_table(catalog.to_frame())
    assert "nan" not in table.lower() and "none" not in table.lower()
    row = next(r for r in table.splitlines() if r.startswith("| 2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4] == "" and cells[5] == ""  # ephys_dir, channels
