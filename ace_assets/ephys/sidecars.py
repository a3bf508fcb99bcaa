"""What derived ephys stores inherit from their source besides the samples."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def copy_sidecars(src_dir: str | Path, dst_dir: str | Path) -> None:
    """Carry the sample clock (``clock.npz``) of a store over to a store derived from it."""
    clock = Path(src_dir) / "clock.npz"
    if clock.is_file():
        shutil.copyfile(clock, Path(dst_dir) / "clock.npz")


def segments_from_meta(meta: dict[str, Any], n_samples: int) -> list[tuple[int, int]]:
    """Gap-free sample ranges recorded in a store's meta (whole signal if none)."""
    bounds = [(int(s["start_index"]), int(s["stop_index"])) for s in meta.get("segments") or []]
    return bounds if bounds else [(0, n_samples)]
