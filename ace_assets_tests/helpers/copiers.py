"""A recording as it lands on a lab server, one copier step at a time.

Each copier is a generator: every ``next()`` performs one step (a chunk written, a time
set, a rename) and yields what it did, so a test can look at the destination between any
two steps, as a sensor tick might. Like ``rsync -a`` and ``robocopy /DCOPY:T``, the copiers
give files and, at the very end, folders their source's (old) modification times.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np

from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
from ace_assets.demo.miniscope_writer import write_v4_session
from ace_assets.demo.neuralynx_writer import write_ncs, write_nev
from ace_assets.io.neuralynx_format import HEADER_SIZE, NCS_RECORD_SIZE, NEV_RECORD_SIZE

CALCIUM_DIR = "ca/s1"
EPHYS_DIR = "ep/s1"
ROW = {
    "line_number": 1,
    "calcium_dir": CALCIUM_DIR,
    "ephys_dir": EPHYS_DIR,
    "channels": "LFP1;LFP2",
    "emg_channel": None,
    "events_filename": "Events.nev",
}
#: experiments.csv for ROW, as a lab writes it.
EXPERIMENTS_CSV = (
    "line number,id,date (YYMMDD),calcium imaging directory,ephys directory,"
    f"emg channel,events filename,LFP and EEG CSCs\n1,RatA,240101,{CALCIUM_DIR},{EPHYS_DIR},"
    "NA,Events.nev,LFP1;LFP2\n"
)
RECORDED_AGO_S = 86400.0


def _synth(n_frames: int) -> SyntheticMiniscope:
    return SyntheticMiniscope(
        MiniscopeSynthConfig(height=24, width=32, n_frames=n_frames, n_neurons=2, neuron_radius=2.0)
    )


def write_source(root: Path) -> Path:
    """A V4 session (Miniscope/ with 0..2.avi, BehavCam_0/ with its own metaData.json,
    timeStamps.csv and AVIs) and a Neuralynx session, recorded a day ago."""
    session = root / CALCIUM_DIR
    write_v4_session(session, _synth(50), frames_per_file=20)
    scratch = root / "scratch"
    write_v4_session(scratch, _synth(30), frames_per_file=20, device_name="BehavCam_0")
    shutil.move(scratch / "BehavCam_0", session / "BehavCam_0")
    shutil.rmtree(scratch)
    meta = session / "BehavCam_0" / "metaData.json"
    behav = json.loads(meta.read_text())
    behav.update(deviceType="WebCam-320x240", deviceName="BehavCam 0")
    meta.write_text(json.dumps(behav, indent=4) + "\n")
    ephys = root / EPHYS_DIR
    ephys.mkdir(parents=True)
    for i, channel in enumerate(("LFP1", "LFP2")):
        samples = (np.arange(6 * 512) % 97).astype(np.int16)
        write_ncs(ephys / f"{channel}.ncs", samples, 2000.0, channel_name=channel, channel_id=i)
    write_nev(ephys / "Events.nev", np.array([1000, 2000, 3000]), np.array([1, 0, 1]))
    old = time.time() - RECORDED_AGO_S
    for path in [*root.rglob("*"), root]:
        os.utime(path, (old, old))
    return root


def source_files(src: Path) -> list[PurePosixPath]:
    """Files below ``src`` in rsync's order (bytewise sorted paths)."""
    return sorted(
        (PurePosixPath(p.relative_to(src).as_posix()) for p in src.rglob("*") if p.is_file()),
        key=lambda p: str(p).encode(),
    )


def is_required(rel: PurePosixPath) -> bool:
    """The files the pipeline reads for ROW: the Miniscope device folder and the ephys files."""
    return str(rel).startswith((f"{CALCIUM_DIR}/Miniscope/", f"{EPHYS_DIR}/"))


def required_landed(src: Path, dst: Path) -> bool:
    """Every required file is in place with its full content, and no temp file remains."""
    temp = any(p.name.startswith(".") for p in dst.rglob("*"))
    return not temp and all(
        (dst / rel).is_file() and (dst / rel).read_bytes() == (src / rel).read_bytes()
        for rel in source_files(src)
        if is_required(rel)
    )


def _cuts(path: Path, size: int, pieces: int) -> list[int]:
    """Chunk ends; never a whole number of Neuralynx records (a copier's buffer is not)."""
    record = {".ncs": NCS_RECORD_SIZE, ".nev": NEV_RECORD_SIZE}.get(path.suffix.lower())
    ends = []
    for k in range(1, pieces):
        end = size * k // pieces
        if record and end >= HEADER_SIZE and (end - HEADER_SIZE) % record == 0:
            end += 1
        ends.append(end)
    return [*ends, size]


def _restore_folder_times(src: Path, dst: Path) -> None:
    for folder in sorted((p for p in src.rglob("*") if p.is_dir()), reverse=True) + [src]:
        st = folder.stat()
        os.utime(dst / folder.relative_to(src), (st.st_atime, st.st_mtime))


def _write_in_chunks(src_file: Path, target: Path, pieces: int) -> Iterator[str]:
    data = src_file.read_bytes()
    start = 0
    with target.open("wb") as fh:
        for end in _cuts(src_file, len(data), pieces):
            fh.write(data[start:end])
            fh.flush()
            start = end
            yield f"{target.name}: {end} of {len(data)} bytes"


def rsync(
    src: Path, dst: Path, order: list[PurePosixPath] | None = None, pieces: int = 3
) -> Iterator[str]:
    """rsync -a: each file goes to a hidden ``.name.XXXXXX``, gets the source's mtime, and is
    renamed into place; folder times are restored last."""
    for n, rel in enumerate(order or source_files(src)):
        target = dst / rel
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True)
            yield f"mkdir {rel.parent}"
        temp = target.parent / f".{target.name}.{n:06d}"
        yield from _write_in_chunks(src / rel, temp, pieces)
        st = (src / rel).stat()
        os.utime(temp, (st.st_atime, st.st_mtime))
        yield f"{temp.name}: source mtime"
        os.replace(temp, target)
        yield f"renamed {rel}"
    _restore_folder_times(src, dst)
    yield "done"


def small_files_first(src: Path, dst: Path, pieces: int = 4) -> Iterator[str]:
    """A copier that writes final names directly, smallest files first, in chunks, setting
    each file's source mtime when it is done; folder times are restored last."""
    for rel in sorted(source_files(src), key=lambda r: ((src / r).stat().st_size, str(r))):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        yield from _write_in_chunks(src / rel, target, pieces)
        st = (src / rel).stat()
        os.utime(target, (st.st_atime, st.st_mtime))
        yield f"{rel}: source mtime"
    _restore_folder_times(src, dst)
    yield "done"
