"""The whole asset graph on generated demo data: accuracy against ground truth, checks, atomicity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from ace_assets.definitions import all_assets
from ace_assets.defs.line_runs import LineRun, materialize_line
from ace_assets.defs.resources import PathsResource
from ace_assets.io.store import load_npz
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import catalog_read, lab_paths


def run_line(
    instance, paths: PathsResource, line: str, overrides: dict[str, str] | None = None
) -> LineRun:
    config = {"ops": {"analysis_parameters": {"config": {"overrides": overrides or {}}}}}
    return materialize_line(
        all_assets, paths=paths, line=line, instance=instance, run_config=config
    )


def hidden_parts(folder: Path) -> list[str]:
    """Temporary or swapped-out folders (each asset's writer lock file is meant to stay)."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and p.suffix != ".lock"]


def manifest(paths: PathsResource, line: int, asset: str) -> dict:
    return json.loads((Path(paths.results) / f"line_{line}/{asset}/manifest.json").read_text())


def checks(result) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def processed(demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every demo line materialized once; the tests below read what it produced."""
    root = tmp_path_factory.mktemp("pipeline")
    paths = lab_paths(root, demo_data)
    with catalog_read(all_assets, paths) as instance:
        lines = ("1", "2", "3", "4", "5", "6")
        results = {line: run_line(instance, paths, line) for line in lines}
        yield paths, results, instance


@pytest.mark.slow  # reads the six-line demo run (minutes)
def test_every_line_materializes_what_its_modalities_allow(processed) -> None:
    paths, results, _ = processed
    done = {line: set(r.materialized()) for line, r in results.items()}
    na = {line: set(r.not_applicable()) for line, r in results.items()}
    for result in results.values():
        assert result.success, failure_text(result)
    assert {"multimodal_results", "miniscope_results", "ephys_results"} <= done["1"]
    assert na["1"] == set()
    assert "miniscope_results" in done["2"] and "ephys_channels" not in done["2"]
    assert "ephys_results" in done["3"] and "denoised_movie" not in done["3"]
    assert {"multimodal_results", "miniscope_results", "ephys_results"} <= done["4"]
    assert "ephys_results" in done["5"] and "denoised_movie" not in done["5"]
    assert "ephys_results" in done["6"] and "denoised_movie" not in done["6"]
    # what a line has no recording for is recorded as not applicable, never left missing
    assert {"ephys_channels", "ephys_results", "multimodal_results"} <= na["2"]
    assert {"denoised_movie", "miniscope_sources", "multimodal_alignment"} <= na["3"]
    for line in ("1", "2", "4"):
        assert all(checks(results[line]).values()), checks(results[line])
    na_check = next(
        c
        for c in results["3"].get_asset_check_evaluations()
        if c.check_name == "dropped_frames_below_threshold"
    )
    assert na_check.passed and "not applicable" in (na_check.description or "")
    assert na_check.partition == "3"  # checks belong to their line


@pytest.mark.slow  # reads the six-line demo run (minutes)
def test_sources_events_and_traces_match_ground_truth(processed, demo_data: Path) -> None:
    paths, _, _ = processed
    for line in (1, 2):
        truth = manifest(paths, line, "miniscope_sources")["ground_truth"]
        assert truth["n_true"] >= 30
        assert truth["recall"] >= 0.9 and truth["precision"] >= 0.9, truth
        assert truth["median_trace_corr"] >= 0.9, truth
        events = manifest(paths, line, "calcium_events")["ground_truth"]
        assert events["event_f1"] >= 0.8, events


@pytest.mark.slow  # reads the six-line demo run (minutes)
def test_frames_on_the_ephys_clock_and_phase_locking(processed, demo_data: Path) -> None:
    paths, _, _ = processed
    align = manifest(paths, 1, "multimodal_alignment")
    truth = load_npz(demo_data / "truth" / "line_1.npz")
    frame_times = load_npz(align["frame_times"])["frame_times_s"]
    assert align["report"]["n_deleted"] == len(truth["spurious_ttl_indices"])
    assert np.max(np.abs(frame_times - truth["frame_times_ephys_s"])) < 1e-3
    locking = manifest(paths, 1, "multimodal_results")["ground_truth"]
    assert locking["locked_found_locked"] >= 0.8, locking
    assert locking["unlocked_found_locked"] <= 0.2, locking


@pytest.mark.slow  # reads the six-line demo run (minutes)
def test_ephys_spectral_peak_and_gap_check(processed) -> None:
    paths, results, _ = processed
    spectrogram = manifest(paths, 3, "ephys_spectrogram")
    assert abs(spectrogram["peak_frequency_hz"][0] - 7.0) < 0.5
    assert checks(results["3"])["no_recording_gaps"] is False  # line 3 has a recording pause
    gap = next(
        c for c in results["3"].get_asset_check_evaluations() if c.check_name == "no_recording_gaps"
    )
    assert gap.severity == dg.AssetCheckSeverity.WARN  # shorter than max_gap_s: analysed
    channels = manifest(paths, 3, "ephys_channels")
    assert channels["n_segments"] == 2 and channels["gaps"][0]["duration_s"] == pytest.approx(
        0.25, abs=0.01
    )


@pytest.mark.slow  # reads the six-line demo run (minutes)
def test_digital_lynx_frames_within_1ms_with_no_settings(processed, demo_data: Path) -> None:
    """Line 4: event_id 0, idle word 0x3000, behaviour bits toggling; nothing set."""
    paths, results, _ = processed
    truth = load_npz(demo_data / "truth" / "line_4.npz")
    align = manifest(paths, 4, "multimodal_alignment")
    assert align["report"]["sync_bit"] == int(truth["sync_bit"]) == 3
    assert align["report"]["sync_bit_source"] == "automatic"
    frame_times = load_npz(align["frame_times"])["frame_times_s"]
    error_ms = np.max(np.abs(frame_times - truth["frame_times_ephys_s"])) * 1e3
    assert error_ms < 1.0, error_ms
    assert align["ground_truth"]["max_frame_time_error_ms"] == pytest.approx(error_ms)
    edges = {r["bit"]: r["rising_edges"] for r in align["report"]["edges_per_bit"]}
    assert edges[3] == len(frame_times) and edges[12] == 1 and edges[0] < len(frame_times)
    assert checks(results["4"])["ttl_count_matches_frames"]


@pytest.mark.slow  # reads the six-line demo run (minutes)
def test_digital_lynx_explicit_bit_and_a_wrong_one(processed, demo_data: Path) -> None:
    """ttl_sync_bit named in the run config: the same frames; a wrong bit fails, naming the
    events file, the edges per bit and the setting."""
    paths, _, instance = processed
    truth = load_npz(demo_data / "truth" / "line_4.npz")

    def align(bit: str):
        config = {"ops": {"analysis_parameters": {"config": {"overrides": {"ttl_sync_bit": bit}}}}}
        return dg.materialize(
            all_assets,
            selection=["analysis_parameters", "multimodal_alignment"],
            partition_key="4",
            instance=instance,
            resources={"paths": paths},
            run_config=config,
            raise_on_error=False,
        )

    try:
        assert align("3").success
        report = manifest(paths, 4, "multimodal_alignment")["report"]
        assert report["sync_bit_source"] == "parameter"
        frames = load_npz(manifest(paths, 4, "multimodal_alignment")["frame_times"])
        assert np.abs(frames["frame_times_s"] - truth["frame_times_ephys_s"]).max() < 1e-3
        wrong = align("6")
        assert not wrong.success
        text = failure_text(wrong)
        assert "Events.nev" in text and "line number 4" in text and "ttl_sync_bit" in text
        n_frames = len(truth["frame_times_ephys_s"])
        assert f"bit 3 (0x0008): {n_frames} rising edges" in text, text
    finally:
        assert align("None").success  # back to the automatic choice for the other tests


@pytest.mark.slow  # reads the six-line demo run (minutes)
def test_partial_records_pause_and_32khz_channel(processed, demo_data: Path) -> None:
    """Line 5: holes filled and marked where they are, the pause a segment boundary with
    masked windows, the 32 kHz channel resampled; phases and spectra against the truth."""
    paths, results, _ = processed
    truth = load_npz(demo_data / "truth" / "line_5.npz")
    channels = manifest(paths, 5, "ephys_channels")
    assert channels["sampling_rate_hz"] == 2000.0
    assert channels["resampled_channels"] == ["HPCwide"]
    assert [s["sampling_rate_hz"] for s in channels["streams"]] == [2000.0, 32000.0]
    assert Path(channels["stream_stores"]["32000Hz"]).is_dir()
    filled = [r for r in channels["channel_runs"] if r["kind"] == "filled"]
    assert [r["start_index"] for r in filled] == truth["hole_grid_index"].tolist()
    assert {r["channel"] for r in filled} == {"PFCLFPvsCBEEG"}
    (pause,) = channels["gaps"]
    assert pause["duration_s"] == pytest.approx(float(truth["pause_s"]), abs=1e-4)
    assert not pause["filled"] and channels["n_segments"] == 2
    assert pause["sample_index"] == int(truth["pause_grid_index"])
    gap = next(
        c for c in results["5"].get_asset_check_evaluations() if c.check_name == "no_recording_gaps"
    )
    assert not gap.passed and gap.severity == dg.AssetCheckSeverity.WARN
    assert "3 stretches filled" in gap.description and "1 kept as segment boundaries" in (
        gap.description
    )

    spec = manifest(paths, 5, "ephys_spectrogram")
    assert spec["windows"]["masked_windows"] >= 1
    pause_t = float(truth["pause_start_s"])
    masked_t = np.array(spec["masked_window_times_s"])
    assert np.all(np.abs(masked_t - pause_t) <= spec["settings"]["window_s"])
    peaks = dict(zip(spec["channels"], spec["peak_frequency_hz"], strict=True))
    # the oscillation dominates the first channel and the resampled 32 kHz one
    assert abs(peaks["PFCLFPvsCBEEG"] - 7.0) < 0.5 and abs(peaks["HPCwide"] - 7.0) < 0.5, peaks
    data = load_npz(spec["spectrogram"])
    assert np.isnan(data["power"][:, :, data["masked"]]).all()
    assert np.isfinite(data["power"][:, :, ~data["masked"]]).all()

    from ace_assets.io.neuralynx import load_clock
    from ace_assets.io.store import ArrayStore

    results_manifest = manifest(paths, 5, "ephys_results")
    phase = ArrayStore(results_manifest["phase"])
    ph = phase.read(0, phase.n_frames)
    for start, stop in [(r["start_index"], r["stop_index"]) for r in filled]:
        assert np.isnan(ph[start:stop, 0]).all() and np.isfinite(ph[start:stop, 1:]).all()
    clock = load_clock(phase.path)
    t = truth["ephys_phase_times_s"]
    pos = clock.position(t)
    ok = np.isfinite(pos) & (np.abs(t - pause_t) > 2.0) & (t > 2.0) & (t < t[-1] - 2.0)
    est = ph[np.rint(pos[ok]).astype(int)]
    err = np.abs(np.angle(np.exp(1j * (est - truth["ephys_phase"][ok, None]))))
    assert np.all(np.nanmedian(err, axis=0) < 0.35), np.nanmedian(err, axis=0)


@pytest.mark.slow  # reads the six-line demo run (minutes)
def test_pause_longer_than_max_gap_blocks_the_ephys_chain(processed) -> None:
    """Line 3's 0.25 s pause against a 0.1 s tolerance: ERROR, nothing downstream runs."""
    paths, _, instance = processed
    before = manifest(paths, 3, "filtered_ephys")
    result = run_line(instance, paths, "3", {"max_gap_s": "0.1"})
    gap = next(
        c for c in result.get_asset_check_evaluations() if c.check_name == "no_recording_gaps"
    )
    assert not gap.passed and gap.severity == dg.AssetCheckSeverity.ERROR
    assert gap.metadata["longest_gap_s"].value == pytest.approx(0.25, abs=0.01)
    done = result.materialized()
    assert "ephys_channels" in done and "filtered_ephys" not in done
    assert manifest(paths, 3, "filtered_ephys") == before  # the last good result stays


@pytest.mark.slow  # reads the six-line demo run (minutes)
def test_failed_write_keeps_the_previous_good_result(processed) -> None:
    """An asset that fails half-way leaves the last good folder as it was, and no temp folder."""
    from ace_assets.defs.manifests import staged_output, write_manifest

    paths, _, _ = processed
    before = manifest(paths, 2, "preprocessed_movie")
    with pytest.raises(RuntimeError):
        with staged_output(paths, "preprocessed_movie", 2) as out:
            write_manifest(out, {"partial": True})
            raise RuntimeError("crash in the middle of a stage")
    assert manifest(paths, 2, "preprocessed_movie") == before
    assert hidden_parts(Path(paths.results) / "line_2") == []


@pytest.mark.slow  # reads the six-line demo run (minutes)
def test_failed_run_on_a_one_modality_line_ends_and_keeps_the_good_results(processed) -> None:
    """A stage failing mid-run (crop box outside the frame) on the Miniscope-only line 2.

    The run must end (Dagster's in-process executor used to spin forever when a failure
    met a skipped step), name the bad column, and leave every earlier result in place.
    """
    paths, _, instance = processed
    before = {a: manifest(paths, 2, a) for a in ("preprocessed_movie", "miniscope_sources")}
    result = run_line(instance, paths, "2", {"crop_coords": "(0, 0, 500, 500)"})
    assert not result.success
    assert result.modalities == {"miniscope"}
    assert "crop_coords" in failure_text(result)
    assert "preprocessed_movie" not in result.materialized()
    for asset, old in before.items():
        assert manifest(paths, 2, asset) == old
    assert hidden_parts(Path(paths.results) / "line_2") == []


@pytest.fixture()
def small_line(tmp_path: Path):
    """A tiny generated line 1 (both modalities) for crafted-bad-data runs."""
    from ace_assets.demo.generate import generate_demo, small_size

    data = tmp_path / "data"
    generate_demo(data, size=small_size(n_neurons=6), lines=(1,))
    paths = lab_paths(tmp_path, data, lines=[1])
    spurious = load_npz(data / "truth" / "line_1.npz")["spurious_ttl_indices"].tolist()
    # 64 px and six neurons leave about a quarter of frames without a confident motion
    # peak; the motion_confident check is tested elsewhere, these tests reach later checks
    base = {"indices of TTL events to delete": str(spurious), "max_interpolated_fraction": "0.5"}
    with catalog_read(all_assets, paths) as instance:
        yield paths, instance, base, spurious


@pytest.mark.parametrize(
    ("overrides", "check", "blocked", "setting"),
    [
        ({"max_shifts": "(1, 1)"}, "motion_within_max_shifts", "miniscope_sources", "max_shifts"),
        ({"min_pnr": "1000", "min_corr": "0.99"}, "components_found", "calcium_events", "min_pnr"),
        (
            {"max_ttl_mismatch": "0"},
            "ttl_count_matches_frames",
            "multimodal_results",
            "max_ttl_mismatch",
        ),
    ],
)
def test_blocking_checks_stop_bad_results(small_line, overrides, check, blocked, setting) -> None:
    paths, instance, base, spurious = small_line
    overrides = {**base, **overrides}
    if check == "ttl_count_matches_frames":  # two real frame pulses deleted as well
        real = [i for i in range(3, 60) if i not in spurious][:2]
        overrides["indices of TTL events to delete"] = str(sorted(spurious + real))
    result = run_line(instance, paths, "1", overrides)
    evaluation = next(c for c in result.get_asset_check_evaluations() if c.check_name == check)
    assert not evaluation.passed
    assert evaluation.metadata  # the numbers behind the verdict are visible
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert blocked not in done
    # the run's failure text carries the reason: measurement, threshold, setting to change
    text = failure_text(result)
    assert f"{check} FAILED: measured" in text and "threshold" in text, text
    assert setting in text, text


def test_dropped_frames_above_threshold_block_the_movie_chain(small_line) -> None:
    """Rewrite the small line's Miniscope session with 5 of 120 frames lost by the DAQ."""
    from ace_assets.demo.generate import LINE_DIRS
    from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
    from ace_assets.demo.miniscope_writer import write_v4_session

    paths, instance, base, _ = small_line
    session = Path(paths.data_path) / LINE_DIRS[1]["miniscope"]
    shutil.rmtree(session)
    movie = SyntheticMiniscope(MiniscopeSynthConfig(height=64, width=64, n_frames=120, n_neurons=6))
    write_v4_session(session, movie, frames_per_file=60, dropped_frames=[30, 31, 32, 80, 81])
    result = run_line(instance, paths, "1", base)
    evaluation = next(
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "dropped_frames_below_threshold"
    )
    assert not evaluation.passed
    assert evaluation.metadata["dropped_frames"].value == 5
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "denoised_movie" in done and "preprocessed_movie" not in done


@pytest.mark.slow  # reads the six-line demo run (minutes)
def test_qc_is_one_click_away(processed) -> None:
    """Every computed asset leads with one combined QC image; numbers are rounded; the line's
    HTML report holds every asset's figures and numbers and is linked from the metadata."""
    paths, results, _ = processed
    events = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization
        for e in results["1"].get_asset_materialization_events()
    }
    for name in ("denoised_movie", "motion_corrected_movie", "miniscope_sources", "ephys_results"):
        metadata = events[name].metadata
        first = next(iter(metadata))
        assert first == "qc", (name, list(metadata))
        assert "data:image/jpeg;base64," in metadata["qc"].value
        png = Path(paths.results) / "line_1" / name / "qc_summary.png"
        assert png.is_file()
        import cv2

        assert cv2.imread(str(png)).shape[1] >= 1200
        for key, value in metadata.items():
            if isinstance(value, dg.FloatMetadataValue) and value.value is not None:
                assert float(f"{value.value:.4g}") == value.value, (name, key, value.value)
    report = Path(metadata["report"].value)
    assert report == Path(paths.results) / "line_1" / "report.html"
    text = report.read_text()
    for name in ("denoised_movie", "miniscope_sources", "multimodal_results"):
        assert f"{name}/qc_summary.png" in text
