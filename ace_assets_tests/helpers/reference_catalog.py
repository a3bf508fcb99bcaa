"""The reference-shaped catalog (ace_assets_tests/data/reference_shaped) and its data tree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ace_assets.catalog.experiments import ExperimentCatalog, read_experiments
from ace_assets.catalog.path_map import PathMap

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference_shaped"
#: every numbered row of the fixture
LINES = list(range(1, 31))
#: rows whose folder cells are absolute Windows paths
ABSOLUTE = {
    1: "ephys directory",
    2: "ephys directory",
    3: "calcium imaging directory",
    4: "calcium imaging directory",
    5: "calcium imaging directory",
    6: "calcium imaging directory",
    7: "ephys directory",
    8: "ephys directory",
    9: "ephys directory",
}
#: a session the scope software split into two folders (``a;b`` in the calcium cell)
SPLIT_LINE = 16
#: an ephys folder with no channels listed: every .ncs file in it is used
NO_CHANNELS_LINE = 19
#: hours between the parts of a split session, as :func:`materialize` writes them
PART_GAP_H = 1
#: the lab's Windows roots on the Linux copy; the more specific rule comes first
PATH_MAP = {
    "D:\\Dropbox\\Documents\\Brown_Lab\\data_analysis_code\\miniscopes_EEG\\testing": "testing",
    "d:/dropbox/documents/brown_lab/experimental_data": "K99",
}


def reference_project(root: Path) -> Path:
    """A writable copy of the reference-shaped project (experiments.csv only)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REFERENCE / "experiments.csv", root / "experiments.csv")
    return root


def write_path_map(path: Path, rules: dict[str, str] = PATH_MAP) -> Path:
    path.write_text(json.dumps(rules, indent=2))
    return path


def build_tree(data: Path, catalog: ExperimentCatalog) -> list[Path]:
    """An empty folder for every folder of every usable line, as the copy would hold them."""
    made = []
    for experiment in catalog.experiments.values():
        for folder in (*experiment.calcium_dirs, experiment.ephys_dir):
            if folder is not None:
                (data / folder).mkdir(parents=True, exist_ok=True)
                made.append(data / folder)
    return made


def mapped_catalog(project: Path) -> ExperimentCatalog:
    return read_experiments(project / "experiments.csv", PathMap.of(PATH_MAP))


#: the demo recording whose files stand in for a lab's (both modalities)
DEMO_MINISCOPE = "miniscope/DemoRat/2024_01_04/12_00_00"
DEMO_EPHYS = "ephys/DemoRat/2024-01-04_12-00-00"


def materialize(data: Path, demo_data: Path, catalog: ExperimentCatalog, line: int) -> None:
    """Real Miniscope and Neuralynx files in the line's folders, copied from the demo data.

    Each listed channel is a copy of a demo channel under the line's channel name; with no
    channel listed, the demo's own channels. The parts of a split session are copies of one
    recording, each started ``PART_GAP_H`` hours after the previous one.
    """
    experiment = catalog.experiments[line]
    for part, folder in enumerate(experiment.calcium_dirs):
        target = data / folder
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(demo_data / DEMO_MINISCOPE, target)
        if part:
            meta = json.loads((target / "metaData.json").read_text())
            meta["recordingStartTime"]["msecSinceEpoch"] += part * PART_GAP_H * 3_600_000
            meta["recordingStartTime"]["hour"] += part * PART_GAP_H
            (target / "metaData.json").write_text(json.dumps(meta, indent=4))
    if experiment.ephys_dir is not None:
        target = data / experiment.ephys_dir
        target.mkdir(parents=True, exist_ok=True)
        source = demo_data / DEMO_EPHYS
        for name in experiment.channels or ("PFCLFPvsCBEEG", "EMG"):
            demo = "EMG" if name == "EMG" else "PFCLFPvsCBEEG"
            shutil.copyfile(source / f"{demo}.ncs", target / f"{name}.ncs")
        if experiment.events_filename:
            shutil.copyfile(source / "Events.nev", target / experiment.events_filename)
