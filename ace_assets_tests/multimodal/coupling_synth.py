"""Synthetic EEG with a slow oscillation and fluorescence that is a known filter and lag of it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ace_assets.multimodal.frame_clock import FrameClockEphys, ephys_on_frame_clock


@dataclass(frozen=True)
class Coupled:
    eeg: np.ndarray  # (samples,) at fs
    fs: float
    frame_times: np.ndarray  # seconds from the first EEG sample
    fps: float
    fluorescence: np.ndarray  # coupled to the EEG
    control: np.ndarray  # independent of it, same spectrum shape

    def on_frames(self, bands=((0.5, 4.0),), **kw) -> FrameClockEphys:
        return ephys_on_frame_clock(
            lambda a, b: self.eeg[a:b, None],
            self.eeg.size,
            self.fs,
            self.frame_times * self.fs,
            self.fps,
            bands,
            **kw,
        )


def slow_eeg(rng: np.random.Generator, t: np.ndarray, f0: float, fs: float) -> np.ndarray:
    """A slow oscillation near ``f0`` (its frequency wanders randomly, SD 5 %) in low-passed
    noise, plus 40 Hz power above any frame rate's Nyquist frequency."""
    wander = gaussian_filter1d(rng.normal(size=t.size), 2.0 * fs)
    wander *= 0.05 * f0 / (wander.std() or 1.0)
    phase = 2 * np.pi * (f0 * t + np.cumsum(wander) / fs) + rng.uniform(0, 2 * np.pi)
    noise = gaussian_filter1d(rng.normal(size=t.size), fs / (4 * f0)) * np.sqrt(fs / f0)
    return np.cos(phase) + 0.5 * noise + 0.8 * np.sin(2 * np.pi * 40.0 * t)


def coupled(
    *,
    fs: float = 1000.0,
    fps: float = 20.0,
    duration_s: float = 120.0,
    f0: float = 1.5,
    lag_s: float = 0.3,
    noise: float = 0.5,
    seed: int = 0,
) -> Coupled:
    """Fluorescence = (EEG smoothed by a zero-phase Gaussian, 40 ms SD)(t - lag) + noise.

    The filter is symmetric, so the cross-correlation peaks at exactly ``lag_s`` and the
    coherency phase is ``2 pi f lag_s``: the lag is known without modelling the filter.
    """
    rng = np.random.default_rng(seed)
    n = int(duration_s * fs)
    t = np.arange(n) / fs
    eeg = slow_eeg(rng, t, f0, fs)
    smooth = gaussian_filter1d(eeg, 0.04 * fs)
    frame_times = np.arange(2.0, duration_s - 2.0, 1.0 / fps)
    fluorescence = np.interp(frame_times - lag_s, t, smooth)
    scale = np.std(fluorescence)
    other = gaussian_filter1d(slow_eeg(rng, t, f0, fs), 0.04 * fs)
    control = np.interp(frame_times, t, other)
    return Coupled(
        eeg=eeg,
        fs=fs,
        frame_times=frame_times,
        fps=fps,
        fluorescence=fluorescence + noise * scale * rng.normal(size=frame_times.size),
        control=control + noise * scale * rng.normal(size=frame_times.size),
    )
