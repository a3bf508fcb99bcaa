"""The demo's line 2 is a second session of line 1's animal, and its truth says which cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ace_assets.demo.generate import generate_demo, small_size, truth_path
from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
from ace_assets.demo.sessions_synth import SessionChange, move_points, related_session
from ace_assets.io.store import load_npz


def test_line_2_shares_line_1s_tissue(tmp_path: Path) -> None:
    size = small_size(height=96, width=96, n_neurons=12)
    generate_demo(tmp_path, size=size, lines=(1, 2))
    one, two = load_npz(truth_path(tmp_path, 1)), load_npz(truth_path(tmp_path, 2))
    same = two["same_neuron_as"]
    assert int(two["same_neuron_reference_line"]) == 1
    assert same.shape == (12,) and 0 < (same >= 0).sum() < 12  # some shared, some new
    assert len(set(same[same >= 0])) == (same >= 0).sum()  # one-to-one
    change = SessionChange(tuple(two["fov_shift"]), float(two["fov_rotation_deg"]))
    moved = move_points(one["centers"][same[same >= 0]], (96, 96), change)
    assert np.abs(moved - two["centers"][same >= 0]).max() < 1e-3
    # a shared cell's footprint is line 1's, moved: same shape on the new frame
    for k in np.flatnonzero(same >= 0)[:3]:
        a, b = one["footprints"][same[k]], two["footprints"][k]
        assert a.sum() == pytest.approx(b.sum(), rel=0.05)
    # a new cell is never where one of line 1's cells is
    everyone = move_points(one["centers"], (96, 96), change)
    new = two["centers"][same < 0]
    gaps = np.sqrt(((new[:, None] - everyone[None]) ** 2).sum(-1))
    assert gaps.min() >= 3.0 * size.neuron_radius - 1e-6


def test_related_session_refuses_an_impossible_layout() -> None:
    base = SyntheticMiniscope(MiniscopeSynthConfig(n_frames=10, n_neurons=30, seed=1))
    with pytest.raises(ValueError, match="cannot place"):
        related_session(base, SessionChange(n_neurons=200), seed=2)
