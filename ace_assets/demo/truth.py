"""Accuracy of a line's results against the generator's ground truth (demo data only).

The assets call these hooks with what they computed; each returns nothing (``{}``) when
``<data_path>/truth/line_<n>.npz`` is absent, which is always the case for real data. The
pipeline itself never reads the truth: only the ``truth_*`` metadata and the manifests'
``ground_truth`` entries come from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ace_assets.io.confined import confined_file
from ace_assets.io.store import load_npz
from ace_assets.miniscope.extraction.evaluation import (
    evaluate_against_truth,
    match_centers,
    match_events,
    merge_close,
)

Truth = dict[str, np.ndarray]
#: found component id (as text, JSON-friendly) -> index of the generator's neuron
Match = dict[str, int]

#: Distance (px) within which a found centre is the generator's neuron.
CENTER_TOLERANCE_PX = 4.0
#: Frames within which a found event is a true one; closer true events count once.
EVENT_TOLERANCE_FRAMES = 3


def truth_for(data_dir: Path, line: int) -> Truth | None:
    """``<data_dir>/truth/line_<n>.npz`` written by ``python -m ace_assets.demo``; None for real data."""
    path = Path(data_dir) / "truth" / f"line_{int(line)}.npz"
    return load_npz(confined_file(path, data_dir)) if path.is_file() else None


def metadata(scores: Mapping[str, float]) -> dict[str, float]:
    """The scores as ``truth_<name>`` metadata entries."""
    return {f"truth_{k}": float(v) for k, v in scores.items()}


def score_sources(
    data_dir: Path,
    line: int,
    result: Any,
    crop_coords: Sequence[int] | None,
    motion_qc: Path,
) -> tuple[dict[str, float], Match]:
    """Found neurons against the generator's, in the motion-corrected frame.

    ``result`` is the extraction result; ``motion_qc`` the motion asset's ``qc.npz`` (its
    per-frame rigid shifts). Returns the scores and the found-to-true match later stages
    score with.
    """
    truth = truth_for(data_dir, line)
    if truth is None or result.n_components == 0:
        return {}, {}
    centers = truth["centers"].astype(float).copy()
    if crop_coords is not None:
        centers -= np.array([crop_coords[1], crop_coords[0]], dtype=float)
    # the corrected movie sits where the template sits: the scene plus a constant offset
    rigid_shifts = load_npz(motion_qc)["shifts_rigid"]
    centers += np.median(rigid_shifts + truth["shifts"], axis=0)
    scores = evaluate_against_truth(result, centers, truth["C"], truth["spike_frames"])
    true_idx, found_idx = match_centers(centers, result.centers, CENTER_TOLERANCE_PX)
    match = {str(int(result.ids[f])): int(t) for t, f in zip(true_idx, found_idx, strict=True)}
    return {k: float(v) for k, v in scores.items()}, match


def score_events(data_dir: Path, line: int, match: Match, events: pd.DataFrame) -> dict[str, float]:
    """Event precision, recall and F1 over the matched components."""
    truth = truth_for(data_dir, line)
    if truth is None or not match:
        return {}
    spikes = truth["spike_frames"]
    tp = n_true = n_found = 0
    for found_id, true_idx in match.items():
        true_frames = merge_close(
            np.sort(spikes[spikes[:, 0] == true_idx, 1]), EVENT_TOLERANCE_FRAMES
        )
        found = np.sort(events.loc[events["component"] == int(found_id), "frame"].to_numpy())
        tp += match_events(true_frames, found, EVENT_TOLERANCE_FRAMES)
        n_true += len(true_frames)
        n_found += len(found)
    precision = tp / max(n_found, 1)
    recall = tp / max(n_true, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"event_f1": f1, "event_precision": precision, "event_recall": recall}


def score_alignment(
    data_dir: Path, line: int, frame_times: np.ndarray, zero_time_s: float
) -> dict[str, float]:
    """Largest error of the frame times on the ephys clock."""
    truth = truth_for(data_dir, line)
    if truth is None or "frame_times_ephys_s" not in truth:
        return {}
    # our clock starts at the first ephys sample, like the generator's
    error = np.abs(frame_times + zero_time_s - truth["frame_times_ephys_s"])
    return {"max_frame_time_error_ms": float(error.max() * 1e3)}


def score_locking(
    data_dir: Path, line: int, locking: pd.DataFrame, channels: Sequence[str], match: Match
) -> dict[str, float]:
    """Are the generator's phase-locked neurons the ones found locked (first channel)?"""
    truth = truth_for(data_dir, line)
    if truth is None or "locked" not in truth or locking.empty or not match:
        return {}
    found_to_true = {int(k): int(v) for k, v in match.items()}
    main = locking[locking["channel"] == channels[0]]
    locked_true = truth["locked"].astype(bool)
    hits = [
        (locked_true[found_to_true[int(r.component)]], r.rayleigh_p < 0.05)
        for r in main.itertuples(index=False)
        if int(r.component) in found_to_true
    ]
    if not hits:
        return {}
    truth_locked = [h for h in hits if h[0]]
    truth_free = [h for h in hits if not h[0]]
    return {
        "locked_found_locked": sum(p for _, p in truth_locked) / max(len(truth_locked), 1),
        "unlocked_found_locked": sum(p for _, p in truth_free) / max(len(truth_free), 1),
    }
