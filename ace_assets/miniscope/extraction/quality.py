"""Which candidate components are kept as cells, and why each of the others is not.

CaImAn keeps a component if its SNR >= ``min_SNR`` **or** its r-value >= ``rval_thr``.
On one-photon movies that let through what no scientist would call a cell: 66 of 159
kept components of one real run had SNR < ``min_SNR``, and residual stripe noise became
"cells" 4-9 px wide and 35-44 px long whose traces pulse each time the band passes. Here
a candidate must pass every rule; each rule it fails is a reason, reported per component:

``low_snr``
    event-exceptionality SNR below ``min_SNR``: a hard floor. Departure from CaImAn: a
    high r-value (``rval_thr``) no longer rescues a low SNR.
``r_value_floor``
    r-value at CaImAn's floor (-1): the footprint is anti-correlated with the data.
``elongated``
    the footprint's long-axis SD over its short-axis SD exceeds
    ``max_footprint_elongation`` times the aspect ratio ``gSig`` describes (1 if round).
``too_large``
    the footprint's long-axis SD exceeds ``max_footprint_size`` times the larger ``gSig``.
``too_small``
    the footprint's long-axis SD is below ``min_footprint_size`` times the smaller
    ``gSig``: a speck (a hot pixel, a corrupted block's edge), not a cell.
``stripe_frequency``
    more than ``max_periodic_power`` of the raw trace's power sits on the harmonics of the
    frequencies at which the denoiser saw stripes pass a row (``stripe_frequencies_hz``).
``periodic``
    the same for the most periodic fundamental found in the trace itself (searched from
    ``1 / (pi * decay_time)``, 0.8 Hz for 0.4 s, and from 20 cycles per movie up: no
    stripe frequencies needed), on a footprint stretched beyond
    :data:`PERIODIC_ELONGATION` times gSig's aspect.

Both periodicity rules need the harmonics to stand out of the spectrum between them
(:data:`PROMINENCE`): a neuron's transients spread power smoothly over frequency, a band
passing at a fixed rate puts it on a comb. A periodic trace alone does not make a stripe:
a neuron firing on most cycles of a regular rhythm (slow waves under anaesthesia) has one
too, which is why the data-driven rule also asks for a stretched footprint (a band's
segment) and is measured, not applied, on round ones (``periodic_power`` in the result's
``info``). A neuron firing phase-locked to a fast oscillation keeps its power at low
frequencies (the calcium kernel low-passes the locking). ``test_extraction_quality.py``
checks these cases, and traces with only two or three transients (comb-like spectra).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.signal import welch

REASONS = (
    "low_snr",
    "r_value_floor",
    "elongated",
    "too_large",
    "too_small",
    "stripe_frequency",
    "periodic",
)
RVAL_LOWEST = -1.0
#: frames per Welch segment: ~17 s at 30 fps (0.06 Hz resolution), longer for slow stripes
SEGMENT = 512
#: a harmonic's band is +-this many frequency bins (a Hann window's main lobe is +-2)
HALF_BINS = 2.5
#: a fundamental is testable with at least this many cycles per spectral segment
MIN_CYCLES = 6
#: the comb's power per bin must be this many times the power per bin between harmonics
PROMINENCE = 4.0
#: harmonics summed when searching for a fundamental (the grid step moves the k-th k/4 bin)
SEARCH_HARMONICS = 8
#: cycles of a fundamental the whole movie must hold before the search trusts a comb
SEARCH_MIN_CYCLES = 20
#: the data-driven rule rejects only footprints at least this elongated (x gSig's aspect)
PERIODIC_ELONGATION = 1.5


@dataclass
class Rules:
    """The acceptance thresholds (CSV names in the docstring above)."""

    min_snr: float
    gsig: tuple[float, float]
    max_elongation: float
    max_size: float
    min_size: float
    max_periodic_power: float
    decay_time: float | None


@dataclass
class Periodicity:
    """Per trace: comb share and prominence at the stripe frequencies and at the most
    periodic fundamental found in the data."""

    stripe_share: np.ndarray
    stripe_prominence: np.ndarray
    share: np.ndarray
    prominence: np.ndarray
    hz: np.ndarray  # that fundamental (NaN if none stood out)
    untested_hz: list[float] = field(default_factory=list)  # stripes too slow for the movie


@dataclass
class Quality:
    """Per-candidate measurements and the rules each candidate failed."""

    snr: np.ndarray
    r_values: np.ndarray
    major_sd: np.ndarray  # px, long-axis SD of each footprint
    minor_sd: np.ndarray  # px
    periodicity: Periodicity
    reasons: list[list[str]] = field(default_factory=list)

    @property
    def keep(self) -> np.ndarray:
        return np.array([not r for r in self.reasons], dtype=bool)

    @property
    def elongation(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            line = np.where(self.major_sd > 0, np.inf, 1.0)  # a line; a single pixel is round
            return np.where(self.minor_sd > 0, self.major_sd / self.minor_sd, line)

    def counts(self) -> dict[str, int]:
        """Rejected candidates per reason (a candidate can fail several rules)."""
        return {r: sum(r in rs for rs in self.reasons) for r in REASONS}


# ------------------------------------------------------------------ footprints


def footprint_axes(a: sp.csc_matrix, dims: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(major, minor) SDs in px of each footprint's weight distribution (its columns)."""
    a = sp.csc_matrix(a)
    _, w = dims
    n = a.shape[1]
    major = np.zeros(n)
    minor = np.zeros(n)
    for k in range(n):
        rows = a.indices[a.indptr[k] : a.indptr[k + 1]]
        vals = np.clip(a.data[a.indptr[k] : a.indptr[k + 1]].astype(np.float64), 0, None)
        tot = vals.sum()
        if tot <= 0:
            continue
        ys, xs = rows // w, rows % w
        my, mx = (vals * ys).sum() / tot, (vals * xs).sum() / tot
        cyy = (vals * (ys - my) ** 2).sum() / tot
        cxx = (vals * (xs - mx) ** 2).sum() / tot
        cxy = (vals * (ys - my) * (xs - mx)).sum() / tot
        ev = np.linalg.eigvalsh(np.array([[cyy, cxy], [cxy, cxx]]))
        major[k] = math.sqrt(max(ev[1], 0.0))
        minor[k] = math.sqrt(max(ev[0], 0.0))
    return major, minor


