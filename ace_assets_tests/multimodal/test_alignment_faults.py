"""Alignment with lost pulses and faulty camera times: within tolerance of truth, or an error."""

from __future__ import annotations

import numpy as np
import pytest

from ace_assets.errors import AceInputError
from ace_assets.io.frame_times import resolve_timestamps
from ace_assets.multimodal.alignment import align_frames_to_ttl

FPS = 30.0
N = 900


def _recording(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """True frame times on the ephys clock (50 ppm drift) and V4-like camera ms stamps."""
    rng = np.random.default_rng(seed)
    i = np.arange(N)
    true_t = 12.3 + i / FPS * (1 + 5e-5) + rng.normal(0, 2e-4, N)
    cam_ms = np.round(431.0 + i * 1000 / FPS + rng.uniform(-0.4, 0.4, N))
    return true_t, cam_ms


@pytest.mark.parametrize("lost", [[400], [401], [399, 402], [120, 400, 401, 700]])
def test_lost_pulses_plus_swap_repaired_within_tolerance(lost: list[int]) -> None:
    true_t, cam_ms = _recording()
    swapped = cam_ms.copy()
    swapped[[400, 401]] = swapped[[401, 400]]
    ttl = np.delete(true_t, lost)
    # repair disabled: the frames are named, never silently a frame interval off
    with pytest.raises(AceInputError) as err:
        align_frames_to_ttl(ttl, N, swapped, [], 0.0)
    assert "[400, 401]" in str(err.value) and "timestamp_faults" in str(err.value)
    # repaired camera times: every frame within the tolerance of truth
    repaired = resolve_timestamps(np.arange(N), swapped).repaired_times_ms
    times, report = align_frames_to_ttl(ttl, N, repaired, [], 0.0)
    assert report.method == "repaired" and report.repaired_frames == lost
    error_ms = np.abs(times - true_t) * 1e3
    assert error_ms.max() < report.tolerance_ms
    assert error_ms.max() < 2.0  # well inside: the camera's own rounding and jitter


def test_lost_pulse_hidden_by_a_spurious_one_is_named() -> None:
    true_t, cam_ms = _recording()
    # the counts agree, but frames 300..599 get the pulse of the next frame
    ttl = np.sort(np.append(np.delete(true_t, 300), true_t[599] + 0.012))
    with pytest.raises(AceInputError) as err:
        align_frames_to_ttl(ttl, N, cam_ms, [], 0.0)
    text = str(err.value)
    assert "frames [300, 301, 302" in text and "alignment_tolerance_ms" in text
    # a looser tolerance, set by the user, lets it through
    _, report = align_frames_to_ttl(ttl, N, cam_ms, [], 0.0, tolerance_ms=100.0)
    assert report.method == "direct" and report.max_frame_residual_ms > 16.0


def test_clean_alignment_reports_its_residuals() -> None:
    true_t, cam_ms = _recording()
    times, report = align_frames_to_ttl(np.delete(true_t, [10, 500]), N, cam_ms, [], 0.0)
    assert np.abs(times - true_t).max() < 2e-3
    assert report.max_frame_residual_ms < 2.0
    assert report.tolerance_ms == pytest.approx(500 / FPS, abs=0.5)
    assert report.manifest()["tolerance_ms"] == report.tolerance_ms
