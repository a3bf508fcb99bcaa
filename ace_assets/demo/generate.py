"""Write the raw data of the demo project (six experiment lines) plus their ground truth.

Why: the whole pipeline, end to end, needs realistic raw files whose correct
answers are known. Directories are relative to ``out_dir`` (the demo's data_path):

- line 1, both modalities:
  ``miniscope/DemoRat/2024_01_01/12_00_00`` (V4 session) and
  ``ephys/DemoRat/2024-01-01_12-00-00`` (``PFCLFPvsCBEEG.ncs``, ``PFCEEGvsCBEEG.ncs``,
  ``EMG.ncs``, ``Events.nev``); a subset of neurons fires phase-locked to the ephys
  oscillation.
- line 2, calcium only: ``miniscope/DemoRat/2024_01_02/12_00_00``.
- line 3, ephys only: ``ephys/DemoRat/2024-01-03_12-00-00`` (same channels; one
  recording pause, i.e. a time gap in the ``.ncs`` files, bracketed by
  "Stopping Recording"/"Starting Recording" events).
- line 4, both modalities, events as a Cheetah 5.6 Digital Lynx writes them (event id 0,
  the whole parallel-port word, idle 0x3000, the frame pulse on one bit while behaviour
  bits toggle); see :mod:`ace_assets.demo.ephys_lines`.
- line 5, ephys only: 2 kHz channels with partial records and a pause beside a 32 kHz
  channel that records on; see :mod:`ace_assets.demo.ephys_lines`.
- line 6, ephys only, like line 3 without the pause. Lines 3 and 6 are the isoflurane
  group: their oscillation carries a known multiple of the other lines' power; see
  :mod:`ace_assets.demo.group_lines`.

Line 1 ``Events.nev``: "Starting Recording" (TTL 0, event id 19) at the first
sample, then for every Miniscope frame a TTL pulse: a rising edge (TTL value 1,
event id 11) at the frame time on the ephys clock and a falling edge (TTL value 0,
event id 11) 1 ms later, plus ``SPURIOUS_TTLS`` extra pulses; "Stopping Recording"
at the end. ``spurious_ttl_indices`` index the rising edges (non-zero TTL
events in time order), which is what "indices of TTL events to delete" refers to.
Frame k's time on the ephys clock is ``TTL_OFFSET_S + k / fps`` (+ <1 ms jitter)
seconds after the first ``.ncs`` sample.

Ground truth goes to ``out_dir/truth/line_<n>.npz`` (arrays only), written last:
its presence marks the line complete, so a rerun skips finished lines and raw
data are written once.
"""

from __future__ import annotations

import datetime as _dt
import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ace_assets.demo.ephys_synth import EphysSynthConfig, SyntheticEphys
from ace_assets.demo.group_lines import group_truth, osc_power_factor
from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
from ace_assets.demo.miniscope_writer import write_v4_session
from ace_assets.demo.neuralynx_writer import NcsWriter, ttl_event_string, write_nev
from ace_assets.demo.sessions_synth import SessionChange, related_session
from ace_assets.io.store import atomic_save_npz, load_npz

LINE_DIRS: dict[int, dict[str, str]] = {
    1: {
        "miniscope": "miniscope/DemoRat/2024_01_01/12_00_00",
        "ephys": "ephys/DemoRat/2024-01-01_12-00-00",
    },
    2: {"miniscope": "miniscope/DemoRat/2024_01_02/12_00_00"},
    3: {"ephys": "ephys/DemoRat/2024-01-03_12-00-00"},
    4: {
        "miniscope": "miniscope/DemoRat/2024_01_04/12_00_00",
        "ephys": "ephys/DemoRat/2024-01-04_12-00-00",
    },
    5: {"ephys": "ephys/DemoRat/2024-01-05_12-00-00"},
    6: {"ephys": "ephys/DemoRat/2024-01-06_12-00-00"},
}
LINE_START = {
    1: _dt.datetime(2024, 1, 1, 12, 0, 0),
    2: _dt.datetime(2024, 1, 2, 12, 0, 0),
    3: _dt.datetime(2024, 1, 3, 12, 0, 0),
    4: _dt.datetime(2024, 1, 4, 12, 0, 0),
    5: _dt.datetime(2024, 1, 5, 12, 0, 0),
    6: _dt.datetime(2024, 1, 6, 12, 0, 0),
}
EPHYS_CHANNELS = ("PFCLFPvsCBEEG", "PFCEEGvsCBEEG", "EMG")
EMG_CHANNEL = "EMG"
EVENTS_FILE = "Events.nev"
TTL_OFFSET_S = 2.5  # first Miniscope frame, seconds after the first ephys sample
TAIL_S = 2.5  # ephys keeps recording this long after the last frame
EPHYS_START_US = 15_000_000  # Cheetah clock (µs) of the first sample
TTL_VALUE = 1
TTL_PULSE_US = 1000
SPURIOUS_TTLS = 2  # one 1 s before the first frame, one between two frames mid-movie
AD_BIT_VOLTS = 3.0e-8
LOCKED_FRACTION = 1.0 / 3.0
PREFERRED_PHASE = 1.0  # rad; the phase of cos(phi), 0 = oscillation peak
LOCK_KAPPA = 3.0


