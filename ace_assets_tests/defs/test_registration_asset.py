"""cross_session_registration on the demo: line 2 is a second session of line 1's animal
(field of view shifted and turned, some cells gone, some new, a different crop); the
registration finds the same cells again, and follows a line's new sources."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ace_assets.definitions import all_assets, defs
from ace_assets.defs.assets.registration import GroupRegistration
from ace_assets.defs.line_runs import materialize_line
from ace_assets.defs.partitions import LINE_PARTITIONS_NAME
from ace_assets.defs.resources import PathsResource
from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
from ace_assets.io.store import load_npz
from ace_assets.miniscope.session_registry import Session, register_sessions
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import catalog_read, lab_paths

REGISTRATION = dg.AssetKey("cross_session_registration")


def register(paths: PathsResource, instance: dg.DagsterInstance) -> dict:
    result = dg.materialize(
        all_assets, selection=[REGISTRATION], instance=instance, resources={"paths": paths}
    )
    assert result.success, failure_text(result)
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def folder(paths: PathsResource) -> Path:
    return Path(paths.results) / "catalog" / "cross_session_registration"


@pytest.fixture(scope="module")
def processed(demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """Lines 1 and 2 (both DemoRat, calcium imaging) and 3 (ephys only) processed."""
    paths = lab_paths(tmp_path_factory.mktemp("registration"), demo_data, lines=[1, 2, 3])
    with catalog_read(all_assets, paths) as instance:
        for line in ("1", "2"):
            run = materialize_line(
                all_assets, paths=paths, line=line, instance=instance, log_level="WARNING"
            )
            assert run.success, failure_text(run)
        yield paths, instance


@pytest.mark.slow  # two demo lines processed in-process
def test_the_same_cells_are_found_in_both_sessions(processed, demo_data: Path) -> None:
    paths, instance = processed
    metadata = register(paths, instance)
    table = pd.read_csv(folder(paths) / "registration.csv")
    assert set(table["line_number"]) == {1, 2}  # line 3 has no calcium imaging
    assert set(table["group"]) == {"DemoRat"} and set(table["reference_line"]) == {1}
    assert not table.duplicated(["global_id", "line_number"]).any()

    # precision and recall, from the truth and each line's own match to it
    def truth_match(line: int) -> dict[int, int]:
        m = json.loads(
            (Path(paths.results) / f"line_{line}/miniscope_sources/manifest.json").read_text()
        )
        return {int(k): int(v) for k, v in m["truth_match"].items()}

    one, two = truth_match(1), truth_match(2)
    same_as = load_npz(demo_data / "truth" / "line_2.npz")["same_neuron_as"]
    cell_in_one = {neuron: comp for comp, neuron in one.items()}
    true_pairs = {
        (cell_in_one[int(same_as[n])], c)
        for c, n in two.items()
        if same_as[n] >= 0 and int(same_as[n]) in cell_in_one
    }
    pairs = set()
    for _, rows in table.groupby("global_id"):
        by_line = dict(zip(rows["line_number"], rows["component"], strict=True))
        if {1, 2} <= set(by_line) and by_line[1] in one and by_line[2] in two:
            pairs.add((int(by_line[1]), int(by_line[2])))
    hits = len(pairs & true_pairs)
    assert len(true_pairs) >= 15, true_pairs
    precision, recall = hits / max(len(pairs), 1), hits / len(true_pairs)
    assert precision >= 0.95 and recall >= 0.9, (precision, recall, len(pairs), len(true_pairs))
    # the asset's own score agrees
    assert metadata["truth_precision_line_2"] == pytest.approx(precision)
    assert metadata["truth_recall_line_2"] == pytest.approx(recall)

    # cells seen only in line 2 (new that day) have ids of their own
    new_cells = {c for c, n in two.items() if same_as[n] < 0}
    gids = table[(table.line_number == 2) & table.component.isin(new_cells)]["global_id"]
    shared = table.groupby("global_id")["line_number"].nunique()
    assert len(gids) >= 2 and (shared[gids] == 1).all()

    # the wide table, the figure and the estimated turn
    wide = pd.read_csv(folder(paths) / "registration_wide.csv")
    assert {"component_1", "component_2", "confidence_2"} <= set(wide.columns)
    assert len(wide) == table["global_id"].nunique()
    assert "data:image/png;base64," in metadata["matched_contours_DemoRat"]
    manifest = json.loads((folder(paths) / "manifest.json").read_text())
    (group,) = manifest["groups"]
    truth_turn = float(load_npz(demo_data / "truth" / "line_2.npz")["fov_rotation_deg"])
    assert group["lines"]["2"]["rotation_deg"] == pytest.approx(truth_turn, abs=0.5)
    assert manifest["not_aligned"] == {}


@pytest.mark.slow  # reads the two processed demo lines
def test_a_group_of_one_session_is_a_trivial_table(processed) -> None:
    paths, instance = processed
    groups = Path(paths.project) / "registration_groups.csv"
    groups.write_text("group,line number\nleft lens,1\nright lens,2\n")
    try:
        metadata = register(paths, instance)
    finally:
        groups.unlink()
    table = pd.read_csv(folder(paths) / "registration.csv")
    assert metadata["groups_from"].endswith("registration_groups.csv")
    assert set(table["group"]) == {"left lens", "right lens"}
    assert table.groupby("global_id").size().max() == 1  # nothing shared across groups
    assert (table["confidence"] == 1.0).all()
    sources = json.loads(
        (Path(paths.results) / "line_2/miniscope_sources/manifest.json").read_text()
    )
    assert (table["line_number"] == 2).sum() == sources["n_components"]
    assert not any(k.startswith("truth_") for k in metadata)  # lines 1 and 2 kept apart


def test_new_sources_of_a_line_request_the_registration_once() -> None:
    def requested(result) -> bool:
        return bool(result.get_requested_partitions(REGISTRATION))

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(LINE_PARTITIONS_NAME, ["1", "2"])
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert not requested(first)
        instance.report_runless_asset_event(dg.AssetMaterialization("experiments"))
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=first.cursor
        )
        assert not requested(second)  # a re-read catalog alone changes no footprint
        instance.report_runless_asset_event(
            dg.AssetMaterialization("miniscope_sources", partition="2")
        )
        third = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=second.cursor
        )
        assert third.get_requested_partitions(REGISTRATION) == {None}
        fourth = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=third.cursor
        )
        assert not requested(fourth)


def test_another_field_of_view_is_refused_naming_both_lines() -> None:
    """Line 7 is another animal's tissue filed under the same id: kept apart, and said so."""
    sessions = []
    for line, seed in ((6, 1), (7, 2)):
        movie = SyntheticMiniscope(MiniscopeSynthConfig(n_frames=10, n_neurons=30, seed=seed))
        fp = movie.footprints
        a = sp.csc_matrix(fp.reshape(len(fp), -1).T)
        sessions.append(Session(line, a, np.arange(len(fp)), fp.max(axis=0)))
    group = GroupRegistration("RatC", register_sessions(sessions, 3.0), {}, 3.0)
    (why,) = group.not_aligned().values()
    assert why.startswith("line 7 was not matched to line 6 (RatC)")
    assert "crop_coords" in why and "registration_groups.csv" in why
    assert group.wide_table()["n_sessions"].eq(1).all()
