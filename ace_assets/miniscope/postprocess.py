"""Post-processing of extracted calcium traces: filtering, phase, spectra, z-scores, ETAs.

Parameter names follow the reference (``n``, ``cut``, ``ftype``, ``btype``,
``window_length``, ``window_step``, ``freq_lims``, ``time_bandwidth``, ``frameWindow``,
``framesb``, ``framesa``). All functions take (components, frames) arrays in memory:
traces are N x T, small next to the movie.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import signal
from scipy.ndimage import uniform_filter1d

from ace_assets.errors import AceInputError

FILTER_TYPES = ("butter", "cheby1", "cheby2", "ellip", "bessel")
BAND_TYPES = ("bandpass", "lowpass", "highpass", "bandstop")


def _as_2d(traces: np.ndarray, name: str = "traces") -> np.ndarray:
    x = np.asarray(traces, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise AceInputError(f"expected {name} of shape (components, frames), got {x.shape}")
    return x


def bandpass_traces(
    traces: np.ndarray,
    fps: float,
    *,
    n: int = 2,
    cut: Sequence[float] | float = (0.1, 1.5),
    ftype: str = "butter",
    btype: str = "bandpass",
    rp: float = 1.0,
    rs: float = 40.0,
) -> np.ndarray:
    """Zero-phase IIR filtering of each trace (second-order sections, forward-backward).

    ``cut`` is ``[low, high]`` Hz for band filters, one frequency for low/high-pass.
    ``rp``/``rs`` (dB) are used by the Chebyshev and elliptic designs only.
    """
    x = _as_2d(traces)
    if not fps or fps <= 0:
        raise AceInputError(f"fps must be positive, got {fps}", column="fps")
    if ftype not in FILTER_TYPES:
        raise AceInputError(f"ftype must be one of {FILTER_TYPES}, got {ftype!r}", column="ftype")
    if btype not in BAND_TYPES:
        raise AceInputError(f"btype must be one of {BAND_TYPES}, got {btype!r}", column="btype")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise AceInputError(f"filter order n must be a positive integer, got {n!r}", column="n")
    nyq = fps / 2.0
    wn = np.atleast_1d(np.asarray(cut, dtype=np.float64))
    need = 2 if btype in ("bandpass", "bandstop") else 1
    if wn.size != need:
        raise AceInputError(
            f"cut must have {need} frequenc{'ies' if need == 2 else 'y'} for btype {btype!r}, "
            f"got {list(wn)}",
            column="cut",
        )
    if np.any(wn <= 0) or np.any(wn >= nyq) or (need == 2 and wn[0] >= wn[1]):
        raise AceInputError(
            f"cut {list(wn)} Hz must be increasing and strictly between 0 and the Nyquist "
            f"frequency {nyq:g} Hz (frame rate {fps:g})",
            column="cut",
        )
    sos = signal.iirfilter(
        n,
        wn if need == 2 else float(wn[0]),
        rp=rp if ftype in ("cheby1", "ellip") else None,
        rs=rs if ftype in ("cheby2", "ellip") else None,
        btype=btype,
        ftype=ftype,
        fs=fps,
        output="sos",
    )
    padlen = 3 * (2 * len(sos) + 1)
    if x.shape[1] <= padlen:
        raise AceInputError(
            f"traces have {x.shape[1]} frames; zero-phase filtering of order {n} needs more "
            f"than {padlen}",
        )
    return signal.sosfiltfilt(sos, x, axis=-1)


def hilbert_phase(filtered: np.ndarray) -> np.ndarray:
    """Instantaneous phase (radians, -pi..pi) of band-passed traces."""
    x = _as_2d(filtered, "filtered traces")
    return np.angle(signal.hilbert(x, axis=-1))


def zscore_traces(traces: np.ndarray, frameWindow: int | None = 1000) -> np.ndarray:
    """Z-score each trace against a centred sliding window of ``frameWindow`` frames.

    ``frameWindow=None`` (or longer than the trace) uses the whole trace. Edges use the
    nearest full window (reflected), so slow drifts do not masquerade as activity.
    """
    x = _as_2d(traces)
    t = x.shape[1]
    if frameWindow is None or frameWindow >= t:
        mu = x.mean(axis=1, keepdims=True)
        sd = x.std(axis=1, keepdims=True)
    else:
        if frameWindow < 2:
            raise AceInputError(
                f"frameWindow must be >= 2 frames, got {frameWindow}", column="frameWindow"
            )
        mu = uniform_filter1d(x, size=int(frameWindow), axis=1, mode="reflect")
        m2 = uniform_filter1d(x * x, size=int(frameWindow), axis=1, mode="reflect")
        sd = np.sqrt(np.maximum(m2 - mu * mu, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(sd > 0, (x - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    return z


def population_signal(traces: np.ndarray) -> np.ndarray:
    """Mean of the z-scored traces (whole-trace z-score): the population activity."""
    x = _as_2d(traces)
    if x.shape[0] == 0:
        return np.zeros(x.shape[1])
    return zscore_traces(x, None).mean(axis=0)


def population_spectrogram(
    traces: np.ndarray,
    fps: float,
    *,
    window_length: float = 30.0,
    window_step: float = 3.0,
    freq_lims: Sequence[float] = (0.0, 15.0),
    time_bandwidth: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multitaper spectrogram of the population signal: ``(S (freqs, windows), times_s,
    freqs_hz)``, via :func:`ace_assets.ephys.multitaper.multitaper_spectrogram`."""
    from ace_assets.ephys.multitaper import multitaper_spectrogram

    x = _as_2d(traces)
    if not fps or fps <= 0:
        raise AceInputError(f"fps must be positive, got {fps}", column="fps")
    duration = x.shape[1] / fps
    if window_length <= 0 or window_step <= 0:
        raise AceInputError(
            f"window_length and window_step must be > 0 s, got {window_length}, {window_step}",
            column="window_length",
        )
    if duration < window_length:
        raise AceInputError(
            f"traces last {duration:.1f} s, shorter than one window_length of {window_length:g} s",
            column="window_length",
        )
    lo, hi = (float(v) for v in freq_lims)
    hi = min(hi, fps / 2.0)
    pop = population_signal(x)
    return multitaper_spectrogram(
        pop,
        fps,
        window_s=float(window_length),
        step_s=float(window_step),
        freq_range=(lo, hi),
        time_bandwidth=float(time_bandwidth),
    )


