"""cohort_table on the demo: each row agrees with its line's own results; missing and stale
lines are named; a line's updated result brings the table up to date. cohort_comparisons
recovers the generator's drug effect (isoflurane lines 3 and 6 against the others)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ace_assets.definitions import all_assets, defs
from ace_assets.defs.line_runs import SESSION_ASSETS, materialize_line
from ace_assets.defs.partitions import LINE_PARTITIONS_NAME
from ace_assets.defs.resources import PathsResource
from ace_assets.demo.group_lines import ISOFLURANE_OSC_POWER_FACTOR
from ace_assets.io.store import load_npz
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import catalog_read, lab_paths

pytestmark = pytest.mark.slow  # five demo lines processed in-process (about a minute)

COHORT = dg.AssetKey("cohort_table")
LFP_ALL = "band_power_uV2_PFCLFPvsCBEEG_5-9Hz_all"


def manifest(paths: PathsResource, line: int, asset: str) -> dict:
    return json.loads((Path(paths.results) / f"line_{line}/{asset}/manifest.json").read_text())


def build_table(paths: PathsResource, instance: dg.DagsterInstance) -> tuple[pd.DataFrame, dict]:
    result = dg.materialize(
        all_assets, selection=[COHORT], instance=instance, resources={"paths": paths}
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {
        k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()
    }
    frame = pd.read_parquet(metadata["parquet"])
    return frame.set_index("line_number", drop=False), metadata


def comparisons(
    paths: PathsResource, instance: dg.DagsterInstance, groups_csv: str | None
) -> tuple[pd.DataFrame, dict]:
    """cohort_comparisons' tests and metadata, with this groups.csv (None: by drug)."""
    groups = Path(paths.project) / "groups.csv"
    groups.unlink(missing_ok=True)
    if groups_csv is not None:
        groups.write_text(groups_csv)
    try:
        result = dg.materialize(
            all_assets,
            selection=[dg.AssetKey("cohort_comparisons")],
            instance=instance,
            resources={"paths": paths},
        )
    finally:
        groups.unlink(missing_ok=True)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.step_materialization_data.materialization.metadata
    folder = Path(paths.results) / "catalog" / "cohort_comparisons"
    return pd.read_csv(folder / "tests.csv"), metadata


def true_lfp_power(data: Path, line: int) -> float:
    """The generator's oscillation power on the PFC LFP channel (gain 1 on every line), µV²."""
    return float(load_npz(data / "truth" / f"line_{line}.npz")["true_osc_power_uV2"])


