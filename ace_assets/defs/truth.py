"""Ground truth of the generated demo data, when present, so the UI shows accuracy too."""

from __future__ import annotations

import numpy as np

from ace_assets.defs.resources import PathsResource
from ace_assets.io.store import load_npz


def truth_for(paths: PathsResource, line: int) -> dict[str, np.ndarray] | None:
    """``<data_path>/truth/line_<n>.npz`` written by ``python -m ace_assets.demo``; None for real data."""
    path = paths.data / "truth" / f"line_{int(line)}.npz"
    return load_npz(path) if path.is_file() else None