@dataclass(frozen=True)
class DemoSize:
    """Movie and recording dimensions; CI_SIZE by default, FULL_SIZE with --full."""

    height: int
    width: int
    frames_per_file: int
    n_files: int
    n_neurons: int
    neuron_radius: float
    motion_amplitude: float
    ephys_fs: float
    fps: float = 30.0

    @property
    def n_frames(self) -> int:
        return self.frames_per_file * self.n_files


CI_SIZE = DemoSize(128, 128, 200, 3, 30, 3.0, 2.0, 2000.0)
FULL_SIZE = DemoSize(608, 608, 1000, 3, 150, 7.0, 5.0, 32000.0)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


def _line_seed(seed: int, line: int) -> int:
    return int(seed) * 100 + line


def _movie_config(size: DemoSize, seed: int, **kw: Any) -> MiniscopeSynthConfig:
    return MiniscopeSynthConfig(
        height=size.height,
        width=size.width,
        n_frames=size.n_frames,
        fps=size.fps,
        n_neurons=size.n_neurons,
        neuron_radius=size.neuron_radius,
        motion_amplitude=size.motion_amplitude,
        seed=seed,
        **kw,
    )


def _ephys_samples(size: DemoSize) -> int:
    n = int(round((TTL_OFFSET_S + size.n_frames / size.fps + TAIL_S) * size.ephys_fs))
    return n + 37 if n % 512 == 0 else n  # end on a partial record, as real files do


def _frame_times(size: DemoSize, seed: int) -> np.ndarray:
    jitter = np.clip(_rng(seed, 50).normal(0, 3e-4, size.n_frames), -9e-4, 9e-4)
    return np.arange(size.n_frames) / size.fps + jitter


def write_ephys_session(
    directory: Path,
    ephys: SyntheticEphys,
    *,
    start_us: int = EPHYS_START_US,
    time_created: _dt.datetime | None = None,
    ad_bit_volts: float = AD_BIT_VOLTS,
    chunk: int = 1 << 16,
) -> dict[str, Any]:
    """Stream every channel of ``ephys`` into ``<name>.ncs`` files (bounded memory)."""
    directory.mkdir(parents=True, exist_ok=True)
    gaps = sorted((int(i), float(s)) for i, s in ephys.config.gaps)
    writers = [
        NcsWriter(
            directory / f"{name}.ncs",
            ephys.fs,
            start_us=start_us,
            ad_bit_volts=ad_bit_volts,
            channel_name=name,
            channel_id=k,
            time_created=time_created,
        )
        for k, name in enumerate(ephys.channel_names)
    ]
    limit = 32767 * ad_bit_volts
    clipped = np.zeros(len(writers), dtype=np.int64)
    try:
        for a, block in ephys.iter_chunks(chunk):
            b = a + block.shape[1]
            local = [(i - a, s) for i, s in gaps if a <= i < b]
            for k, w in enumerate(writers):
                clipped[k] += int((np.abs(block[k]) > limit).sum())
                w.append(block[k], gaps=local)
    finally:
        for w in writers:
            w.close()
    return {
        "files": [w.path for w in writers],
        "n_records": writers[0].n_records,
        "clipped_samples": clipped,
    }