@pytest.fixture(scope="module")
def cohort(demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """Lines 1-3, 5 and 6 processed, line 4 in the catalog but never processed; the table."""
    paths = lab_paths(tmp_path_factory.mktemp("cohort"), demo_data, lines=[1, 2, 3, 4, 5, 6])
    with catalog_read(all_assets, paths) as instance:
        for line in ("1", "2", "3", "5", "6"):
            run = materialize_line(
                all_assets, paths=paths, line=line, instance=instance, log_level="WARNING"
            )
            assert run.success, failure_text(run)
        frame, metadata = build_table(paths, instance)
        yield paths, instance, frame, metadata


def test_rows_agree_with_each_lines_own_results(cohort) -> None:
    paths, _, table, _ = cohort
    assert list(table["line_number"]) == [1, 2, 3, 4, 5, 6]
    # catalog cells beside the measures
    three = table.loc[3]
    assert (three.animal_id, three.date, three.systemic_drug) == (
        "DemoRat",
        "2024-01-03",
        "isoflurane",
    )
    assert three.weight_kg == pytest.approx(0.509)
    assert (three.systemic_dose, three.total_systemic_time_min) == ("2", "60")

    for line in (1, 2):
        sources = manifest(paths, line, "miniscope_sources")
        events = manifest(paths, line, "calcium_events")
        kept = sources["n_components"] - len(events["rejected_ids"])
        row = table.loc[line]
        assert row.n_sources == sources["n_components"] and row.n_sources_kept == kept
        assert row.n_events == events["n_events"]
        assert (
            row.dropped_frames
            == manifest(paths, line, "denoised_movie")["dropped_frames"]["estimated_missing"]
        )
        assert row.motion_max_shift_px == pytest.approx(
            manifest(paths, line, "motion_corrected_movie")["max_shift"]
        )
    # line 2 (Miniscope only): events over the camera clock's whole recording
    two = table.loc[2]
    assert two.event_clock == "camera"
    seconds = (
        manifest(paths, 2, "miniscope_sources")["n_frames"]
        / manifest(paths, 2, "miniscope_sources")["fps"]
    )
    assert two.event_rate_hz_all == pytest.approx(two.n_events / (two.n_sources_kept * seconds))
    assert np.isnan(two.ttl_mismatch) and np.isnan(two["band_power_uV2_EMG_5-9Hz_all"])

    # line 1: period rates agree with multimodal_results' own per-component table
    one = table.loc[1]
    assert one.event_clock == "ephys"
    rates = pd.read_csv(Path(paths.results) / "line_1/multimodal_results/period_rates.csv")
    for period, column in (("high_slow_wave", "high"), ("control", "control")):
        expected = rates[f"n_{column}"].sum() / (
            one.n_sources_kept * rates[f"{column}_duration_s"].iloc[0]
        )
        assert one[f"event_rate_hz_{period}"] == pytest.approx(expected)
        assert one[f"period_s_{period}"] == pytest.approx(10.0)
    assert one.ttl_mismatch == manifest(paths, 1, "multimodal_alignment")["report"]["mismatch"]

    # phase locking: the lab's LFP locking is found, the EMG's absence of it too
    mm = manifest(paths, 1, "multimodal_results")
    locking = pd.read_csv(Path(paths.results) / "line_1/multimodal_results/phase_locking.csv")
    per_channel = locking.groupby("channel").size()
    locked = sum(one[f"locked_fraction_{c}_5-9Hz"] * n for c, n in per_channel.items())
    assert locked == pytest.approx(mm["n_locked_pairs"])
    assert one["rayleigh_p_PFCLFPvsCBEEG_5-9Hz"] < 1e-3 < one["rayleigh_p_EMG_5-9Hz"]
    assert one["mrl_PFCLFPvsCBEEG_5-9Hz"] > 5 * one["mrl_EMG_5-9Hz"]

    # coupling: the table carries fluorescence_eeg_coupling's own peaks, per channel/period
    peaks = pd.read_csv(
        Path(paths.results) / "line_1/fluorescence_eeg_coupling/coherence_peaks.csv"
    )
    for (channel, period), rows in peaks.groupby(["channel", "period"]):
        mean = rows[rows["signal"] == "mean_fluorescence"].iloc[0]
        assert one[f"coherence_{channel}_{period}"] == pytest.approx(mean["peak_coherence"])
        assert one[f"coherent_{channel}_{period}"] == bool(mean["significant"])
        kept = rows[rows["signal"].str.startswith("source_") & rows["kept"].astype(bool)]
        assert one[f"coherent_source_fraction_{channel}_{period}"] == pytest.approx(
            kept["significant"].astype(bool).mean()
        )
    # the locked neurons make the LFP's sources coherent, the EMG's not
    lfp = one["coherent_source_fraction_PFCLFPvsCBEEG_all"]
    # (the table counts peaks past the family-wise level: stricter than at the known 7 Hz)
    assert lfp >= 0.1 and one["coherent_source_fraction_EMG_all"] < lfp / 2
    assert "coherence_EMG_all" not in table.loc[2].dropna()  # Miniscope only: no coupling

    # band power: the whole recording matches ephys_results; each period its own windows
    for line in (1, 3):
        ephys = manifest(paths, line, "ephys_results")
        for channel, value in ephys["mean_band_power_uV2"].items():
            assert table.loc[line, f"band_power_uV2_{channel}_5-9Hz_all"] == pytest.approx(value)
    power = load_npz(manifest(paths, 1, "ephys_results")["band_power"])
    centres = power["times_s"]  # ephys clock; zero time is 0 on line 1
    for period, (start, end) in (("high_slow_wave", (2.5, 12.5)), ("control", (12.5, 22.5))):
        inside = (centres >= start) & (centres < end) & ~power["masked"]
        expected = power["power"][inside, 0].mean() * 1e12
        assert one[f"band_power_uV2_PFCLFPvsCBEEG_5-9Hz_{period}"] == pytest.approx(expected)
    assert "band_power_uV2_PFCLFPvsCBEEG_5-9Hz_high_slow_wave" not in table.loc[3].dropna()


def test_missing_line_is_listed_and_csv_matches_parquet(cohort) -> None:
    _, _, table, metadata = cohort
    assert dict(table["status"]) == {1: "ok", 2: "ok", 3: "ok", 4: "missing", 5: "ok", 6: "ok"}
    assert metadata["missing_lines"] == "4" and metadata["stale_lines"] == "none"
    assert metadata["periods_outside_recording"] == "none"  # the demo's periods are inside
    assert "not been processed" in table.loc[4, "note"]
    csv = pd.read_csv(metadata["csv"])
    assert list(csv.columns) == list(table.columns)
    pd.testing.assert_series_equal(
        csv["n_events"], table["n_events"].reset_index(drop=True), check_names=False
    )


def test_new_parameters_make_a_line_stale_until_it_is_run_again(cohort) -> None:
    paths, instance, _, _ = cohort
    # line 2's parameters re-read (as after an edit): its results predate them
    rerun = dg.materialize(
        all_assets,
        selection=[dg.AssetKey(SESSION_ASSETS[0])],
        partition_key="2",
        instance=instance,
        resources={"paths": paths},
    )
    assert rerun.success
    table, metadata = build_table(paths, instance)
    assert dict(table["status"]) == {1: "ok", 2: "stale", 3: "ok", 4: "missing", 5: "ok", 6: "ok"}
    assert metadata["stale_lines"] == "2"
    assert "calcium_events" in table.loc[2, "stale_results"].split(";")
    # processing the line again brings it back
    assert materialize_line(
        all_assets, paths=paths, line="2", instance=instance, log_level="WARNING"
    ).success
    table, _ = build_table(paths, instance)
    assert table.loc[2, "status"] == "ok"


def test_an_updated_line_result_requests_the_cohort_table_once() -> None:
    def cohort_requested(result) -> bool:
        return bool(result.get_requested_partitions(COHORT))

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(LINE_PARTITIONS_NAME, ["1", "2"])
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert not cohort_requested(first)
        # a re-read catalog alone, or a line's new parameters, change no result yet
        instance.report_runless_asset_event(dg.AssetMaterialization("experiments"))
        instance.report_runless_asset_event(
            dg.AssetMaterialization("analysis_parameters", partition="1")
        )
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=first.cursor
        )
        assert not cohort_requested(second)
        # line 2's events are updated: the table follows, once
        instance.report_runless_asset_event(
            dg.AssetMaterialization("calcium_events", partition="2")
        )
        third = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=second.cursor
        )
        assert cohort_requested(third)
        assert third.get_requested_partitions(COHORT) == {None}
        fourth = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=third.cursor
        )
        assert not cohort_requested(fourth)
        # the comparisons follow the table
        instance.report_runless_asset_event(dg.AssetMaterialization("cohort_table"))
        fifth = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=fourth.cursor
        )
        assert fifth.get_requested_partitions(dg.AssetKey("cohort_comparisons")) == {None}
        assert not cohort_requested(fifth)


