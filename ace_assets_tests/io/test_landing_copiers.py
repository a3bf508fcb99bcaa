"""Landing detection against real copiers, on generated sessions.

The guarantee: at no step of a copy does a recording look complete and unchanged over two
looks; when the copy is done it does. Where the files themselves show the copy is not done
(a temp name, an AVI shorter than its header, a timestamp table longer than the movie, a
part-record Neuralynx file) the recording is not even complete, whatever the clock says,
and the reason names the file.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import time
from pathlib import Path

import cv2
import pytest

from ace_assets.io.avi_probe import probe_avi
from ace_assets.io.landing import LandingState, landing_state
from ace_assets_tests.helpers.copiers import (
    CALCIUM_DIR,
    EPHYS_DIR,
    ROW,
    is_required,
    required_landed,
    rsync,
    small_files_first,
    source_files,
    write_source,
)

SETTLE = 120.0
#: A clock long after any settle time: what is left to stop a recording is its files.
LATE = time.time() + 10 * 86400
MOVIE = f"{CALCIUM_DIR}/Miniscope"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_source(tmp_path_factory.mktemp("acquisition"))


@pytest.fixture()
def landed(source: Path, tmp_path: Path) -> Path:
    """A finished copy (times kept, as rsync -a does)."""
    data = tmp_path / "data"
    for _ in rsync(source, data):
        pass
    return data


def two_looks(data: Path, now: float) -> tuple[LandingState, bool]:
    first = landing_state(data, ROW)
    second = landing_state(data, ROW)
    return second, second.ready(first.fingerprint, SETTLE, now)


def follow(copy, source: Path, data: Path) -> list[str]:
    """Look twice after every step of ``copy``; return the reasons given on the way."""
    reasons = []
    for step in copy:
        if step == "done":
            break
        state, ready = two_looks(data, time.time())
        assert not ready, f"ready during the copy, after: {step}"
        if not required_landed(source, data):
            late_state, _ = two_looks(data, LATE)
            assert not late_state.complete, f"complete during the copy, after: {step}"
            assert late_state.awaited, step
        reasons.append(state.reason)
    state, ready = two_looks(data, time.time())
    assert state.complete and ready, state.reason
    assert state.reason == "all files present"
    return reasons


@pytest.mark.parametrize("order", ["sorted", "reversed", "required first", "required last"])
def test_rsync_temp_names_and_kept_mtimes_never_land_early(
    source: Path, tmp_path: Path, order: str
) -> None:
    files = source_files(source)
    arranged = {
        "sorted": files,
        "reversed": files[::-1],
        "required first": sorted(files, key=lambda r: not is_required(r)),
        "required last": sorted(files, key=is_required),
    }[order]
    reasons = follow(rsync(source, tmp_path / "data", arranged), source, tmp_path / "data")
    # the temp files were named while they were there
    assert any(f"{MOVIE}/.0.avi." in r and "hidden file" in r for r in reasons)


def test_small_files_first_never_lands_early(source: Path, tmp_path: Path) -> None:
    reasons = follow(small_files_first(source, tmp_path / "data"), source, tmp_path / "data")
    assert any("bytes its RIFF header announces" in r for r in reasons)
    assert any(f"{EPHYS_DIR}/LFP1.ncs" in r and "stray bytes" in r for r in reasons)
    assert any(f"{MOVIE}/1.avi (missing: the movie runs up to 2.avi)" in r for r in reasons)


def test_v4_behaviour_camera_first_is_not_the_miniscope(source: Path, tmp_path: Path) -> None:
    """BehavCam_0 has its own metaData.json, timeStamps.csv and AVIs: while Miniscope/ is
    absent, empty or partial the line waits, even with every mtime old."""
    data = tmp_path / "data"
    shutil.copytree(source / EPHYS_DIR, data / EPHYS_DIR)
    session = data / CALCIUM_DIR
    shutil.copytree(source / CALCIUM_DIR / "BehavCam_0", session / "BehavCam_0")
    shutil.copy2(source / CALCIUM_DIR / "metaData.json", session / "metaData.json")

    def waiting_for(*needles: str) -> str:
        old = time.time() - 86400
        for p in [*data.rglob("*")]:
            os.utime(p, (old, old))  # the settle time cannot help: only the files can
        state, ready = two_looks(data, LATE)
        assert not state.complete and not ready
        for needle in needles:
            assert needle in state.reason, state.reason
        return state.reason

    waiting_for(f"{MOVIE}/ (the Miniscope device folder", "present: BehavCam_0/")
    (session / "Miniscope").mkdir()
    waiting_for(f"{MOVIE}/0.avi (the Miniscope movie has not arrived)")
    for name in ("metaData.json", "timeStamps.csv"):
        shutil.copy2(source / MOVIE / name, session / "Miniscope" / name)
    waiting_for(f"{MOVIE}/0.avi")
    shutil.copy2(source / MOVIE / "0.avi", session / "Miniscope" / "0.avi")
    waiting_for(f"{MOVIE}/timeStamps.csv (50 rows but 0.avi hold 20 frames")
    shutil.copy2(source / MOVIE / "2.avi", session / "Miniscope" / "2.avi")
    waiting_for(f"{MOVIE}/1.avi (missing: the movie runs up to 2.avi)")
    shutil.copy2(source / MOVIE / "1.avi", session / "Miniscope" / "1.avi")
    state, ready = two_looks(data, LATE)
    assert state.complete and ready, state.reason


def test_truncated_avi_is_named(landed: Path) -> None:
    avi = landed / MOVIE / "1.avi"
    full = avi.stat().st_size
    with avi.open("r+b") as fh:
        fh.truncate(full * 3 // 5)
    frames = int(cv2.VideoCapture(str(avi)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert frames == 20  # the header still promises every frame
    state, _ = two_looks(landed, LATE)
    assert not state.complete
    assert state.awaited == (
        f"{MOVIE}/1.avi ({full * 3 // 5} of the {full} bytes its RIFF header announces: "
        "still copying, or cut off)",
    )


def test_timestamps_with_more_rows_than_frames_are_named(landed: Path) -> None:
    table = landed / MOVIE / "timeStamps.csv"
    with table.open("a") as fh:
        fh.write("50,1700,0\n51,1733,1\n")
    state, _ = two_looks(landed, LATE)
    assert not state.complete
    assert state.awaited == (
        f"{MOVIE}/timeStamps.csv (52 rows but 0.avi..2.avi hold 50 frames: "
        "a movie file is still to come)",
    )


def test_avi_header_disagreeing_with_its_index_is_named(landed: Path) -> None:
    """A header promising more frames than the index lists (dwLength of the video stream)."""
    avi = landed / MOVIE / "0.avi"
    raw = bytearray(avi.read_bytes())
    strh = raw.index(b"strh")
    length_at = strh + 8 + 32
    (frames,) = struct.unpack_from("<I", raw, length_at)
    struct.pack_into("<I", raw, length_at, frames + 3)
    avi.write_bytes(bytes(raw))
    state, _ = two_looks(landed, LATE)
    assert state.awaited == (
        f"{MOVIE}/0.avi (the header promises {frames + 3} frames but the index lists {frames})",
    )


def test_probe_agrees_with_opencv_and_finds_no_index(landed: Path) -> None:
    for avi in sorted((movie_dir := landed / MOVIE).glob("*.avi")):
        cap = cv2.VideoCapture(str(avi))
        assert probe_avi(avi).frames == int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
    raw = (movie_dir / "0.avi").read_bytes()
    idx1 = raw.index(b"idx1")
    cut = movie_dir / "cut.avi"
    # the RIFF size is patched to the shorter file: only the missing index shows it
    cut.write_bytes(b"RIFF" + struct.pack("<I", idx1 - 8) + raw[8:idx1])
    assert probe_avi(cut).problem == "no idx1 index at the end: still copying, or cut off"


@pytest.mark.parametrize(
    "name",
    [
        ".2.avi.Xq81zB",
        "~$notes.docx",
        "2.avi.part",
        "copy.tmp",
        "download.partial",
        "0.avi.crdownload",
        "0.avi.filepart",
        ".rsync-partial/2.avi",
    ],
)
def test_hidden_and_temp_files_block_and_are_named(landed: Path, name: str) -> None:
    before, _ = two_looks(landed, LATE)
    stray = landed / MOVIE / name
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"\0" * 100)
    state, _ = two_looks(landed, LATE)
    assert not state.complete
    assert len(state.awaited) == 1 and state.awaited[0].startswith(f"{MOVIE}/{name} (")
    assert state.fingerprint != before.fingerprint
    with stray.open("ab") as fh:  # a growing temp file changes the fingerprint
        fh.write(b"\0")
    assert landing_state(landed, ROW).fingerprint != state.fingerprint


def test_finder_metadata_neither_blocks_nor_changes_the_fingerprint(landed: Path) -> None:
    before, _ = two_looks(landed, LATE)
    (landed / MOVIE / ".DS_Store").write_bytes(b"Bud1")
    after, ready = two_looks(landed, LATE)
    assert after.complete and ready and after.fingerprint == before.fingerprint


def test_fingerprint_of_a_landed_recording_is_the_previous_format(landed: Path) -> None:
    """Lines processed before this change are not processed again: same files, same hash."""
    import hashlib

    entries = []
    for rel in (CALCIUM_DIR, EPHYS_DIR):
        folder = (landed / rel).resolve()
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                st = path.stat()
                entries.append((str(path), st.st_size, st.st_mtime))
    digest = hashlib.sha256(repr(sorted(entries)).encode()).hexdigest()[:16]
    assert landing_state(landed, ROW).fingerprint == digest


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        ("LFP2.ncs", "missing", "(missing)"),
        ("LFP2.ncs", "stray", "not a whole number of 1044-byte records"),
        ("LFP2.ncs", "header only", "a header but no records yet"),
        ("Events.nev", "stray", "not a whole number of 184-byte records"),
        ("Events.nev", "missing", "(missing)"),
    ],
)
def test_neuralynx_files_must_be_whole_records(
    landed: Path, name: str, change: str, expected: str
) -> None:
    path = landed / EPHYS_DIR / name
    if change == "missing":
        path.unlink()
    elif change == "stray":
        with path.open("ab") as fh:
            fh.write(b"\0" * 37)
    else:
        with path.open("r+b") as fh:
            fh.truncate(16384)
    state, _ = two_looks(landed, LATE)
    assert not state.complete
    assert len(state.awaited) == 1
    assert state.awaited[0].startswith(f"{EPHYS_DIR}/{name} (") and expected in state.awaited[0]


def test_emg_channel_is_awaited_too(landed: Path) -> None:
    row = {**ROW, "emg_channel": "EMG1"}
    state = landing_state(landed, row)
    assert state.awaited == (f"{EPHYS_DIR}/EMG1.ncs (missing)",)


def test_growing_whole_record_ncs_waits_for_the_settle_time(landed: Path) -> None:
    """A copy paused at a record boundary is whole by size; its fresh mtime keeps it waiting."""
    ncs = landed / EPHYS_DIR / "LFP2.ncs"
    with ncs.open("r+b") as fh:
        fh.truncate(16384 + 2 * 1044)
    written = ncs.stat().st_mtime
    state, ready = two_looks(landed, written + 1)
    assert state.complete and not ready
    assert state.ready(state.fingerprint, SETTLE, written + SETTLE)


def test_v3_session_lands_only_whole(tmp_path: Path) -> None:
    from ace_assets.demo.miniscope_writer import write_v3_session
    from ace_assets_tests.helpers.copiers import _synth

    data = tmp_path / "data"
    write_v3_session(data / "v3", _synth(50), frames_per_file=20)
    row = {"line_number": 3, "calcium_dir": "v3"}
    assert landing_state(data, row).complete
    (data / "v3" / "msCam2.avi").rename(tmp_path / "held.avi")
    state = landing_state(data, row)
    assert state.awaited == ("v3/msCam2.avi (missing: the movie runs up to msCam3.avi)",)
    (tmp_path / "held.avi").rename(data / "v3" / "msCam2.avi")
    table = data / "v3" / "timestamp.dat"
    lines = table.read_text().splitlines()
    table.write_text("\n".join(lines[:-20]) + "\n")
    state = landing_state(data, row)
    assert len(state.awaited) == 1 and state.awaited[0].startswith(
        "v3/timestamp.dat (no camNum has one row per AVI frame: the AVIs hold 50 frames"
    )


def test_unreadable_path_cell_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    for bad in ("a\0b", "x" * 5000):
        state = landing_state(tmp_path, {"line_number": 4, "calcium_dir": bad})
        assert not state.complete and state.reason.startswith("calcium imaging directory '")


def test_metadata_json_cut_off_is_named(landed: Path) -> None:
    meta = landed / MOVIE / "metaData.json"
    text = meta.read_text()
    assert json.loads(text)
    meta.write_text(text[: len(text) // 2])
    state, _ = two_looks(landed, LATE)
    assert len(state.awaited) == 1 and state.awaited[0].startswith(f"{MOVIE}/metaData.json (")


def test_link_leading_out_of_data_path_is_refused(landed: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not raw data")
    (landed / MOVIE / "notes.txt").symlink_to(outside)
    (landed / MOVIE / "inside.txt").symlink_to(landed / MOVIE / "metaData.json")
    state = landing_state(landed, ROW)
    assert state.awaited == (
        f"{MOVIE}/notes.txt (a link to {outside.resolve()}, outside data_path: copy the data "
        "itself)",
    )
