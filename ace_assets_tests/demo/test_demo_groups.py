"""The demo's groups: the catalog and the generator agree on which lines got the drug, and the
drug lines' raw recordings carry the generator's power factor in the analysis band."""

from __future__ import annotations

from pathlib import Path

import neo.rawio as neo_rawio
import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from ace_assets.catalog.experiments import read_experiments
from ace_assets.defs.resources import DEMO_PROJECT
from ace_assets.demo.generate import DEMO_LINES, LINE_DIRS, generate_demo, small_size, truth_path
from ace_assets.demo.group_lines import DRUG_LINES, ISOFLURANE_OSC_POWER_FACTOR, NO_DRUG
from ace_assets.io.store import atomic_save_npz, load_npz


def test_the_catalog_names_the_generators_drug_lines() -> None:
    catalog = read_experiments(DEMO_PROJECT / "experiments.csv")
    assert sorted(catalog.experiments) == list(DEMO_LINES)
    drugs = {n: e.as_row()["systemic_drug"] or NO_DRUG for n, e in catalog.experiments.items()}
    assert drugs == {n: DRUG_LINES.get(n, NO_DRUG) for n in DEMO_LINES}
    groups = set(drugs.values())
    assert len(groups) >= 2
    ephys = {n for n, e in catalog.experiments.items() if e.has_ephys}
    for group in groups:  # a between-group test needs two ephys lines per group
        assert len({n for n in ephys if drugs[n] == group}) >= 2, group


def lfp_band_power(directory: Path, band: tuple[float, float] = (5.0, 9.0)) -> float:
    """Mean square of the PFC LFP in the band, µV², read back from the .ncs files."""
    reader = neo_rawio.NeuralynxRawIO(dirname=str(directory), gap_tolerance_ms=1.0)
    reader.parse_header()
    names = list(reader.header["signal_channels"]["name"])
    pieces = []
    for segment in range(reader.header["nb_segment"][0]):
        raw = reader.get_analogsignal_chunk(0, segment, None, None, stream_index=0)
        pieces.append(
            reader.rescale_signal_raw_to_float(raw, stream_index=0)[
                :, 0 + names.index("PFCLFPvsCBEEG")
            ]
        )
    fs = float(reader.get_signal_sampling_rate(0))
    sos = butter(3, band, "bandpass", fs=fs, output="sos")
    unit = str(reader.header["signal_channels"]["units"][names.index("PFCLFPvsCBEEG")])
    to_uv = {"uV": 1.0, "mV": 1e3, "V": 1e6}[unit]
    return float(np.mean(np.concatenate([sosfiltfilt(sos, p) ** 2 for p in pieces]))) * to_uv**2


def test_drug_lines_carry_the_power_factor_in_their_raw_files(tmp_path: Path) -> None:
    out = tmp_path / "data"
    generate_demo(out, seed=4, size=small_size(), lines=(3, 6))
    truths = {n: load_npz(truth_path(out, n)) for n in (3, 6)}
    for line, truth in truths.items():
        assert str(truth["systemic_drug"]) == "isoflurane"
        assert float(truth["osc_power_factor"]) == ISOFLURANE_OSC_POWER_FACTOR
        # the LFP's band power is the oscillation the truth says (noise adds a few per cent)
        measured = lfp_band_power(out / LINE_DIRS[line]["ephys"])
        assert measured == pytest.approx(float(truth["true_osc_power_uV2"]), rel=0.1)
        # ... which is the factor times what the same envelope gives without the drug
        no_drug = float(truth["true_osc_power_uV2"]) / ISOFLURANE_OSC_POWER_FACTOR
        assert measured / no_drug == pytest.approx(ISOFLURANE_OSC_POWER_FACTOR, rel=0.1)


def test_a_line_written_before_the_groups_is_refused_not_reused(tmp_path: Path) -> None:
    out = tmp_path / "data"
    generate_demo(out, seed=4, size=small_size(), lines=(6,))
    old = dict(load_npz(truth_path(out, 6)))
    del old["osc_power_factor"]
    atomic_save_npz(truth_path(out, 6), **old)
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_demo(out, seed=4, size=small_size(), lines=(6,))
    again = generate_demo(out, seed=4, size=small_size(), lines=(6,), overwrite=True)
    assert again["lines"][6]["status"] == "written"
