"""Analysis windows laid out segment by segment: none crosses a pause, short recordings adapt.

Why: a spectrogram or band-power window that spans a pause joins two stretches of signal
with a step between them and comes out broadband; a window longer than the whole recording
gives nothing at all (and NaN summaries). So windows start at each segment's first sample
and step through it; the windows of that regular layout that would reach across into the
next segment are kept as *masked* (NaN, listed with their times), so a plot shows the pause
as a blank instead of bridging it. When the longest gap-free stretch is shorter than the
requested window the window shrinks to it, with a warning, down to half the request (the
frequency resolution at most doubles); below that the analysis is refused with an error
naming the setting.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ace_assets.ephys.multitaper import multitaper_spectrogram_chunked, plan_multitaper
from ace_assets.errors import AceInputError

Reader = Callable[[int, int], np.ndarray]
#: the window may shrink to this fraction of the requested one, no further
MIN_WINDOW_FRACTION = 0.5


@dataclass
class WindowPlan:
    """Window starts (sample index) and which are masked because they cross a pause."""

    fs: float
    win: int
    step: int
    starts: np.ndarray
    masked: np.ndarray  # bool, per window
    segment_of: np.ndarray  # segment number of each window's start
    requested_window_s: float
    warnings: list[str] = field(default_factory=list)

    @property
    def window_s(self) -> float:
        return self.win / self.fs

    @property
    def adapted(self) -> bool:
        return abs(self.window_s - self.requested_window_s) > 0.5 / self.fs

    def centers(self) -> np.ndarray:
        return self.starts + int(round(self.win / 2))

    def summary(self) -> dict:
        return {
            "window_s": self.window_s,
            "requested_window_s": self.requested_window_s,
            "step_s": self.step / self.fs,
            "windows": int(self.starts.size),
            "masked_windows": int(self.masked.sum()),
            "adapted": self.adapted,
            "warnings": self.warnings,
        }


def plan_windows(
    segments: list[tuple[int, int]],
    fs: float,
    *,
    window_s: float,
    step_s: float,
    setting: str = "ephys_window_s",
) -> WindowPlan:
    """Lay windows out per segment (see module doc); AceInputError if none can fit."""
    win = int(round(window_s * fs))
    step = int(round(step_s * fs))
    if win < 2 or step < 1:
        raise AceInputError(
            f"{setting} = {window_s} s / ephys_step_s = {step_s} s are under two samples / "
            f"one sample at {fs:g} Hz",
            column=setting,
        )
    longest = max(b - a for a, b in segments)
    warnings: list[str] = []
    if win > longest:
        shortest_ok = math.ceil(MIN_WINDOW_FRACTION * win)
        if longest < shortest_ok:
            raise AceInputError(
                f"the longest stretch without a pause is {longest / fs:.3f} s "
                f"({longest} samples at {fs:g} Hz), shorter than half the {setting} of "
                f"{window_s:g} s; set {setting} to at most {longest / fs:.3f} s (column "
                f"'{setting}' of analysis_parameters.csv or run-config key "
                f"ops.analysis_parameters.config.overrides.{setting}), or raise max_fill_s "
                "if the pauses are short enough to fill",
                column=setting,
            )
        warnings.append(
            f"{setting} = {window_s:g} s is longer than the longest stretch without a pause "
            f"({longest / fs:.3f} s): windows of {longest / fs:.3f} s were used instead"
        )
        win = longest
        step = min(step, win)
    starts, masked, seg_of = [], [], []
    for k, (a, b) in enumerate(segments):
        last = k == len(segments) - 1
        s = np.arange(a, b, step, dtype=np.int64)
        fits = s + win <= b
        keep = fits if last else s < b  # windows reaching into the next segment are masked
        starts.append(s[keep])
        masked.append(~fits[keep])
        seg_of.append(np.full(int(keep.sum()), k))
    return WindowPlan(
        fs=float(fs),
        win=win,
        step=step,
        starts=np.concatenate(starts),
        masked=np.concatenate(masked),
        segment_of=np.concatenate(seg_of),
        requested_window_s=float(window_s),
        warnings=warnings,
    )


def spectrogram(
    read: Reader,
    plan: WindowPlan,
    segments: list[tuple[int, int]],
    **settings,
) -> tuple[np.ndarray, np.ndarray]:
    """Multitaper spectrogram of one channel on a window plan: (power (freqs, windows), freqs).

    Masked windows are NaN columns. ``settings`` go to
    :func:`ace_assets.ephys.multitaper.plan_multitaper` (``freq_range``, ``time_bandwidth``,
    ``detrend``...).
    """
    window_s, step_s = plan.win / plan.fs, plan.step / plan.fs
    freqs = plan_multitaper(plan.fs, window_s=window_s, step_s=step_s, **settings).freqs
    out = np.full((freqs.size, plan.starts.size), np.nan)
    for k, (a, b) in enumerate(segments):
        valid = np.flatnonzero((plan.segment_of == k) & ~plan.masked)
        if valid.size:
            power, _, _ = multitaper_spectrogram_chunked(
                lambda i, j, a=a: read(a + i, a + j), b - a, plan.fs,
                window_s=window_s, step_s=step_s, **settings,
            )  # fmt: skip
            out[:, valid] = power[:, : valid.size]
    return out, freqs


def band_power(read: Reader, plan: WindowPlan) -> np.ndarray:
    """Mean square of each window over its finite samples; (windows, channels); masked NaN."""
    out = []
    for start, masked in zip(plan.starts.tolist(), plan.masked.tolist(), strict=True):
        block = np.asarray(read(start, start + plan.win), dtype=np.float64)
        block = block[:, None] if block.ndim == 1 else block
        if masked:
            out.append(np.full(block.shape[1], np.nan))
            continue
        sq = block**2
        with np.errstate(invalid="ignore"):
            out.append(np.nanmean(sq, axis=0) if np.isnan(sq).any() else sq.mean(axis=0))
    return np.array(out)