def _write_events(
    path: Path,
    rising_us: np.ndarray,
    string_events: list[tuple[int, str]],
    time_created: _dt.datetime,
) -> np.ndarray:
    """Write string events plus one TTL pulse (rise, fall 1 ms later) per time; rises back."""
    rows: list[tuple[int, int, int, int, str]] = []  # (time, order, ttl, event id, string)
    for t, text in string_events:
        rows.append((int(t), 0, 0, 19, text))
    for t in rising_us:
        rows.append((int(t), 1, TTL_VALUE, 11, ttl_event_string(TTL_VALUE)))
        rows.append((int(t) + TTL_PULSE_US, 1, 0, 11, ttl_event_string(0)))
    rows.sort(key=lambda r: (r[0], r[1]))
    write_nev(
        path,
        np.array([r[0] for r in rows], dtype=np.uint64),
        np.array([r[2] for r in rows], dtype=np.uint16),
        [r[4] for r in rows],
        event_ids=np.array([r[3] for r in rows], dtype=np.int16),
        time_created=time_created,
    )
    return np.array([r[0] for r in rows if r[2] != 0], dtype=np.int64)


def _end_us(ephys: SyntheticEphys, start_us: int) -> int:
    return start_us + int(round(1e6 * (ephys.times(ephys.n_samples - 1)[0] + 1 / ephys.fs)))


def _scalar_truth(line: int, seed: int, full: bool, size: DemoSize) -> dict[str, np.ndarray]:
    return {
        "line": np.array(line),
        "demo_seed": np.array(seed),
        "demo_full": np.array(full),
        "demo_size": np.array(
            [size.height, size.width, size.frames_per_file, size.n_files, size.n_neurons]
        ),
    }


