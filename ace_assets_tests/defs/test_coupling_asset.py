"""fluorescence_eeg_coupling on the demo: line 1's known coupling (neurons phase-locked to the
7 Hz oscillation) is found at its frequency with the lag the generator implies; a line
without both modalities is not applicable, as for multimodal_results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ace_assets.definitions import all_assets
from ace_assets.defs.line_runs import materialize_line
from ace_assets.defs.resources import PathsResource
from ace_assets.demo.coupling_truth import expected_coupling, lag_error_s
from ace_assets.io.store import load_npz
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import catalog_read, lab_paths

pytestmark = pytest.mark.slow  # two demo lines processed in-process (about a minute)

ASSET = "fluorescence_eeg_coupling"
REJECTED = 2


def folder(paths: PathsResource, line: int, asset: str = ASSET) -> Path:
    return Path(paths.results) / f"line_{line}" / asset


def manifest(paths: PathsResource, line: int, asset: str) -> dict:
    return json.loads((folder(paths, line, asset) / "manifest.json").read_text())


@pytest.fixture(scope="module")
def processed(demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    paths = lab_paths(tmp_path_factory.mktemp("coupling"), demo_data, lines=[1, 3])
    with catalog_read(all_assets, paths) as instance:
        # curation rejects component 2 for this run: its rows say so, and are still analysed
        reject = {"ops": {"calcium_events": {"config": {"rejected_components": [REJECTED]}}}}
        runs = {
            line: materialize_line(
                all_assets,
                paths=paths,
                line=line,
                instance=instance,
                run_config=reject if line == "1" else None,
                log_level="WARNING",
            )
            for line in ("1", "3")
        }
        yield paths, runs


def test_locked_neurons_are_coherent_at_the_oscillation_with_the_known_lag(
    processed, demo_data: Path
) -> None:
    paths, runs = processed
    assert runs["1"].success, failure_text(runs["1"])
    assert ASSET in runs["1"].materialized()
    known = expected_coupling(demo_data, 1)
    assert known is not None
    f = known["freq_hz"]
    spectra = load_npz(folder(paths, 1) / "coherence_spectra.npz")
    channels = [str(c) for c in spectra["all__channels"]]
    signals = [str(s) for s in spectra["all__signals"]]
    k = int(np.argmin(np.abs(spectra["all__freqs_hz"] - f)))
    assert abs(spectra["all__freqs_hz"][k] - f) < 0.1
    match = manifest(paths, 1, "miniscope_sources")["truth_match"]
    locked, free = [], []
    for i, name in enumerate(signals):
        sid = name.removeprefix("source_")
        if sid in match:
            (locked if known["locked"][match[sid]] else free).append(i)
    assert len(locked) >= 5 and len(free) >= 10

    def coherent(rows: list[int], channel: str) -> np.ndarray:
        j = channels.index(channel)
        return spectra["all__coherence"][rows, j, k] > spectra["all__level"][rows, j]

    lfp, emg = "PFCLFPvsCBEEG", "EMG"
    assert known["coupled"][lfp] and not known["coupled"][emg]
    # phase-locked neurons are coherent with the LFP at 7 Hz; the others and the EMG are not
    assert coherent(locked, lfp).mean() >= 0.8
    assert coherent(free, lfp).mean() <= 0.2
    assert coherent(locked, emg).mean() <= 0.3
    # the coherency phase gives the lag the generator implies (preferred phase + calcium
    # kernel delay), to within a few ms of a 143 ms period
    j = channels.index(lfp)
    lags = spectra["all__phase"][locked, j, k] / (2 * math.pi * spectra["all__freqs_hz"][k])
    errors = [lag_error_s(lag, known["lag_s"][lfp], f) for lag in lags]
    assert np.median(np.abs(errors)) < 0.01
    assert known["lag_s"][lfp] > 0  # the fluorescence follows the LFP
    # the locked neurons' coherence peaks sit at the oscillation
    peaks = pd.read_csv(folder(paths, 1) / "coherence_peaks.csv")
    mine = peaks[
        (peaks["period"] == "all")
        & (peaks["channel"] == lfp)
        & peaks["signal"].isin([signals[i] for i in locked])
    ]
    assert abs(mine["peak_freq_hz"].median() - f) <= 0.5


def test_periods_tables_and_figures(processed) -> None:
    paths, runs = processed
    out = folder(paths, 1)
    peaks = pd.read_csv(out / "coherence_peaks.csv")
    # the catalog's periods of line 1 (10 s each on the session clock) and the whole session
    assert set(peaks["period"]) == {"all", "high_slow_wave", "control"}
    mean = peaks[peaks["signal"] == "mean_fluorescence"].set_index(["channel", "period"])
    for period in ("high_slow_wave", "control"):
        assert mean.xs(period, level="period")["duration_s"].iloc[0] == pytest.approx(10, abs=0.1)
    assert mean.xs("all", level="period")["duration_s"].iloc[0] == pytest.approx(20, abs=0.1)
    assert manifest(paths, 1, "calcium_events")["rejected_ids"] == [REJECTED]
    kept = peaks.drop_duplicates("signal").set_index("signal")["kept"]
    assert not kept[f"source_{REJECTED}"] and kept.drop(f"source_{REJECTED}").all()
    lags = pd.read_csv(out / "lag_correlation.csv")
    per_group = lags.groupby(["signal", "channel", "period"])["best_band"].sum()
    assert (per_group == 1).all()
    assert set(lags["entry"]) == {"signal", "0.5-4Hz", "4-8Hz", "8-12Hz", "12-30Hz", "30-80Hz"}
    sliding = pd.read_csv(out / "sliding_correlation.csv")
    session = sliding[(sliding["channel"] == "PFCLFPvsCBEEG") & (sliding["entry"] == "signal")]
    assert len(session) >= 3 and session["start_s"].is_monotonic_increasing
    for png in ("coherence.png", "coherogram.png", "lag_correlation.png"):
        assert (out / png).stat().st_size > 10_000
    (event,) = [
        e for e in runs["1"].get_asset_materialization_events() if e.asset_key.path[-1] == ASSET
    ]
    metadata = event.step_materialization_data.materialization.metadata
    assert {"coherence", "coherogram", "lag_correlation"} <= set(metadata)
    truth = manifest(paths, 1, ASSET)["ground_truth"]
    assert truth["locked_coherent"] >= 0.8 and truth["unlocked_coherent"] <= 0.2


def test_a_line_without_both_modalities_is_not_applicable_like_multimodal_results(
    processed,
) -> None:
    _, runs = processed
    assert runs["3"].success, failure_text(runs["3"])
    na = set(runs["3"].not_applicable())
    assert {ASSET, "multimodal_results"} <= na
