"""The decimated zero-phase filter (ace_assets.ephys.decimated) against SciPy's full-rate
forward-backward Butterworth: accuracy, block edges, segments, NaN runs, phase."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ace_assets.ephys.decimated import plan_decimation
from ace_assets.ephys.filters import design_filter, filter_signal, filter_store
from ace_assets.ephys.phase import phase_store
from ace_assets.io.store import write_array

FS = 32_000.0
BAND = [0.5, 30.0]


def _recording(seconds: float, seed: int = 0) -> np.ndarray:
    """Two channels (V): a 1 Hz wave and 7 Hz theta in broadband noise; a 5 mV offset
    with 1 mV of 60 Hz mains over a 20 µV, 2 Hz wave and noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    a = 3e-3 * np.sin(2 * np.pi * t) + 5e-4 * np.cos(2 * np.pi * 7 * t + 0.4)
    a += 8e-4 * rng.standard_normal(n)
    b = 5e-3 + 1e-3 * np.sin(2 * np.pi * 60 * t + 0.3) + 20e-6 * np.sin(2 * np.pi * 2 * t)
    b += 30e-6 * rng.standard_normal(n)
    return np.stack([a, b], axis=1)


def test_plan_only_for_bands_far_below_nyquist() -> None:
    plan = plan_decimation(design_filter("butter", BAND, FS), 4)
    assert plan is not None and plan.factor == 8 and plan.fs_low == 4000.0
    assert plan.taps.size % 2 == 1 and np.isclose(plan.taps.sum(), 1.0)
    assert np.allclose(plan.taps, plan.taps[::-1])  # symmetric: no delay
    for ftype, band, fs in [
        ("butter", [300.0, 6000.0], FS),  # spikes: the upper edge is near Nyquist
        ("butter", [4.0, None], FS),  # high-pass: no upper edge
        ("fir", BAND, FS),
        ("butter", [5.0, 9.0], 250.0),  # already a low rate
    ]:
        assert plan_decimation(design_filter(ftype, band, fs), 4) is None, (ftype, band, fs)


def test_decimated_equals_the_full_rate_filter() -> None:
    """In-band content: within 1e-4 of the output's peak, ends included. Content just above
    the band (the 1 mV of 60 Hz on channel b, 50x its 20 µV band wave) leaves a residue the
    order-4 Butterworth does not remove (0.4%); the lower rate's frequency warping changes
    that residue by a few percent, about 1e-7 V here: still within 2e-4 of the peak."""
    x = _recording(20.0)
    ref = design_filter("butter", BAND, FS).reference(x)  # SciPy sosfiltfilt, mirror pads
    y = filter_signal(x, FS, "butter", BAND, decimate=True)
    err = np.abs(y - ref).max(axis=0) / np.abs(ref).max(axis=0)
    assert err[0] < 1e-4 and err[1] < 2e-4, err
    rms = np.sqrt(np.mean((y - ref) ** 2, axis=0) / np.mean(ref**2, axis=0))
    assert rms[0] < 3e-5 and rms[1] < 1e-3, rms


def test_block_edges_leave_no_trace() -> None:
    """Many small blocks equal one block holding the whole signal (float32 rounding)."""
    x = _recording(12.0, seed=1)
    small = filter_signal(x, FS, "butter", BAND, decimate=True, chunk_samples=5000)
    whole = filter_signal(x, FS, "butter", BAND, decimate=True, chunk_samples=1 << 24)
    assert np.abs(small - whole).max() <= 1e-6 * np.abs(whole).max()


