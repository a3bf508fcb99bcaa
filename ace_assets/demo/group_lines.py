"""The demo's two groups and their known effect (lines 3 and 6 are given isoflurane).

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

import numpy as np

#: band power (the oscillation's) in the isoflurane lines over that of the lines without drug
ISOFLURANE_OSC_POWER_FACTOR = 4.0
DRUG = "isoflurane"
NO_DRUG = "none"
#: demo lines given a drug (experiments.csv says the same in ``systemic drug``)
DRUG_LINES: dict[int, str] = {3: DRUG, 6: DRUG}


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
