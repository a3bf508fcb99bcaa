"""Hilbert phase / amplitude envelope and windowed band power of band-passed signals, streamed.

The analytic signal needs the whole signal in principle (the Hilbert kernel 1/(pi t) decays
slowly), so it is computed on overlapping chunks: each chunk is transformed with
``overlap`` extra samples on both sides and only its middle is kept. For a band-passed
signal the error at the kept samples falls as the overlap grows; ``n_cycles`` cycles of the
band's lowest frequency (default 10) keeps the phase within ~1e-2 rad of the
whole-signal transform (see tests). Segment ends (gaps, recording ends) are treated as
the ends of the signal.

Phase convention: ``angle(analytic)`` in (-pi, pi]; 0 at the oscillation's peak, +-pi at
its trough, increasing with time. NaN samples (excluded artefacts) are bridged by linear
interpolation for the transform and are NaN in the outputs, as are samples the reader filled
across a short recording pause.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

from ace_assets.ephys.band_store import open_signal_store
from ace_assets.ephys.filters import bridge_nans
from ace_assets.ephys.masks import blank_unrecorded, unrecorded_runs
from ace_assets.ephys.sidecars import copy_sidecars, segments_from_meta
from ace_assets.io.pages import release_pages
from ace_assets.io.store import ArrayStore, ArrayStoreWriter

Reader = Callable[[int, int], np.ndarray]
Writer = Callable[[int, np.ndarray], None]


def hilbert_overlap(fs: float, low_hz: float, n_cycles: float = 10.0) -> int:
    """Samples of context each side of a chunk: ``n_cycles`` periods of ``low_hz``."""
    if not low_hz > 0:
        raise ValueError(f"low_hz must be positive to size the Hilbert overlap, got {low_hz}")
    return int(math.ceil(n_cycles * fs / low_hz))


def _as2d(block: np.ndarray) -> np.ndarray:
    arr = np.array(block, dtype=np.float64)
    return arr[:, None] if arr.ndim == 1 else arr


def analytic_stream(
    read: Reader,
    write: Writer,
    start: int,
    stop: int,
    *,
    overlap: int,
    chunk_samples: int = 1 << 18,
) -> None:
    """Analytic signal of samples ``start:stop`` in overlapping chunks -> ``write(a, z)``."""
    chunk = max(1, int(chunk_samples))
    for a in range(start, stop, chunk):
        b = min(stop, a + chunk)
        s0, s1 = max(start, a - overlap), min(stop, b + overlap)
        seg = _as2d(read(s0, s1))
        mask = bridge_nans(seg)
        z = signal.hilbert(seg, N=sp_fft.next_fast_len(s1 - s0), axis=0)[: s1 - s0]
        if mask is not None:
            z[mask] = np.nan
        write(a, z[a - s0 : b - s0])


def analytic_signal(
    x: np.ndarray,
    fs: float,
    *,
    low_hz: float,
    n_cycles: float = 10.0,
    chunk_samples: int = 1 << 18,
    segments: list[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Analytic signal of an in-memory band-passed (n,) or (n, c) array (complex128)."""
    data = _as2d(x)
    out = np.empty(data.shape, dtype=np.complex128)

    def write(a: int, z: np.ndarray) -> None:
        out[a : a + z.shape[0]] = z

    ov = hilbert_overlap(fs, low_hz, n_cycles)
    for s0, s1 in segments or [(0, data.shape[0])]:
        analytic_stream(
            lambda a, b: data[a:b], write, s0, s1, overlap=ov, chunk_samples=chunk_samples
        )
    return out[:, 0] if np.ndim(x) == 1 else out


def _low_from_meta(meta: dict[str, Any]) -> float | None:
    filt = meta.get("filter") or {}
    if filt.get("btype") in ("bandpass", "highpass"):
        return float(filt["cutoff_hz"][0])
    return None


