"""The CSVs the assets publish carry no live formula: a hostile catalog row and a hostile
``.nev`` event string, through the experiments and ephys_channels assets."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from ace_assets.defs.assets.catalog import analysis_parameters, experiments
from ace_assets.defs.assets.ephys import ephys_channels
from ace_assets.defs.assets.session import session_files
from ace_assets.defs.resources import PathsResource
from ace_assets.demo.neuralynx_writer import write_ncs, write_nev
from ace_assets_tests.helpers.dagster_helpers import failure_text
from ace_assets_tests.helpers.projects import demo_catalog_copy

HEADER = (
    "line number,id,date (YYMMDD),calcium imaging directory,ephys directory,rat weight (kg),"
    "emg channel,events filename,LFP and EEG CSCs,comments"
)
ASSETS = [experiments, analysis_parameters, session_files, ephys_channels]


def lab(tmp_path: Path) -> PathsResource:
    data = tmp_path / "data"
    ephys = data / "ep" / "s1"
    ephys.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for k in (1, 2):
        write_ncs(
            ephys / f"CSC{k}.ncs",
            rng.normal(0, 1e-4, 8192),
            1000.0,
            channel_name=f"CSC{k}",
            channel_id=k,
        )
    write_nev(
        ephys / "Events.nev",
        np.array([500_000, 1_000_000, 1_500_000]),
        np.array([1, 0, 1]),
        ["=cmd|' /C calc'!A0", "@SUM(1)", "TTL Input on AcqSystem1_0 board 0 port 0"],
        event_ids=np.array([11, 11, 11]),
    )
    project = demo_catalog_copy(tmp_path / "project")
    rows = [
        "1,=cmd|' /C calc'!A0,240101,,ep/s1,0.5,,Events.nev,CSC1;CSC2,+SUM(1)",
        "2,@SUM(1),240102,,ep/s1,0.4,,Events.nev,CSC1,-2+3",
    ]
    (project / "experiments.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return PathsResource(
        project_path=str(project), data_path=str(data), results_path=str(tmp_path / "results")
    )


def test_published_csvs_hold_neutralized_text_and_numeric_columns(tmp_path: Path) -> None:
    paths = lab(tmp_path)
    resources = {"paths": paths}
    with dg.instance_for_test() as instance:
        assert dg.materialize([experiments], instance=instance, resources=resources).success
        run = dg.materialize(
            ASSETS,
            selection=["analysis_parameters", "session_files", "ephys_channels"],
            partition_key="1",
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
        assert run.success, failure_text(run)

    catalog = pd.read_csv(paths.results / "catalog/experiments/experiments.csv")
    assert catalog["animal_id"].tolist() == ["'=cmd|' /C calc'!A0", "'@SUM(1)"]
    assert catalog["comments"].tolist() == ["'+SUM(1)", "'-2+3"]
    assert pd.api.types.is_integer_dtype(catalog["line_number"])
    assert catalog["weight_kg"].tolist() == [0.5, 0.4]

    events = pd.read_csv(paths.line_dir(1) / "ephys_channels/events.csv")
    assert events["string"].tolist()[:2] == ["'=cmd|' /C calc'!A0", "'@SUM(1)"]
    assert events["string"].tolist()[2].startswith("TTL Input")
    assert pd.api.types.is_integer_dtype(events["ttl"]) and events["ttl"].tolist() == [1, 0, 1]
    assert pd.api.types.is_float_dtype(events["timestamp_s"])
    np.testing.assert_allclose(events["timestamp_s"], [0.5, 1.0, 1.5])