# ------------------------------------------------------------------ periodicity


def min_search_frequency(decay_time: float | None) -> float:
    """Lowest fundamental (Hz) of the data-driven search: twice the calcium kernel's
    corner frequency; above it a transient-driven trace holds < ~40% of its power."""
    return 1.0 / (math.pi * (decay_time or 0.4))


def folded(freq_hz: float, fps: float) -> float:
    """The frequency a sampled signal at ``freq_hz`` shows (aliased into [0, fps/2])."""
    f = abs(float(freq_hz)) % fps
    return min(f, fps - f)


def comb_masks(
    freqs: np.ndarray, fundamentals: Sequence[float], fps: float, max_harmonics: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Bins near the harmonics of the fundamentals (comb) and halfway between them (gaps),
    each harmonic aliased as sampling shows it."""
    df = freqs[1] - freqs[0]
    comb = np.zeros(len(freqs), dtype=bool)
    gaps = np.zeros(len(freqs), dtype=bool)
    for f0 in fundamentals:
        half = min(HALF_BINS * df, f0 / 4.0)
        k_max = max(1, int((fps / 2.0) // f0))
        if max_harmonics is not None:
            k_max = min(k_max, max_harmonics)
        for k in range(1, k_max + 1):
            comb |= np.abs(freqs - folded(k * f0, fps)) <= half
            gaps |= np.abs(freqs - folded((k - 0.5) * f0, fps)) <= half
    comb[0] = False
    gaps &= ~comb
    gaps[0] = False
    return comb, gaps


def _comb_scores(
    psd: np.ndarray, combs: np.ndarray, gaps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N, G) comb shares of the non-DC power and comb-over-gap power per bin, for G combs
    given as (G, bins) masks."""
    total = psd[:, 1:].sum(axis=1, keepdims=True)
    total[total <= 0] = np.inf
    cw = combs.astype(np.float64)
    gw = gaps.astype(np.float64)
    comb_sum = psd @ cw.T
    gap_sum = psd @ gw.T
    n_comb = np.maximum(cw.sum(axis=1), 1)
    n_gap = gw.sum(axis=1)
    share = comb_sum / total
    with np.errstate(divide="ignore", invalid="ignore"):
        gap_mean = np.where(n_gap > 0, gap_sum / np.maximum(n_gap, 1), 0.0)
        prom = np.where(gap_mean > 0, (comb_sum / n_comb) / gap_mean, np.inf)
    return share, prom


def _welch(x: np.ndarray, fps: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    return welch(x.astype(np.float64), fs=fps, nperseg=nperseg, detrend="constant", axis=-1)


def periodicity(
    traces: np.ndarray,
    fps: float,
    *,
    stripe_frequencies_hz: Sequence[float] = (),
    min_freq: float,
    block: int = 32,
) -> Periodicity:
    """How much of each trace's power sits on the harmonics of one fundamental.

    Given stripe frequencies are tested down to :data:`MIN_CYCLES` cycles per spectral
    segment (segments are lengthened for slow stripes when the movie is long enough); the
    search over fundamentals starts at ``min_freq``, below which transients dominate.
    Traces are taken ``block`` at a time (Welch's segments of a block are ~2x its size).
    """
    x = np.atleast_2d(np.asarray(traces))
    n, t = x.shape
    stripes = sorted({folded(f, fps) for f in stripe_frequencies_hz} - {0.0})
    out = Periodicity(
        np.zeros(n), np.full(n, np.nan), np.zeros(n), np.full(n, np.nan), np.full(n, np.nan)
    )
    out.untested_hz = list(stripes)
    if n == 0 or t < 16:
        return out
    if stripes:
        nperseg = int(min(t, max(SEGMENT, math.ceil(MIN_CYCLES * fps / min(stripes)))))
        freqs = np.fft.rfftfreq(nperseg, 1.0 / fps)
        lowest = MIN_CYCLES * (freqs[1] - freqs[0]) * (1 - 1e-9)
        testable = [f for f in stripes if f >= lowest]
        out.untested_hz = [f for f in stripes if f < lowest]
        if testable:
            comb, gaps = comb_masks(freqs, testable, fps, None)
            for a in range(0, n, block):
                _, psd = _welch(x[a : a + block], fps, nperseg)
                share, prom = _comb_scores(psd, comb[None], gaps[None])
                out.stripe_share[a : a + block] = share[:, 0]
                out.stripe_prominence[a : a + block] = prom[:, 0]
    nperseg = min(t, SEGMENT)
    freqs = np.fft.rfftfreq(nperseg, 1.0 / fps)
    df = freqs[1] - freqs[0]
    lowest = max(min_freq, MIN_CYCLES * df, SEARCH_MIN_CYCLES * fps / t)
    grid = np.arange(lowest, fps / 2.0, df / 2.0)
    if not len(grid):
        return out
    masks = [comb_masks(freqs, [float(f0)], fps, SEARCH_HARMONICS) for f0 in grid]
    combs, gaps = np.stack([m[0] for m in masks]), np.stack([m[1] for m in masks])
    for a in range(0, n, block):
        _, psd = _welch(x[a : a + block], fps, nperseg)
        share, prom = _comb_scores(psd, combs, gaps)
        score = np.where(prom >= PROMINENCE, share, -1.0)
        top = score.max(axis=1, keepdims=True)
        # a subharmonic's comb holds the same power with every other tooth empty: among
        # near-equal shares, report the fundamental that stands out most
        near = (score >= 0) & (score >= 0.95 * top)
        best = np.argmax(np.where(near, prom, -np.inf), axis=1)
        rows = np.arange(len(psd))
        found = near[rows, best]
        out.share[a : a + block] = np.where(found, share[rows, best], 0.0)
        out.prominence[a : a + block] = np.where(found, prom[rows, best], np.nan)
        out.hz[a : a + block] = np.where(found, grid[best], np.nan)
    return out


# ------------------------------------------------------------------ the verdict


def assess(
    a: sp.csc_matrix,
    dims: tuple[int, int],
    c_raw: np.ndarray,
    snr: np.ndarray,
    r_values: np.ndarray,
    fps: float,
    rules: Rules,
    *,
    stripe_frequencies_hz: Sequence[float] = (),
) -> Quality:
    """Measure every candidate and list the rules it fails (an empty list: kept)."""
    major, minor = footprint_axes(a, dims)
    per = periodicity(
        c_raw,
        fps,
        stripe_frequencies_hz=stripe_frequencies_hz,
        min_freq=min_search_frequency(rules.decay_time),
    )
    q = Quality(np.asarray(snr, float), np.asarray(r_values, float), major, minor, per)
    g_major, g_minor = max(rules.gsig), min(rules.gsig)
    aspect = g_major / max(g_minor, 1e-9)
    max_elong = rules.max_elongation * aspect
    elong = q.elongation
    cap = rules.max_periodic_power
    for k in range(len(major)):
        why = []
        if not q.snr[k] >= rules.min_snr:
            why.append("low_snr")
        if np.isfinite(q.r_values[k]) and q.r_values[k] <= RVAL_LOWEST:
            why.append("r_value_floor")
        if elong[k] > max_elong:
            why.append("elongated")
        if major[k] > rules.max_size * g_major:
            why.append("too_large")
        if major[k] < rules.min_size * g_minor:
            why.append("too_small")
        if per.stripe_share[k] > cap and per.stripe_prominence[k] >= PROMINENCE:
            why.append("stripe_frequency")
        stretched = elong[k] > PERIODIC_ELONGATION * aspect
        if per.share[k] > cap and per.prominence[k] >= PROMINENCE and stretched:
            why.append("periodic")
        q.reasons.append(why)
    return q


def describe(q: Quality, k: int) -> dict[str, Any]:
    """JSON-friendly measurements of candidate ``k``."""

    def num(v: float) -> float | None:
        return round(float(v), 3) if np.isfinite(v) else None

    p = q.periodicity
    return {
        "snr": num(q.snr[k]),
        "r_value": num(q.r_values[k]),
        "major_sd_px": num(q.major_sd[k]),
        "minor_sd_px": num(q.minor_sd[k]),
        "stripe_power": num(p.stripe_share[k]),
        "periodic_power": num(p.share[k]),
        "periodic_hz": num(p.hz[k]),
    }