def phase_store(
    src: ArrayStore | str | Path,
    phase_path: str | Path,
    amplitude_path: str | Path,
    *,
    low_hz: float | None = None,
    n_cycles: float = 10.0,
    chunk_samples: int = 1 << 18,
    meta: dict[str, Any] | None = None,
) -> tuple[ArrayStore, ArrayStore]:
    """Phase (rad) and amplitude envelope stores (float32, same shape) of a band-passed store.

    ``low_hz`` defaults to the low cutoff recorded by ``filter_store`` in the source meta.
    Each segment in ``src.meta['segments']`` is transformed on its own. Samples that were
    not recorded (filled across a short pause, or NaN; ``src.meta['channel_runs']``) are
    NaN in both outputs: an interpolated stretch has no phase of its own.
    """
    store = src if isinstance(src, ArrayStore) else open_signal_store(src)
    fs = float(store.meta["sampling_rate_hz"])
    low = low_hz if low_hz is not None else _low_from_meta(store.meta)
    if low is None:
        raise ValueError(
            f"{store.path}: pass low_hz (the band's lowest frequency); the store's meta has no "
            "band-pass or high-pass filter to take it from"
        )
    ov = hilbert_overlap(fs, low, n_cycles)
    runs = unrecorded_runs(store.meta)
    info = {**store.meta, "hilbert": {"low_hz": low, "n_cycles": n_cycles, "overlap": ov}}
    info.update(meta or {})
    with (
        ArrayStoreWriter(phase_path, store.shape, np.float32, {**info, "units": "rad"}) as wp,
        ArrayStoreWriter(amplitude_path, store.shape, np.float32, info) as wa,
    ):
        ph, am = wp.array, wa.array

        def write(a: int, z: np.ndarray) -> None:
            z = z.reshape((-1, *store.shape[1:]))
            ph[a : a + z.shape[0]] = blank_unrecorded(np.angle(z), a, runs)
            am[a : a + z.shape[0]] = blank_unrecorded(np.abs(z), a, runs)
            release_pages(ph, am)

        for s0, s1 in segments_from_meta(store.meta, store.shape[0]):
            analytic_stream(store.read, write, s0, s1, overlap=ov, chunk_samples=chunk_samples)
        copy_sidecars(store.path, wp.tmp)
        copy_sidecars(store.path, wa.tmp)
        return wp.commit(), wa.commit()


def band_power_stream(
    read: Reader,
    n_samples: int,
    fs: float,
    *,
    window_s: float,
    step_s: float,
    batch_windows: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean square of a band-passed signal in sliding windows.

    Window geometry matches the spectrogram (starts 0, step, ...; a partial last window is
    dropped; times are centres ``(start + round(win/2)) / fs``). NaN samples are ignored.
    Returns ``(times_s (n_windows,), power (n_windows, n_channels))`` in squared units.
    """
    win, step = int(round(window_s * fs)), int(round(step_s * fs))
    if win < 1 or step < 1:
        raise ValueError(f"window_s / step_s too short for {fs} Hz")
    n_win = 0 if n_samples < win else (n_samples - win) // step + 1
    starts = np.arange(n_win) * step
    times = (starts + int(round(win / 2))) / fs
    parts = []
    for w0 in range(0, n_win, batch_windows):
        w1 = min(n_win, w0 + batch_windows)
        a, b = int(starts[w0]), int(starts[w1 - 1]) + win
        sq = _as2d(read(a, b)) ** 2
        valid = np.isfinite(sq)
        csum = np.concatenate([np.zeros((1, sq.shape[1])), np.cumsum(np.where(valid, sq, 0), 0)])
        ccnt = np.concatenate([np.zeros((1, sq.shape[1])), np.cumsum(valid, 0)])
        lo = starts[w0:w1] - a
        with np.errstate(invalid="ignore", divide="ignore"):
            parts.append((csum[lo + win] - csum[lo]) / (ccnt[lo + win] - ccnt[lo]))
    n_ch = _as2d(read(0, 1)).shape[1] if n_samples else 1
    power = np.concatenate(parts) if parts else np.empty((0, n_ch))
    return times, power


def band_power(
    x: np.ndarray, fs: float, *, window_s: float, step_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """In-memory :func:`band_power_stream`; power is (n_windows,) for a 1-D input."""
    data = _as2d(x)
    times, power = band_power_stream(
        lambda a, b: data[a:b], data.shape[0], fs, window_s=window_s, step_s=step_s
    )
    return times, (power[:, 0] if np.ndim(x) == 1 else power)
