"""Component quality (SNR, acceptance) and accuracy against a known ground truth.

SNR is CaImAn's event exceptionality: with the trace's mode ``md`` and the SD ``sd`` of
the values below it, the log-probability of ``N`` consecutive samples at least as high
(``z = (y - md) / (3 sd)`` each) is minimised over time and mapped back to a z-score.
``N = ceil(decay_time * fps)``. Which components are kept is :mod:`.quality`'s business.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import norm

from ace_assets.miniscope.events import detect_events

from .deconvolution import estimate_baseline, noise_psd


def event_exceptionality_snr(traces: np.ndarray, n_samples: int) -> np.ndarray:
    """Per-trace SNR (z-score of the least probable run of ``n_samples`` frames)."""
    x = np.asarray(traces)
    if x.ndim == 1:
        x = x[None]
    n, t = x.shape
    out = np.zeros(n)
    n_samples = max(1, min(int(n_samples), t))
    for k in range(n):
        y = x[k].astype(np.float64)  # one trace at a time: N x T float64 is not small
        sn = float(noise_psd(y))
        md = estimate_baseline(y, sn if sn > 0 else float(np.std(y)) or 1.0)
        below = y[y < md] - md
        if len(below) == 0:
            continue
        sd_r = math.sqrt(float((below**2).sum()) / len(below))
        if sd_r <= 0:
            continue
        z = (y - md) / (3 * sd_r)
        logp = norm.logsf(z)
        run = np.convolve(logp, np.ones(n_samples), mode="full")[:t]
        fitness = float(run.min())
        p = math.exp(fitness / n_samples)
        out[k] = float(-norm.ppf(min(max(p, 1e-300), 1 - 1e-16)))
    return out


# ------------------------------------------------------------------ ground truth


def match_centers(
    true_centers: np.ndarray, found_centers: np.ndarray, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches (true index, found index) within ``max_distance`` (Hungarian)."""
    tc = np.asarray(true_centers, dtype=np.float64).reshape(-1, 2)
    fc = np.asarray(found_centers, dtype=np.float64).reshape(-1, 2)
    if len(tc) == 0 or len(fc) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    d = np.sqrt(((tc[:, None, :] - fc[None, :, :]) ** 2).sum(axis=-1))
    d = np.where(np.isfinite(d), d, 1e9)
    big = 1e6
    cost = np.where(d <= max_distance, d, big)
    ti, fi = linear_sum_assignment(cost)
    ok = cost[ti, fi] < big
    return ti[ok].astype(np.int64), fi[ok].astype(np.int64)


def merge_close(frames: np.ndarray, gap: int) -> np.ndarray:
    """Collapse frames closer than ``gap`` into the first of each run (events, not spikes)."""
    f = np.unique(np.asarray(frames, dtype=np.int64))
    if len(f) == 0:
        return f
    keep = np.concatenate([[True], np.diff(f) > gap])
    return f[keep]


def match_events(true_frames: np.ndarray, found_frames: np.ndarray, tol: int) -> int:
    """Number of one-to-one matches within ``tol`` frames (greedy on sorted lists)."""
    a = np.sort(np.asarray(true_frames, dtype=np.int64))
    b = np.sort(np.asarray(found_frames, dtype=np.int64))
    i = j = hits = 0
    while i < len(a) and j < len(b):
        if b[j] < a[i] - tol:
            j += 1
        elif b[j] > a[i] + tol:
            i += 1
        else:
            hits += 1
            i += 1
            j += 1
    return hits


def _truth_spike_lists(truth_spike_frames: Any, n_true: int) -> list[np.ndarray]:
    """Accept (N, T) spike amplitudes, (n, 2) rows (neuron, frame) or a list per neuron."""
    if isinstance(truth_spike_frames, np.ndarray):
        arr = truth_spike_frames
        if arr.ndim == 2 and arr.shape[0] == n_true and arr.shape[1] != 2:
            return [np.flatnonzero(arr[k] > 0) for k in range(n_true)]
        if arr.ndim == 2 and arr.shape[1] == 2:
            return [np.sort(arr[arr[:, 0] == k, 1]) for k in range(n_true)]
    return [np.asarray(x, dtype=np.int64) for x in truth_spike_frames]


def evaluate_against_truth(
    result: Any,
    truth_centers: np.ndarray,
    truth_C: np.ndarray,
    truth_spike_frames: Any,
    *,
    max_distance: float = 4.0,
    event_tolerance: int = 3,
    event_source: str = "S",
    event_height: float = 3.0,
    derivative_for_estimates: str = "first",
) -> dict[str, float]:
    """Detection recall/precision/F1, median trace correlation and event F1 vs truth.

    Neurons match one-to-one when centres are within ``max_distance`` px (Hungarian on
    distances). Trace correlation: Pearson of matched ``C`` rows. Events: for matched
    neurons, true spike frames (runs closer than ``event_tolerance`` merged into one event)
    against detected events — ``event_source="S"`` uses the frames where the deconvolved
    spikes are non-zero (runs merged the same way), ``"C"`` uses
    :func:`ace_assets.miniscope.events.detect_events` on ``C`` — matched within
    ``event_tolerance`` frames; F1 pooled over neurons.
    """
    tc = np.asarray(truth_centers, dtype=np.float64).reshape(-1, 2)
    n_true = len(tc)
    found = np.asarray(result.centers, dtype=np.float64).reshape(-1, 2)
    n_found = len(found)
    ti, fi = match_centers(tc, found, max_distance)
    n_match = len(ti)
    recall = n_match / n_true if n_true else float("nan")
    precision = n_match / n_found if n_found else (1.0 if n_true == 0 else 0.0)
    f1 = 2 * recall * precision / (recall + precision) if (recall + precision) > 0 else 0.0
    tcs = np.asarray(truth_C, dtype=np.float64)
    corrs = []
    for a, b in zip(ti, fi, strict=True):
        x, y = tcs[a], np.asarray(result.C[b], dtype=np.float64)
        if np.std(x) > 0 and np.std(y) > 0:
            corrs.append(float(np.corrcoef(x, y)[0, 1]))
        else:
            corrs.append(0.0)
    spikes = _truth_spike_lists(truth_spike_frames, n_true)
    if event_source == "C" and n_match:
        ev = detect_events(
            result.C[fi],
            float(getattr(result, "fps", 1.0) or 1.0),
            derivative_for_estimates=derivative_for_estimates,
            event_height=event_height,
            min_separation=event_tolerance,
        )
        found_events = [ev["frame"][ev["component"] == j].to_numpy() for j in range(n_match)]
    else:
        found_events = [
            merge_close(np.flatnonzero(np.asarray(result.S[b]) > 0), event_tolerance) for b in fi
        ]
    tp = fp = fn = 0
    for j, a in enumerate(ti):
        true_ev = merge_close(spikes[a], event_tolerance)
        hits = match_events(true_ev, found_events[j], event_tolerance)
        tp += hits
        fn += len(true_ev) - hits
        fp += len(found_events[j]) - hits
    event_f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")
    return {
        "n_true": float(n_true),
        "n_found": float(n_found),
        "n_matched": float(n_match),
        "recall": float(recall),
        "precision": float(precision),
        "f1": float(f1),
        "median_trace_corr": float(np.median(corrs)) if corrs else float("nan"),
        "event_f1": float(event_f1),
        "event_precision": float(tp / (tp + fp)) if (tp + fp) else float("nan"),
        "event_recall": float(tp / (tp + fn)) if (tp + fn) else float("nan"),
    }