def test_comparisons_list_groups_figures_and_every_line_left_out(cohort) -> None:
    paths, instance, _, _ = cohort
    _, metadata = comparisons(
        paths, instance, "group,line number\nawake,1\nawake,2\nisoflurane,3\nisoflurane,4\n"
    )
    assert "data:image/png;base64," in metadata["comparisons"].value
    assert metadata["groups_from"].value.endswith("groups.csv")
    folder = Path(paths.results) / "catalog" / "cohort_comparisons"
    excluded = pd.read_csv(folder / "excluded.csv")
    why = {(r.line_number, r.measure): r.reason for r in excluded.itertuples()}
    assert why[(4, "*")].startswith("status missing")  # never processed
    assert "no value" in why[(3, "event_rate_hz_all")]  # ephys only: no calcium events
    assert "no value" in why[(2, "band_power_uV2_PFCLFPvsCBEEG_5-9Hz_all")]  # Miniscope only
    summary = pd.read_csv(folder / "summary.csv").set_index(["measure", "group"])
    table = pd.read_parquet(Path(paths.results) / "catalog/cohort_table/cohort_table.parquet")
    rates = table.set_index("line_number").loc[[1, 2], "event_rate_hz_all"]
    assert summary.loc[("event_rate_hz_all", "awake"), "n"] == 2
    assert summary.loc[("event_rate_hz_all", "awake"), "mean"] == pytest.approx(rates.mean())
    assert summary.loc[("event_rate_hz_all", "isoflurane"), "n"] == 0


