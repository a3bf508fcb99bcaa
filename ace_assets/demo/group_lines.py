"""The demo's two groups and their known effect; demo line 6 (ephys only, isoflurane).

Why: ``cohort_comparisons`` must be shown to recover a between-group effect the generator
put there. The demo's lines fall into two groups by ``systemic drug``: isoflurane (lines 3
and 6, ephys only) and none (lines 1, 2, 4, 5). In the isoflurane lines the oscillation
(``osc_freq``, 7 Hz, inside the analysis band ``filter_range`` [5, 9] Hz) carries
:data:`ISOFLURANE_OSC_POWER_FACTOR` times the power of the other lines' (its amplitude
times the square root); nothing else differs: slow wave, noise and EMG are drawn alike.
Band power in the analysis band is therefore about that factor higher in the isoflurane
group (a little less: the band's share of noise is the same in both groups).

Every line's truth file records its group (``systemic_drug``) and ``osc_power_factor``
(1 for lines without a drug), and the oscillation's true mean power from the generator's
own amplitude envelope: ``true_osc_power_uV2`` at gain 1 (what the PFC LFP channels carry
on every line) and ``true_channel_osc_power_uV2`` per channel of the truth's own
``ephys_channel_names``. A test can so predict the band power each line should show.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ace_assets.demo.ephys_synth import EphysSynthConfig, SyntheticEphys

#: band power (the oscillation's) in the isoflurane lines over that of the lines without drug
ISOFLURANE_OSC_POWER_FACTOR = 4.0
DRUG = "isoflurane"
NO_DRUG = "none"
#: demo lines given a drug (experiments.csv says the same in ``systemic drug``)
DRUG_LINES: dict[int, str] = {3: DRUG, 6: DRUG}
ISOFLURANE_OSC_AMPLITUDE = EphysSynthConfig.osc_amplitude * math.sqrt(ISOFLURANE_OSC_POWER_FACTOR)


def osc_power_factor(line: int) -> float:
    return ISOFLURANE_OSC_POWER_FACTOR if DRUG_LINES.get(line) == DRUG else 1.0


def group_truth(line: int, truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The line's group, its factor, and each channel's true oscillation power (µV²)."""
    out = {
        "systemic_drug": np.array(DRUG_LINES.get(line, NO_DRUG)),
        "osc_power_factor": np.array(osc_power_factor(line)),
    }
    if "ephys_envelope" in truth and "ephys_osc_gain" in truth:
        envelope = np.asarray(truth["ephys_envelope"], dtype=np.float64)
        # A(t) cos(phi): mean power A^2 / 2, averaged over the recording
        unit = float(np.mean(envelope**2) / 2) * 1e12
        gain = np.asarray(truth["ephys_osc_gain"], dtype=np.float64)
        out["true_osc_power_uV2"] = np.array(unit)
        out["true_channel_osc_power_uV2"] = gain**2 * unit
    return out


def isoflurane_line(out: Path, size: Any, seed: int) -> dict[str, Any]:
    """Line 6: line 3's channels and length, isoflurane's oscillation power, no pause."""
    from ace_assets.demo import generate as g

    ls = g._line_seed(seed, 6)
    n = g._ephys_samples(size)
    ephys = SyntheticEphys(
        EphysSynthConfig(
            fs=size.ephys_fs,
            duration_s=n / size.ephys_fs,
            seed=ls,
            osc_amplitude=ISOFLURANE_OSC_AMPLITUDE,
        )
    )
    edir = out / g.LINE_DIRS[6]["ephys"]
    nlx = g.write_ephys_session(edir, ephys, time_created=g.LINE_START[6])
    g._write_events(
        edir / g.EVENTS_FILE,
        np.zeros(0, dtype=np.int64),
        [
            (g.EPHYS_START_US, "Starting Recording"),
            (g._end_us(ephys, g.EPHYS_START_US), "Stopping Recording"),
        ],
        g.LINE_START[6],
    )
    truth = dict(ephys.truth())
    truth.update(g._scalar_truth(6, seed, size == g.FULL_SIZE, size))
    truth["ephys_start_us"] = np.array(g.EPHYS_START_US)
    truth["ephys_clipped_samples"] = nlx["clipped_samples"]
    return {
        "truth": truth,
        "summary": {
            "ephys_dir": str(edir),
            "ephys_channels": list(ephys.channel_names),
            "ephys_samples": ephys.n_samples,
            "ephys_fs": ephys.fs,
            "osc_power_factor": ISOFLURANE_OSC_POWER_FACTOR,
        },
    }