def test_store_segments_nans_and_phase_match_the_full_rate_path(tmp_path: Path) -> None:
    x = _recording(24.0, seed=2)
    x[300_000:300_640] = np.nan  # 20 ms excluded (an artefact)
    segments = [
        {"start_index": 0, "stop_index": 400_000},
        {"start_index": 400_000, "stop_index": x.shape[0]},
    ]
    src = write_array(
        tmp_path / "raw.npyd", x.astype(np.float32), {"sampling_rate_hz": FS, "segments": segments}
    )
    fast = filter_store(src, tmp_path / "fast.npyd", "butter", BAND, chunk_samples=20_000)
    full = filter_store(src, tmp_path / "full.npyd", "butter", BAND, decimate=False)
    assert fast.meta["filter"]["decimated"]["factor"] == 8
    assert full.meta["filter"]["decimated"] is None
    a, b = fast.read(0, fast.n_frames), full.read(0, full.n_frames)
    assert np.array_equal(np.isnan(a), np.isnan(b)) and np.isnan(a[300_000:300_640]).all()
    ok = np.isfinite(b)
    assert ok.sum() == b.size - 2 * 640
    err = np.nanmax(np.abs(a - b), axis=0) / np.nanmax(np.abs(b), axis=0)
    assert err[0] < 1e-4 and err[1] < 2e-4, err  # as above: channel b's mains residue

    ph_fast, amp_fast = phase_store(fast, tmp_path / "pf.npyd", tmp_path / "af.npyd")
    ph_full, _ = phase_store(full, tmp_path / "pr.npyd", tmp_path / "ar.npyd")
    pf, pr = ph_fast.read(0, ph_fast.n_frames), ph_full.read(0, ph_full.n_frames)
    amp = amp_fast.read(0, amp_fast.n_frames)
    assert np.array_equal(np.isnan(pf), np.isnan(pr))
    for c, (top, mean) in enumerate([(1e-3, 1e-4), (5e-3, 1e-3)]):  # rad
        strong = np.isfinite(pf[:, c]) & (amp[:, c] > 0.5 * np.nanmedian(amp[:, c]))
        dphi = np.abs(np.angle(np.exp(1j * (pf[strong, c] - pr[strong, c]))))
        assert dphi.max() < top and dphi.mean() < mean, (c, dphi.max(), dphi.mean())
        # mean resultant length at 500 event times, as the phase-locking results report it
        rng = np.random.default_rng(3 + c)
        events = rng.choice(np.flatnonzero(strong), 500, replace=False)
        mrl = [np.abs(np.mean(np.exp(1j * p[events, c]))) for p in (pf, pr)]
        assert mrl[0] == pytest.approx(mrl[1], abs=1e-3)


def test_short_segments_down_to_one_sample() -> None:
    """Segments shorter than the FIR or the low-rate step are mirrored like long ones."""
    x = _recording(6.0, seed=7)
    segs = [(0, 1), (1, 6), (6, 300), (300, 40_000), (40_000, x.shape[0])]
    filt = design_filter("butter", BAND, FS)
    ref = np.concatenate([filt.reference(x[a:b]) for a, b in segs])
    y = filter_signal(x, FS, "butter", BAND, segments=segs, decimate=True)
    assert np.all(np.abs(y - ref).max(axis=0) < 2e-4 * np.abs(ref).max(axis=0))


@pytest.mark.parametrize("band", [[0.5, 4.0], [5.0, 9.0]])
def test_demo_recording_at_32khz_phase_and_mrl_unchanged(band: list[float], tmp_path: Path) -> None:
    """The demo's synthetic channels (slow wave, wandering theta, pink noise, EMG bursts)
    at the full demo's 32 kHz, in the pipeline's default band and in theta: the decimated
    store's phase and phase locking equal the full-rate store's."""
    from ace_assets.demo.ephys_synth import EphysSynthConfig, SyntheticEphys

    ephys = SyntheticEphys(EphysSynthConfig(fs=FS, duration_s=16.0, seed=11))
    x = ephys.chunk(0, ephys.n_samples).T.astype(np.float32)
    src = write_array(tmp_path / "raw.npyd", x, {"sampling_rate_hz": FS})
    fast = filter_store(src, tmp_path / "fast.npyd", "butter", band)
    full = filter_store(src, tmp_path / "full.npyd", "butter", band, decimate=False)
    assert fast.meta["filter"]["decimated"]["factor"] >= 8
    a, b = fast.read(0, fast.n_frames), full.read(0, full.n_frames)
    assert np.all(np.abs(a - b).max(axis=0) < 2e-4 * np.abs(b).max(axis=0))
    pf, af = phase_store(fast, tmp_path / "pf.npyd", tmp_path / "af.npyd")
    pr, _ = phase_store(full, tmp_path / "pr.npyd", tmp_path / "ar.npyd")
    p1, p2, amp = pf.read(0, pf.n_frames), pr.read(0, pr.n_frames), af.read(0, af.n_frames)
    strong = amp > 0.5 * np.median(amp, axis=0)
    dphi = np.abs(np.angle(np.exp(1j * (p1 - p2))))[strong]
    assert dphi.max() < 1e-3
    # phase locking of events tied to the demo's theta phase (as its neurons are)
    t = ephys.times(0, ephys.n_samples)
    events = np.flatnonzero(np.diff(np.sign(np.sin(ephys.phase_at(t)))) > 0)[2:-2]
    for c in range(x.shape[1]):
        mrl = [np.abs(np.mean(np.exp(1j * p[events, c]))) for p in (p1, p2)]
        assert mrl[0] == pytest.approx(mrl[1], abs=1e-4), (c, mrl)
