"""Raw files are read only inside data_path: a file or folder linked out of it is refused.

A generated session (a V4 Miniscope folder with a behaviour camera, two ``.ncs`` channels
and a ``.nev``) under ``data/``; each test moves one of its files out of ``data/`` and
leaves a symbolic link in its place, as a lab member might to avoid a copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
from ace_assets.demo.miniscope_writer import write_v4_session
from ace_assets.demo.neuralynx_writer import write_ncs, write_nev
from ace_assets.demo.truth import truth_for
from ace_assets.io.confined import OutsideDataPathError, confined_file, confined_tree
from ace_assets.io.miniscope import open_miniscope
from ace_assets.io.neuralynx import NeuralynxSession
from ace_assets.io.session import resolve_session

LINE = 7
EXPERIMENT = {
    "line_number": LINE,
    "calcium_dir": "ms/s1",
    "ephys_dir": "ep/s1",
    "channels": "CSC1;CSC2",
    "emg_channel": None,
    "events_filename": "Events.nev",
}


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    synth = SyntheticMiniscope(
        MiniscopeSynthConfig(height=24, width=32, n_frames=30, n_neurons=3, neuron_radius=2.0)
    )
    write_v4_session(root / "ms" / "s1", synth, frames_per_file=10)
    write_v4_session(root / "ms" / "s1", synth, frames_per_file=10, device_name="BehavCam_0")
    ephys = root / "ep" / "s1"
    ephys.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in (1, 2):
        samples = rng.normal(0, 1e-4, 4096)
        write_ncs(ephys / f"CSC{k}.ncs", samples, 1000.0, channel_name=f"CSC{k}", channel_id=k)
    write_nev(ephys / "Events.nev", np.array([100_000, 200_000]), np.array([1, 0]))
    return root


def link_away(path: Path, elsewhere: Path) -> Path:
    """Move ``path`` to ``elsewhere`` and leave a symbolic link to it behind."""
    elsewhere.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, elsewhere)
    path.symlink_to(elsewhere)
    return elsewhere


def test_links_that_stay_inside_data_path_are_followed(data: Path) -> None:
    before = resolve_session(data, EXPERIMENT, "experiments.csv")
    link_away(data / "ms/s1/Miniscope/0.avi", data / "shared/movie_0.avi")
    link_away(data / "ms/s1/Miniscope/timeStamps.csv", data / "shared/ts.csv")
    link_away(data / "ep/s1/CSC1.ncs", data / "shared/CSC1.ncs")
    link_away(data / "ep/s1/Events.nev", data / "shared/Events.nev")
    after = resolve_session(data, EXPERIMENT, "experiments.csv")
    assert after.miniscope is not None and before.miniscope is not None
    assert after.miniscope.n_frames == before.miniscope.n_frames == 30
    assert after.miniscope.files[0]["name"] == "0.avi"
    assert after.ephys is not None and after.ephys.events_file is not None
    assert [c["n_records"] for c in after.ephys.channels] == [8, 8]
    session = NeuralynxSession(data / "ep/s1", ["CSC1", "CSC2"], "Events.nev", confine_to=data)
    assert session.files[0] == (data / "shared/CSC1.ncs").resolve()
    assert len(session.events()) == 2


@pytest.mark.parametrize(
    ("relative", "column"),
    [
        ("ms/s1/Miniscope/0.avi", "calcium imaging directory"),
        ("ms/s1/Miniscope/metaData.json", "calcium imaging directory"),
        ("ms/s1/Miniscope/timeStamps.csv", "calcium imaging directory"),
        ("ms/s1/BehavCam_0/metaData.json", "calcium imaging directory"),
        ("ms/s1/Miniscope", "calcium imaging directory"),
        ("ep/s1/CSC2.ncs", "ephys directory"),
        ("ep/s1/Events.nev", "ephys directory"),
    ],
)
def test_a_file_or_folder_linked_out_of_data_path_is_refused(
    data: Path, tmp_path: Path, relative: str, column: str
) -> None:
    target = link_away(data / relative, tmp_path / "elsewhere" / Path(relative).name)
    with pytest.raises(OutsideDataPathError) as caught:
        resolve_session(data, EXPERIMENT, "experiments.csv")
    error = caught.value
    assert error.line == LINE and error.column == column
    assert error.file is not None and Path(error.file).is_relative_to(data / relative.split("/")[0])
    message = str(error)
    assert str(target.resolve()) in message and str(data.resolve()) in message
    assert "copy the file into the session folder instead of linking it" in message


def test_refused_before_the_reader_looks_at_the_file(data: Path, tmp_path: Path) -> None:
    """The targets are not an AVI or an .ncs at all: a reader that opened them first would
    report a broken movie or header, not the link."""
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.txt").write_text("not a movie\n")
    avi = data / "ms/s1/Miniscope/0.avi"
    avi.unlink()
    avi.symlink_to(outside / "secret.txt")
    with pytest.raises(OutsideDataPathError, match="secret.txt"):
        open_miniscope(data / "ms/s1", confine_to=data)
    # a session split across two folders: still the link, and the line that led to it
    shutil.copytree(data / "ms/s1", data / "ms/s2", symlinks=True)
    split = {**EXPERIMENT, "calcium_dir": "ms/s2;ms/s1"}
    with pytest.raises(OutsideDataPathError, match="secret.txt") as err:
        resolve_session(data, split, "experiments.csv")
    assert err.value.line == LINE and err.value.column == "calcium imaging directory"
    ncs = data / "ep/s1/CSC1.ncs"
    ncs.unlink()
    ncs.symlink_to(outside / "secret.txt")
    with pytest.raises(OutsideDataPathError, match="secret.txt"):
        NeuralynxSession(data / "ep/s1", ["CSC1", "CSC2"], confine_to=data)
    with pytest.raises(OutsideDataPathError, match="secret.txt"):
        resolve_session(data, EXPERIMENT, "experiments.csv")


def test_a_link_made_after_the_listing_is_refused_when_the_asset_opens_the_folder(
    data: Path, tmp_path: Path
) -> None:
    """The movie and alignment assets re-open the folder the session listing resolved."""
    session = resolve_session(data, EXPERIMENT, "experiments.csv")
    assert session.miniscope is not None and session.ephys is not None
    link_away(data / "ms/s1/Miniscope/1.avi", tmp_path / "elsewhere/1.avi")
    link_away(data / "ep/s1/CSC1.ncs", tmp_path / "elsewhere/CSC1.ncs")
    with pytest.raises(OutsideDataPathError, match="1.avi"):
        open_miniscope(session.miniscope.folder, confine_to=data)
    with pytest.raises(OutsideDataPathError, match="CSC1.ncs"):
        NeuralynxSession(session.ephys.folder, ["CSC1", "CSC2"], confine_to=data)


def test_dangling_and_looping_links(data: Path, tmp_path: Path) -> None:
    scope = data / "ms/s1/Miniscope"
    (scope / "notes.txt").symlink_to(data / "not_yet_there.txt")
    confined_tree(data / "ms/s1", data)  # dangling inside data_path: no file, nothing read
    (scope / "later.avi").symlink_to(tmp_path / "appears_later.avi")
    with pytest.raises(OutsideDataPathError, match="appears_later.avi"):
        confined_tree(data / "ms/s1", data)
    (scope / "later.avi").unlink()
    (scope / "loop_a").symlink_to(scope / "loop_b")
    (scope / "loop_b").symlink_to(scope / "loop_a")
    with pytest.raises(OutsideDataPathError, match="cannot be resolved"):
        confined_tree(data / "ms/s1", data)
    with pytest.raises(OutsideDataPathError, match="not found"):
        confined_file(scope / "notes.txt", data)


def test_data_path_given_through_a_link_is_its_target(data: Path, tmp_path: Path) -> None:
    """data_path itself may be a link (a mount alias); files inside its target are inside."""
    alias = tmp_path / "data_alias"
    alias.symlink_to(data)
    session = resolve_session(alias, EXPERIMENT, "experiments.csv")
    assert session.miniscope is not None and session.miniscope.n_frames == 30
    assert confined_file(alias / "ep/s1/CSC1.ncs", alias) == (data / "ep/s1/CSC1.ncs").resolve()


def test_a_folder_outside_data_path_and_a_linked_truth_file(data: Path, tmp_path: Path) -> None:
    """The readers' own entry points, and the demo's truth file (read from data_path by name,
    not from the session listing), apply the same rule."""
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(data / "ms/s1", elsewhere / "s1")
    with pytest.raises(OutsideDataPathError, match="is outside data_path"):
        open_miniscope(elsewhere / "s1", confine_to=data)
    np.savez(elsewhere / "line_7.npz", x=np.arange(3))
    (data / "truth").mkdir()
    (data / "truth/line_7.npz").symlink_to(elsewhere / "line_7.npz")
    with pytest.raises(OutsideDataPathError, match="line_7.npz"):
        truth_for(data, LINE)