def test_a_damaged_result_costs_its_line_only(cohort) -> None:
    paths, instance, before, _ = cohort
    target = Path(paths.results) / "line_3/ephys_results/manifest.json"
    good = target.read_bytes()
    try:
        target.write_text('{"phase": ')  # cut short, as by a full disk
        table, metadata = build_table(paths, instance)
    finally:
        target.write_bytes(good)
    assert table.loc[3, "status"] == "unreadable" and "JSON" in table.loc[3, "note"]
    assert table.loc[3, "systemic_drug"] == "isoflurane"  # the catalog cells stay
    assert "3" in metadata["incomplete_lines"].split(", ")
    assert table.loc[1, "n_events"] == before.loc[1, "n_events"]


def test_the_generators_drug_effect_is_recovered_and_a_drug_blind_split_shows_none(
    cohort, demo_data: Path
) -> None:
    """Lines 3 and 6 (isoflurane) carry ISOFLURANE_OSC_POWER_FACTOR times the oscillation
    power of lines 1 and 5 (line 2 has no ephys, line 4 was never processed)."""
    paths, instance, _, _ = cohort
    table, _ = build_table(paths, instance)  # current: earlier tests damaged and restored lines
    assert {table.loc[line, "status"] for line in (1, 3, 5, 6)} == {"ok"}
    true = {line: true_lfp_power(demo_data, line) for line in (1, 3, 5, 6)}
    for line, power in true.items():  # each line's band power is its oscillation's, +-5 %
        assert table.loc[line, LFP_ALL] == pytest.approx(power, rel=0.05)

    tests, metadata = comparisons(paths, instance, None)  # groups from 'systemic drug'
    assert metadata["groups_from"].value == "catalog column systemic_drug"
    row = tests[(tests.measure == LFP_ALL) & (tests.test == "Mann-Whitney U")].iloc[0]
    assert (row.groups, row.n_isoflurane, row.n_none) == ("isoflurane vs none", 2, 2)
    predicted = (true[3] + true[6]) / (true[1] + true[5])  # from the generator's envelopes
    assert row.mean_ratio == pytest.approx(predicted, rel=0.05)
    assert row.mean_ratio == pytest.approx(ISOFLURANE_OSC_POWER_FACTOR, rel=0.1)
    assert row.mean_difference == pytest.approx(
        (true[3] + true[6] - true[1] - true[5]) / 2, rel=0.05
    )
    assert row.rank_biserial_r == 1.0 and row.hedges_g > 5  # every drug line above the rest
    assert "ratio of means" in metadata["tests"].value

    # the same lines split blind to the drug, one drug line per group: no effect is found
    tests, _ = comparisons(paths, instance, "group,line number\nA,1\nA,3\nB,5\nB,6\n")
    blind = tests[(tests.measure == LFP_ALL) & (tests.test == "Mann-Whitney U")].iloc[0]
    assert blind.mean_ratio == pytest.approx((true[1] + true[3]) / (true[5] + true[6]), rel=0.05)
    assert 0.8 < blind.mean_ratio < 1.25 and abs(blind.hedges_g) < 1
