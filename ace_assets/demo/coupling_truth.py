"""The demo's known fluorescence-EEG coupling, and how far a coupling result is from it.

The generator (``ace_assets.demo.generate._line_1``) makes some neurons fire at a preferred
phase ``phi_p`` of the ephys oscillation (frequency ``f``): their spike rate follows
``cos(phi - phi_p)``, while a channel carries ``cos(phi + offset)``. So the spikes lag that
channel by ``phi_p + offset`` radians; the calcium kernel (AR coefficients ``g`` at the
frame rate) adds its own phase delay ``-arg H(f)``, ``H = 1 / (1 - sum_i g_i z^-(i+1))``.
The fluorescence therefore follows the channel by

    lag = wrap(phi_p + offset - arg H(f)) / (2 pi f)    (modulo one period 1/f)

on channels with an oscillation (``osc_gain > 0``); others carry no coupling. The pipeline
never reads the truth except through these functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ace_assets.demo.truth import Match, truth_for


def expected_coupling(data_dir: Path, line: int) -> dict | None:
    """``{"freq_hz", "lag_s": {channel: s}, "coupled": {channel: bool}}``; None if not known."""
    truth = truth_for(data_dir, line)
    if truth is None or "locked" not in truth or "osc_freq" not in truth:
        return None
    locked = truth["locked"].astype(bool)
    if not locked.any():
        return None
    f = float(truth["osc_freq"])
    fps = float(truth["fps"])
    g = np.atleast_1d(truth["g"]).astype(np.float64)
    z = np.exp(-2j * np.pi * f / fps * np.arange(1, g.size + 1))
    delay = -float(np.angle(1.0 / (1.0 - (g * z).sum())))
    preferred = float(np.nanmean(truth["preferred_phase"][locked]))
    names = [str(n) for n in truth["ephys_channel_names"]]
    lags, coupled = {}, {}
    for name, gain, offset in zip(
        names, truth["ephys_osc_gain"], truth["ephys_osc_phase_offset"], strict=True
    ):
        theta = math.remainder(preferred + float(offset) + delay, 2 * math.pi)
        lags[name] = theta / (2 * math.pi * f)
        coupled[name] = bool(gain > 0)
    return {"freq_hz": f, "lag_s": lags, "coupled": coupled, "locked": locked}


def lag_error_s(measured: float, expected: float, freq_hz: float) -> float:
    """``measured - expected`` wrapped to half a period: a narrowband lag is known modulo 1/f."""
    period = 1.0 / freq_hz
    return float((measured - expected + period / 2) % period - period / 2)


def score_coupling(
    data_dir: Path,
    line: int,
    spectra: Mapping[str, np.ndarray],
    peaks: pd.DataFrame,
    match: Match,
) -> dict[str, float]:
    """How well the whole-session coupling recovers the generator's.

    ``spectra``: the whole session's spectra arrays
    (:meth:`ace_assets.multimodal.coupling.CouplingResult.spectra_arrays`); ``peaks``: the
    whole session's rows of the peaks table; ``match``: source id -> generator neuron.
    The known frequency is chosen before looking, so its per-frequency level applies.
    Scores, on the first channel carrying the oscillation unless named otherwise:

    - ``locked_coherent`` / ``unlocked_coherent``: fraction of the sources matched to
      locked / unlocked neurons whose coherence at the known frequency passes the level;
    - ``locked_coherent_uncoupled_channel``: the same for locked sources on a channel
      without the oscillation (EMG), a false-positive rate;
    - ``locked_lag_error_ms``: median |lag - expected| (modulo a period) of the coherent
      locked sources; ``locked_peak_freq_hz``: median peak frequency of the locked sources.
    """
    known = expected_coupling(data_dir, line)
    if known is None or not spectra:
        return {}
    f = known["freq_hz"]
    channels = [str(c) for c in spectra["channels"]]
    coupled = [c for c in channels if known["coupled"].get(c)]
    free_channels = [c for c in channels if known["coupled"].get(c) is False]
    if not coupled:
        return {}
    k = int(np.argmin(np.abs(spectra["freqs_hz"] - f)))
    f_bin = float(spectra["freqs_hz"][k])
    groups: dict[bool, list[int]] = {True: [], False: []}
    for i, name in enumerate(str(s) for s in spectra["signals"]):
        sid = name.removeprefix("source_")
        if name.startswith("source_") and sid in match:
            groups[bool(known["locked"][int(match[sid])])].append(i)

    def coherent(rows: list[int], channel: str) -> np.ndarray:
        j = channels.index(channel)
        return spectra["coherence"][rows, j, k] > spectra["level"][rows, j]

    scores: dict[str, float] = {}
    main = coupled[0]
    for locked, rows in groups.items():
        if rows:
            name = "locked" if locked else "unlocked"
            scores[f"{name}_coherent"] = float(coherent(rows, main).mean())
    rows = groups[True]
    if rows:
        if free_channels:
            scores["locked_coherent_uncoupled_channel"] = float(
                coherent(rows, free_channels[0]).mean()
            )
        hit = [r for r, ok in zip(rows, coherent(rows, main), strict=True) if ok]
        j = channels.index(main)
        errors = [
            lag_error_s(spectra["phase"][r, j, k] / (2 * math.pi * f_bin), known["lag_s"][main], f)
            for r in hit
        ]
        if errors:
            scores["locked_lag_error_ms"] = 1e3 * float(np.median(np.abs(errors)))
        names = {str(spectra["signals"][r]) for r in rows}
        mine = peaks[(peaks["channel"] == main) & peaks["signal"].isin(names)]
        if len(mine) and "peak_freq_hz" in mine:
            scores["locked_peak_freq_hz"] = float(np.nanmedian(mine["peak_freq_hz"]))
    return scores
