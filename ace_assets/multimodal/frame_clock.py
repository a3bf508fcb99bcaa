"""EEG/LFP channels resampled onto the Miniscope frame clock, anti-aliased, block by block.

Two views of each channel are made, because coupling is looked for in two ways:

- the *signal*: the channel low-passed below 80 % of the frame Nyquist frequency
  (``0.4 * fps``), then read at each frame's time. Coherence and the signal-level
  cross-correlation use it; picking every n-th sample instead would fold everything above
  ``fps / 2`` (spindles, gamma, line noise) onto the frame spectrum.
- the *envelope* of each EEG band: the channel band-passed (zero-phase Butterworth), its
  Hilbert amplitude low-passed the same way, then read at the frame times. A band above the
  frame rate (gamma at 30 frames/s) still has a slow envelope the movie can follow; that is
  what "the band whose power tracks fluorescence" means.

Every filter is zero-phase (forward-backward), so no lag is introduced: a lag found later is
the data's. The channel is first decimated by an integer factor with a polyphase FIR
(``resample_poly``, also zero-phase) to a rate of at least 2.5 times the highest band edge,
so a 32 kHz hour costs little more than reading it.

Bounded memory: frames are processed in blocks of ``block_s`` seconds; each block reads only
the ephys samples under it plus ``pad_s`` on each side (the filters' settling time, then
discarded), never the whole recording. Frames whose neighbourhood holds unrecorded samples
(NaN in the reader's output), or that lie outside the recording or in a pause, are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, hilbert, resample_poly, sosfiltfilt

#: reads samples [start, stop) of every channel -> (stop - start, n_channels), NaN = unrecorded
Reader = Callable[[int, int], np.ndarray]
#: the low-pass cut-off as a fraction of the frame rate (0.5 would be the Nyquist frequency)
CUTOFF_FRACTION = 0.4


@dataclass(frozen=True)
class FrameClockEphys:
    """Channels on the frame clock: ``signal`` (frames, channels), ``envelopes`` (bands, ...)."""

    signal: np.ndarray
    envelopes: np.ndarray
    bands: tuple[tuple[float, float], ...]
    cutoff_hz: float
    decimated_fs: float


def band_label(band: Sequence[float]) -> str:
    """``[4, 8]`` -> ``"4-8Hz"``: how a band is named in tables and column names."""
    return f"{float(band[0]):g}-{float(band[1]):g}Hz"


def ephys_on_frame_clock(
    read: Reader,
    n_samples: int,
    fs: float,
    positions: np.ndarray,
    fps: float,
    bands: Sequence[Sequence[float]],
    *,
    block_s: float = 60.0,
    pad_s: float | None = None,
) -> FrameClockEphys:
    """Each channel's signal and band envelopes at the frames' fractional sample ``positions``.

    ``positions`` (one per frame, NaN where the frame has no ephys) are fractional indices
    into the store (``SampleClock.position`` of the frame times on the ephys clock).
    ``pad_s`` defaults to ten periods of the lowest band edge or cut-off (at least 5 s).
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    band_list = tuple((float(a), float(b)) for a, b in bands)
    cutoff = CUTOFF_FRACTION * fps
    top = max([cutoff, *[b for _, b in band_list]])
    q = max(1, int(math.floor(fs / (2.5 * top))))
    mid_fs = fs / q
    lowest = min([cutoff, *[a for a, _ in band_list]])
    pad = pad_s if pad_s is not None else max(5.0, 10.0 / lowest)
    pad_n = int(math.ceil(pad * fs / q)) * q
    low_sos = butter(4, cutoff, btype="lowpass", fs=mid_fs, output="sos")
    band_sos = [butter(3, [a, b], btype="bandpass", fs=mid_fs, output="sos") for a, b in band_list]
    guard = max(1, int(math.ceil(mid_fs / cutoff)))  # a NaN this close spoils a frame
    n_frames, n_blocks = pos.size, max(1, int(math.ceil(pos.size / max(1.0, block_s * fps))))
    signal: np.ndarray | None = None
    envelopes: np.ndarray | None = None
    for idx in np.array_split(np.arange(n_frames), n_blocks):
        p = pos[idx]
        ok = np.isfinite(p) & (p >= 0) & (p <= n_samples - 1)
        if not ok.any():
            continue
        lo = max(0, (int(math.floor(p[ok].min())) - pad_n) // q * q)
        hi = min(n_samples, int(math.ceil(p[ok].max())) + 1 + pad_n)
        block = np.asarray(read(lo, hi), dtype=np.float64)
        if block.ndim == 1:
            block = block[:, None]
        if signal is None or envelopes is None:
            signal = np.full((n_frames, block.shape[1]), np.nan)
            envelopes = np.full((len(band_list), n_frames, block.shape[1]), np.nan)
        missing = ~np.isfinite(block)
        mid = resample_poly(np.where(missing, 0.0, block), 1, q, axis=0)
        bad = _decimated_mask(missing, q, mid.shape[0], guard)
        at = (p[ok] - lo) / q  # fractional index into the decimated block
        near = np.rint(np.clip(at, 0, mid.shape[0] - 1)).astype(np.int64)
        rows = idx[ok]
        lowpassed = _filt(low_sos, mid)
        for c in range(mid.shape[1]):
            value = np.interp(at, np.arange(mid.shape[0]), lowpassed[:, c])
            signal[rows, c] = np.where(bad[near, c], np.nan, value)
        for k, sos in enumerate(band_sos):
            amplitude = np.abs(hilbert(_filt(sos, mid), axis=0))
            smooth = _filt(low_sos, amplitude)
            for c in range(mid.shape[1]):
                value = np.interp(at, np.arange(mid.shape[0]), smooth[:, c])
                envelopes[k, rows, c] = np.where(bad[near, c], np.nan, value)
    if signal is None or envelopes is None:
        raise ValueError("no frame lies within the ephys recording")
    return FrameClockEphys(signal, envelopes, band_list, cutoff, mid_fs)


def _filt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    padlen = min(x.shape[0] - 1, 3 * (2 * sos.shape[0] + 1))
    return sosfiltfilt(sos, x, axis=0, padlen=max(0, padlen))


def _decimated_mask(missing: np.ndarray, q: int, n_mid: int, guard: int) -> np.ndarray:
    """Decimated samples within ``guard`` samples of an unrecorded input sample."""
    n_ch = missing.shape[1]
    bad = np.zeros((n_mid, n_ch), dtype=bool)
    if not missing.any():
        return bad
    full = missing[: (missing.shape[0] // q) * q].reshape(-1, q, n_ch).any(axis=1)
    bad[: min(n_mid, full.shape[0])] = full[:n_mid]
    if missing.shape[0] % q and n_mid > full.shape[0]:
        bad[full.shape[0]] = missing[full.shape[0] * q :].any(axis=0)
    kernel = np.ones(2 * guard + 1)
    for c in range(n_ch):
        bad[:, c] = np.convolve(bad[:, c].astype(float), kernel, mode="same") > 0
    return bad
