"""Samples that were not recorded (filled across a short pause, or NaN), as recorded in a
store's meta by the reader, so derived results can blank them."""

from __future__ import annotations

from typing import Any

import numpy as np


def unrecorded_runs(meta: dict[str, Any]) -> np.ndarray:
    """``(column, start_index, stop_index)`` rows of every filled or NaN run, sorted by start."""
    rows = [
        (int(r["column"]), int(r["start_index"]), int(r["stop_index"]))
        for r in meta.get("channel_runs") or []
    ]
    arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return arr[np.argsort(arr[:, 1], kind="stable")] if arr.size else arr


def blank_unrecorded(block: np.ndarray, a: int, runs: np.ndarray) -> np.ndarray:
    """Set samples ``a:a+len(block)`` of ``block`` (time, channels) to NaN inside ``runs``."""
    if runs.size == 0:
        return block
    b = a + block.shape[0]
    hit = runs[(runs[:, 1] < b) & (runs[:, 2] > a)]
    view = block.reshape(block.shape[0], -1)
    for c, s, e in hit.tolist():
        view[max(s, a) - a : min(e, b) - a, c] = np.nan
    return block


def unrecorded_fraction(meta: dict[str, Any], n_samples: int, n_channels: int) -> list[float]:
    """Per channel, the fraction of samples that were filled or NaN."""
    runs = unrecorded_runs(meta)
    out = np.zeros(n_channels)
    for c, s, e in runs.tolist():
        out[c] += e - s
    return (out / max(n_samples, 1)).tolist()