def event_triggered_average(
    signal_: np.ndarray,
    event_frames: Sequence[int] | np.ndarray,
    framesb: int,
    framesa: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average of ``signal_`` ((M, T) or (T,)) around events, ``framesb`` before to
    ``framesa`` after.

    Returns ``(mean (M, L), segments (E, M, L), lags)`` with ``L = framesb + framesa + 1``
    and ``lags`` in frames (event at 0). Events too close to either end are dropped.
    """
    x = _as_2d(signal_, "signal")
    if framesb < 0 or framesa < 0:
        raise AceInputError(
            f"framesb and framesa must be >= 0, got {framesb}, {framesa}", column="framesb"
        )
    t = x.shape[1]
    ev = np.asarray(event_frames, dtype=np.int64).reshape(-1)
    ok = (ev - framesb >= 0) & (ev + framesa < t)
    ev = ev[ok]
    lags = np.arange(-framesb, framesa + 1)
    if len(ev) == 0:
        return (
            np.full((x.shape[0], len(lags)), np.nan),
            np.zeros((0, x.shape[0], len(lags))),
            lags,
        )
    idx = ev[:, None] + lags[None, :]
    segments = np.transpose(x[:, idx], (1, 0, 2))
    return segments.mean(axis=0), segments, lags


def component_event_triggered_averages(
    traces: np.ndarray,
    events: pd.DataFrame,
    framesb: int,
    framesa: int,
    *,
    ids: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each component's own trace averaged around its own events.

    ``events`` has ``component`` and ``frame`` columns (as from
    :func:`ace_assets.miniscope.events.detect_events`). Returns ``(eta (N, L), n_events (N,),
    lags)``; components without usable events get NaN rows.
    """
    x = _as_2d(traces)
    labels = np.arange(x.shape[0]) if ids is None else np.asarray(ids)
    lags = np.arange(-framesb, framesa + 1)
    out = np.full((x.shape[0], len(lags)), np.nan)
    counts = np.zeros(x.shape[0], dtype=np.int64)
    for k, label in enumerate(labels):
        frames = events.loc[events["component"] == label, "frame"].to_numpy()
        mean, seg, _ = event_triggered_average(x[k], frames, framesb, framesa)
        counts[k] = seg.shape[0]
        if seg.shape[0]:
            out[k] = mean[0]
    return out, counts, lags