def _line_1(out: Path, size: DemoSize, seed: int) -> dict[str, Any]:
    ls = _line_seed(seed, 1)
    frame_t = TTL_OFFSET_S + _frame_times(size, ls)
    n = _ephys_samples(size)
    ephys = SyntheticEphys(
        EphysSynthConfig(fs=size.ephys_fs, duration_s=n / size.ephys_fs, seed=ls)
    )
    lock = ephys.phase_at(frame_t)
    movie = SyntheticMiniscope(
        _movie_config(
            size,
            ls,
            lock_phase=lock,
            locked_fraction=LOCKED_FRACTION,
            preferred_phase=PREFERRED_PHASE,
            lock_kappa=LOCK_KAPPA,
        )
    )
    info = write_v4_session(
        out / LINE_DIRS[1]["miniscope"],
        movie,
        frames_per_file=size.frames_per_file,
        frame_times_s=frame_t,
        recording_start=LINE_START[1],
        chunk=max(1, min(200, (1 << 24) // (size.height * size.width))),
    )
    edir = out / LINE_DIRS[1]["ephys"]
    nlx = write_ephys_session(edir, ephys, time_created=LINE_START[1])
    m = min(300, size.n_frames // 2)
    spurious_t = np.array([frame_t[0] - 1.0, frame_t[m] + 0.4 * (frame_t[m + 1] - frame_t[m])])
    rising_t = np.sort(np.r_[frame_t, spurious_t])
    spurious_idx = np.searchsorted(rising_t, spurious_t).astype(np.int64)
    rising_us = EPHYS_START_US + np.rint(rising_t * 1e6).astype(np.int64)
    end_us = _end_us(ephys, EPHYS_START_US)
    written = _write_events(
        edir / EVENTS_FILE,
        rising_us,
        [(EPHYS_START_US, "Starting Recording"), (end_us, "Stopping Recording")],
        LINE_START[1],
    )
    truth = dict(movie.truth)
    truth.update(ephys.truth())
    truth.update(_scalar_truth(1, seed, size == FULL_SIZE, size))
    truth.update(
        {
            "frame_times_ephys_s": frame_t,
            "frame_times_ephys_us": EPHYS_START_US + np.rint(frame_t * 1e6).astype(np.int64),
            "frame_phase": lock.astype(np.float32),
            "camera_timestamps_ms": info.timestamps_ms,
            "ttl_offset_s": np.array(TTL_OFFSET_S),
            "ephys_start_us": np.array(EPHYS_START_US),
            "ttl_rising_us": written,
            "spurious_ttl_indices": spurious_idx,
            "spurious_ttl_times_s": spurious_t,
            "ephys_clipped_samples": nlx["clipped_samples"],
        }
    )
    return {
        "truth": truth,
        "summary": {
            "miniscope_dir": str(info.session_dir),
            "ephys_dir": str(edir),
            "n_frames": info.n_written,
            "avi_files": len(info.video_files),
            "n_neurons": size.n_neurons,
            "n_locked": int(movie.locked.sum()),
            "ephys_channels": list(ephys.channel_names),
            "ephys_samples": ephys.n_samples,
            "ephys_fs": ephys.fs,
            "n_ttl_rising": int(written.size),
            "spurious_ttl_indices": spurious_idx.tolist(),
        },
    }


def _line_2(out: Path, size: DemoSize, seed: int) -> dict[str, Any]:
    """A second session of line 1's animal: the same tissue, moved and turned a little, with a
    known share of line 1's neurons seen again (truth ``same_neuron_as``)."""
    ls = _line_seed(seed, 2)
    frame_t = _frame_times(size, ls)
    # line 1's neurons: placement and shapes depend only on its seed and geometry
    day_1 = SyntheticMiniscope(_movie_config(size, _line_seed(seed, 1)))
    change = SessionChange(
        shift=(0.04 * size.height, -0.055 * size.width), rotation_deg=3.0, shared_fraction=0.8
    )
    session = related_session(day_1, change, seed=ls)
    movie = SyntheticMiniscope(session.config)
    info = write_v4_session(
        out / LINE_DIRS[2]["miniscope"],
        movie,
        frames_per_file=size.frames_per_file,
        frame_times_s=frame_t,
        recording_start=LINE_START[2],
        chunk=max(1, min(200, (1 << 24) // (size.height * size.width))),
    )
    truth = dict(movie.truth)
    truth.update(_scalar_truth(2, seed, size == FULL_SIZE, size))
    truth.update(session.truth(reference_line=1))
    truth["fov_shift"] = np.asarray(change.shift, dtype=np.float64)
    truth["fov_rotation_deg"] = np.array(change.rotation_deg)
    truth["camera_timestamps_ms"] = info.timestamps_ms
    return {
        "truth": truth,
        "summary": {
            "miniscope_dir": str(info.session_dir),
            "n_frames": info.n_written,
            "avi_files": len(info.video_files),
            "n_neurons": size.n_neurons,
            "n_shared_with_line_1": int((session.same_as >= 0).sum()),
        },
    }


def _line_3(out: Path, size: DemoSize, seed: int) -> dict[str, Any]:
    n = _ephys_samples(size)
    gap_index = max(512, int(round(0.4 * n / 512)) * 512)
    return _ephys_only_line(out, size, seed, 3, pause=(gap_index, 0.25))


def _ephys_only_line(
    out: Path, size: DemoSize, seed: int, line: int, pause: tuple[int, float] | None
) -> dict[str, Any]:
    """An ephys-only line; ``pause`` (sample index, seconds) stops and restarts recording.

    Its oscillation carries the power factor of the line's drug group (``group_lines``).
    """
    ls = _line_seed(seed, line)
    n = _ephys_samples(size)
    amplitude = EphysSynthConfig.osc_amplitude * math.sqrt(osc_power_factor(line))
    ephys = SyntheticEphys(
        EphysSynthConfig(
            fs=size.ephys_fs,
            duration_s=n / size.ephys_fs,
            seed=ls,
            gaps=(pause,) if pause else (),
            osc_amplitude=amplitude,
        )
    )
    edir = out / LINE_DIRS[line]["ephys"]
    nlx = write_ephys_session(edir, ephys, time_created=LINE_START[line])
    marks = [(EPHYS_START_US, "Starting Recording")]
    if pause:
        before = EPHYS_START_US + int(round(1e6 * ephys.times(pause[0] - 1)[0]))
        after = EPHYS_START_US + int(round(1e6 * ephys.times(pause[0])[0]))
        marks += [(before, "Stopping Recording"), (after, "Starting Recording")]
    marks.append((_end_us(ephys, EPHYS_START_US), "Stopping Recording"))
    _write_events(edir / EVENTS_FILE, np.zeros(0, dtype=np.int64), marks, LINE_START[line])
    truth = dict(ephys.truth())
    truth.update(_scalar_truth(line, seed, size == FULL_SIZE, size))
    truth["ephys_start_us"] = np.array(EPHYS_START_US)
    truth["ephys_clipped_samples"] = nlx["clipped_samples"]
    summary: dict[str, Any] = {
        "ephys_dir": str(edir),
        "ephys_channels": list(ephys.channel_names),
        "ephys_samples": ephys.n_samples,
        "ephys_fs": ephys.fs,
        "osc_power_factor": osc_power_factor(line),
    }
    if pause:
        summary["gap"] = list(pause)
    return {"truth": truth, "summary": summary}


def _line_4(out: Path, size: DemoSize, seed: int) -> dict[str, Any]:
    from ace_assets.demo.ephys_lines import digital_lynx_line

    return digital_lynx_line(out, size, seed)


def _line_5(out: Path, size: DemoSize, seed: int) -> dict[str, Any]:
    from ace_assets.demo.ephys_lines import mixed_rate_line

    return mixed_rate_line(out, size, seed)


def _line_6(out: Path, size: DemoSize, seed: int) -> dict[str, Any]:
    """Line 3's channels and length in the same drug group, without the pause."""
    return _ephys_only_line(out, size, seed, 6, pause=None)


_LINES = {1: _line_1, 2: _line_2, 3: _line_3, 4: _line_4, 5: _line_5, 6: _line_6}
#: every demo line, the default of :func:`generate_demo`
DEMO_LINES: tuple[int, ...] = tuple(sorted(_LINES))


def truth_path(out_dir: str | Path, line: int) -> Path:
    return Path(out_dir) / "truth" / f"line_{line}.npz"


def _existing(out: Path, line: int, seed: int, size: DemoSize, overwrite: bool) -> bool:
    """True if the line is already complete with the same settings; clears it if overwriting."""
    raw = [out / d for d in LINE_DIRS[line].values()]
    tp = truth_path(out, line)
    if overwrite:
        for d in raw:
            if d.exists():
                shutil.rmtree(d)
        tp.unlink(missing_ok=True)
        return False
    if tp.exists():
        t = load_npz(tp)
        if "osc_power_factor" not in t:
            raise FileExistsError(
                f"{tp}: line {line} was generated before the demo had groups (no "
                "osc_power_factor); regenerate it with --overwrite or use a new --out"
            )
        same = int(t["demo_seed"]) == seed and list(t["demo_size"]) == [
            size.height,
            size.width,
            size.frames_per_file,
            size.n_files,
            size.n_neurons,
        ]
        if same and all(d.exists() for d in raw):
            return True
        raise FileExistsError(
            f"{tp}: line {line} was generated with other settings; use a new --out or --overwrite"
        )
    busy = [str(d) for d in raw if d.exists() and any(d.iterdir())]
    if busy:
        raise FileExistsError(
            f"incomplete earlier run left {', '.join(busy)}; rerun with --overwrite"
        )
    return False


def generate_demo(
    out_dir: str | Path,
    full: bool = False,
    seed: int = 0,
    *,
    size: DemoSize | None = None,
    lines: tuple[int, ...] = DEMO_LINES,
    overwrite: bool = False,
    verbose: bool = False,
) -> dict[str, Any]:
    """Write the demo's raw data and truth; returns a summary per line (see module doc)."""
    out = Path(out_dir)
    chosen = size or (FULL_SIZE if full else CI_SIZE)
    if chosen.n_frames < 4:
        raise ValueError("the demo needs at least 4 frames")
    t0 = time.perf_counter()
    result: dict[str, Any] = {"out_dir": str(out), "seed": seed, "size": chosen, "lines": {}}
    for line in lines:
        if line not in _LINES:
            raise ValueError(f"unknown demo line {line}; choose from {sorted(_LINES)}")
        t1 = time.perf_counter()
        if _existing(out, line, seed, chosen, overwrite):
            summary: dict[str, Any] = {"status": "exists"}
        else:
            made = _LINES[line](out, chosen, seed)
            made["truth"].update(group_truth(line, made["truth"]))
            atomic_save_npz(truth_path(out, line), **made["truth"])
            summary = {"status": "written", **made["summary"]}
        summary["truth"] = str(truth_path(out, line))
        summary["seconds"] = round(time.perf_counter() - t1, 2)
        result["lines"][line] = summary
        if verbose:
            print(f"line {line}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    result["elapsed_s"] = round(time.perf_counter() - t0, 2)
    return result


def small_size(**overrides: Any) -> DemoSize:
    """A tiny DemoSize for tests (64x64, 2 x 60 frames, 8 neurons, 1 kHz ephys)."""
    base = DemoSize(64, 64, 60, 2, 8, 2.5, 1.0, 1000.0)
    return replace(base, **overrides)
