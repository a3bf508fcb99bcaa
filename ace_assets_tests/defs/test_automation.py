"""Declarative automation: downstream assets follow upstream ones, for the updated line only."""

from __future__ import annotations

import dagster as dg
import pytest

from ace_assets.definitions import all_assets, defs
from ace_assets.defs.partitions import LINE_PARTITIONS_NAME

PER_LINE = [a.key for a in all_assets if a.partitions_def is not None]
#: across lines: follow every line's results (ace_assets_tests/defs/test_cohort_assets.py)
CROSS_LINE = [a.key for a in all_assets if a.group_names_by_key[a.key] == "cohort"]
DOWNSTREAM = [
    k for k in PER_LINE if k.to_user_string() not in ("analysis_parameters", "session_files")
]


def requested(result) -> dict[str, set[str]]:
    return {
        k.to_user_string(): set(result.get_requested_partitions(k))
        for k in PER_LINE
        if result.get_requested_partitions(k)
    }


@pytest.mark.slow  # evaluates automation ticks the way the daemon does (tens of seconds)
def test_updated_line_pulls_its_downstream_assets_once() -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(LINE_PARTITIONS_NAME, ["1", "2"])
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0  # nothing upstream happened yet

        # a re-read catalog does not re-run every line (new raw data is the sensor's call)
        instance.report_runless_asset_event(dg.AssetMaterialization("experiments"))
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=first.cursor
        )
        assert second.total_requested == 0

        for key in ("analysis_parameters", "session_files"):
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition="1"))
        third = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=second.cursor
        )
        assert requested(third) == {k.to_user_string(): {"1"} for k in DOWNSTREAM}

        fourth = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=third.cursor
        )
        assert fourth.total_requested == 0  # a repeated tick requests nothing twice

        # edited parameters of line 2 re-run line 2's analysis, and nothing of line 1
        instance.report_runless_asset_event(dg.AssetMaterialization("session_files", partition="2"))
        fifth = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=fourth.cursor
        )
        assert fifth.total_requested == 0  # line 2's parameters were never materialized
        instance.report_runless_asset_event(
            dg.AssetMaterialization("analysis_parameters", partition="2")
        )
        sixth = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=fifth.cursor)
        assert requested(sixth) == {k.to_user_string(): {"2"} for k in DOWNSTREAM}


def test_automation_sensor_covers_every_asset_and_runs_by_default() -> None:
    follow_upstream = defs.resolve_sensor_def("follow_upstream")
    assert follow_upstream.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    targeted = follow_upstream.asset_selection.resolve(graph)
    assert {a.key for a in all_assets} <= targeted
    for asset in all_assets:
        eager = asset.automation_conditions_by_key.get(asset.key) is not None
        follows = asset.key in DOWNSTREAM or asset.key in CROSS_LINE
        assert eager == follows, asset.key  # raw data: the sensor's call
