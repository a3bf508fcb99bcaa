"""Demo lines 4 and 5: the Neuralynx sessions real rigs produce, with known answers.

- Line 4 (Miniscope + ephys): events as a Cheetah 5.6 Digital Lynx writes them. Every
  event has event_id 0 and the whole parallel-port word in ``ttl``; the idle word is 0x3000
  (bits 12 and 13 held high). The Miniscope frame pulse is bit ``SYNC_BIT`` (0x3008 while
  high, 1 ms per frame) while behaviour lines toggle on their own: a 15 Hz behaviour camera
  on bits 0-1 (0x3003), a door sensor on bits 6-7 (0x30C0) and two levers on bits 14 and 15
  (0x7000, and 0xB000, which an int16 export shows as -20480). Nothing needs setting: the
  sync bit is the one that pulses once per frame.
- Line 5 (ephys only): two 2 kHz channels and a 32 kHz channel. The first 2 kHz channel has
  partial records at unchanged timestamps (holes of 50, 3.5 and 11.5 ms, as in real Pegasus
  files); both 2 kHz channels pause for ``PAUSE_S`` while the 32 kHz channel records on.

Truth (``truth/line_<n>.npz``) holds what a correct pipeline must recover: frame times on
the ephys clock (line 4), the holes, the pause, the oscillation phase (both lines).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ace_assets.demo.ephys_synth import EphysChannel, EphysSynthConfig, SyntheticEphys
from ace_assets.demo.neuralynx_writer import NcsWriter, write_digital_lynx_nev, write_nev

IDLE_WORD = 0x3000
SYNC_BIT = 3
PULSE_US = 1000
BEHAVIOUR_CAMERA_BITS = 0x0003
DOOR_BITS = 0x00C0
LEVER_BITS = (0x4000, 0x8000)
HOLES = ((9, 412), (15, 505), (20, 489))  # (record, valid samples) of the first channel
PAUSE_S = 0.4
WIDE_RATE = 32000.0
WIDE_CHANNEL = "HPCwide"


def _edges(times_us: np.ndarray, width_us: int, mask: int) -> list[tuple[int, int, int]]:
    """(time, mask, level) transitions of pulses starting at ``times_us``."""
    out = []
    for t in np.asarray(times_us, dtype=np.int64).tolist():
        out += [(t, mask, 1), (t + width_us, mask, 0)]
    return out


def _random_pulses(
    rng: np.random.Generator, t0: int, t1: int, rate_hz: float, width_s: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    n = rng.poisson(rate_hz * (t1 - t0) / 1e6)
    starts = np.sort(rng.integers(t0, t1, size=n))
    widths = (rng.uniform(*width_s, size=n) * 1e6).astype(np.int64)
    keep = np.concatenate([[True], starts[1:] > starts[:-1] + widths[:-1]])[:n]  # no overlaps
    return starts[keep], widths[keep]


def port_words(
    frame_us: np.ndarray, t0_us: int, t1_us: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Times and port words of every port change: sync pulses plus toggling behaviour bits."""
    changes = _edges(frame_us, PULSE_US, 1 << SYNC_BIT)
    camera = np.arange(t0_us + 7_000, t1_us, 66_667)  # 15 Hz, its own phase
    changes += _edges(camera, 2_000, BEHAVIOUR_CAMERA_BITS)
    starts, widths = _random_pulses(rng, t0_us, t1_us, 0.5, (0.2, 1.0))
    for t, w in zip(starts.tolist(), widths.tolist(), strict=True):
        changes += [(t, DOOR_BITS, 1), (t + w, DOOR_BITS, 0)]
    for bit in LEVER_BITS:
        starts, widths = _random_pulses(rng, t0_us, t1_us, 0.3, (0.05, 0.2))
        for t, w in zip(starts.tolist(), widths.tolist(), strict=True):
            changes += [(t, bit, 1), (t + w, bit, 0)]
    changes.sort(key=lambda c: c[0])
    times, words = [], []
    word = IDLE_WORD
    for i, (t, mask, level) in enumerate(changes):
        word = word | mask if level else word & ~mask
        if i + 1 < len(changes) and changes[i + 1][0] == t:
            continue  # simultaneous changes: one event with the final word
        times.append(t)
        words.append(word)
    return np.array(times, dtype=np.int64), np.array(words, dtype=np.int64)


def digital_lynx_line(out: Path, size: Any, seed: int) -> dict[str, Any]:
    """Line 4: line 1's recording design with Digital Lynx events (see module doc)."""
    from ace_assets.demo import generate as g

    ls = g._line_seed(seed, 4)
    movie_size = replace(size, n_files=min(size.n_files, 2))
    frame_t = g.TTL_OFFSET_S + g._frame_times(movie_size, ls)
    n = g._ephys_samples(movie_size)
    ephys = SyntheticEphys(
        EphysSynthConfig(fs=size.ephys_fs, duration_s=n / size.ephys_fs, seed=ls)
    )
    lock = ephys.phase_at(frame_t)
    movie = g.SyntheticMiniscope(
        g._movie_config(
            movie_size,
            ls,
            lock_phase=lock,
            locked_fraction=g.LOCKED_FRACTION,
            preferred_phase=g.PREFERRED_PHASE,
            lock_kappa=g.LOCK_KAPPA,
        )
    )
    info = g.write_v4_session(
        out / g.LINE_DIRS[4]["miniscope"],
        movie,
        frames_per_file=movie_size.frames_per_file,
        frame_times_s=frame_t,
        recording_start=g.LINE_START[4],
        chunk=max(1, min(200, (1 << 24) // (size.height * size.width))),
    )
    edir = out / g.LINE_DIRS[4]["ephys"]
    nlx = g.write_ephys_session(edir, ephys, time_created=g.LINE_START[4])
    frame_us = g.EPHYS_START_US + np.rint(frame_t * 1e6).astype(np.int64)
    end_us = g._end_us(ephys, g.EPHYS_START_US)
    times, words = port_words(
        frame_us, g.EPHYS_START_US + 1000, end_us - 1000, np.random.default_rng([ls, 77])
    )
    write_digital_lynx_nev(
        edir / g.EVENTS_FILE,
        times,
        words,
        [(g.EPHYS_START_US, "Starting Recording"), (end_us, "Stopping Recording")],
        time_created=g.LINE_START[4],
    )
    truth = dict(movie.truth)
    truth.update(ephys.truth())
    truth.update(g._scalar_truth(4, seed, size == g.FULL_SIZE, size))
    truth.update(
        {
            "frame_times_ephys_s": frame_t,
            "frame_times_ephys_us": frame_us,
            "frame_phase": lock.astype(np.float32),
            "camera_timestamps_ms": info.timestamps_ms,
            "ephys_start_us": np.array(g.EPHYS_START_US),
            "sync_bit": np.array(SYNC_BIT),
            "port_event_times_us": times,
            "port_words": words,
            "ephys_clipped_samples": nlx["clipped_samples"],
        }
    )
    return {
        "truth": truth,
        "summary": {
            "miniscope_dir": str(info.session_dir),
            "ephys_dir": str(edir),
            "n_frames": info.n_written,
            "sync_bit": SYNC_BIT,
            "port_events": int(times.size),
            "distinct_words": sorted({f"0x{w:04X}" for w in words.tolist()}),
        },
    }


def _write_channel(
    path: Path,
    ephys: SyntheticEphys,
    fs: float,
    channel_id: int,
    *,
    holes: tuple[tuple[int, int], ...] = (),
    pause_at_record: int | None = None,
    time_created: Any = None,
) -> int:
    """Write one channel's samples record by record: ``holes`` make record r hold only ``nv``
    samples (the next record keeps its timestamp), a pause starts after ``pause_at_record``."""
    from ace_assets.demo import generate as g

    x = ephys.chunk(0, ephys.n_samples)[0]
    hole_at = dict(holes)
    pos = 0
    with NcsWriter(
        path,
        fs,
        start_us=g.EPHYS_START_US,
        ad_bit_volts=g.AD_BIT_VOLTS,
        channel_name=ephys.channel_names[0],
        channel_id=channel_id,
        time_created=time_created,
    ) as w:
        record = 0
        while pos < x.size:
            nv = hole_at.get(record, 512)
            w.append(x[pos : pos + nv])
            pos += nv
            if nv < 512:
                w.add_gap((512 - nv) / fs)
            if record == pause_at_record:
                w.add_gap(PAUSE_S)
            record += 1
    return pos


def mixed_rate_line(out: Path, size: Any, seed: int) -> dict[str, Any]:
    """Line 5: partial records and a pause at 2 kHz beside a 32 kHz channel (module doc)."""
    from ace_assets.demo import generate as g

    ls = g._line_seed(seed, 5)
    fs = float(size.ephys_fs)
    total_s = 20.0
    pause_record = max(int(0.5 * total_s * fs / 512), HOLES[-1][0] + 4)
    pause_index = (pause_record + 1) * 512  # grid index of the first sample after the pause
    missing = [512 - nv for _, nv in HOLES]
    # the first channel's own sample index before which its time skips, and by how much
    cum = np.cumsum(missing)
    gaps_a = [
        ((r + 1) * 512 - int(c), m / fs) for (r, _), m, c in zip(HOLES, missing, cum, strict=True)
    ]
    gaps_a.append((pause_index - int(cum[-1]), PAUSE_S))
    n = int(total_s * fs)
    channels = (
        EphysChannel("PFCLFPvsCBEEG", osc_gain=1.0, slow_gain=0.6, noise_gain=1.0),
        EphysChannel("PFCEEGvsCBEEG", osc_gain=0.5, slow_gain=1.0, noise_gain=1.2),
        EphysChannel(WIDE_CHANNEL, osc_gain=0.8, slow_gain=0.5, noise_gain=1.0),
    )
    base = EphysSynthConfig(fs=fs, duration_s=n / fs, seed=ls)
    lfp = SyntheticEphys(
        replace(base, channels=channels[:1], duration_s=(n - sum(missing)) / fs, gaps=tuple(gaps_a))
    )
    eeg = SyntheticEphys(replace(base, channels=channels[1:2], gaps=((pause_index, PAUSE_S),)))
    wide_n = int(round((total_s + PAUSE_S) * WIDE_RATE))
    wide = SyntheticEphys(
        replace(base, fs=WIDE_RATE, channels=channels[2:], duration_s=wide_n / WIDE_RATE)
    )
    edir = out / g.LINE_DIRS[5]["ephys"]
    edir.mkdir(parents=True, exist_ok=True)
    start = g.LINE_START[5]
    _write_channel(edir / "PFCLFPvsCBEEG.ncs", lfp, fs, 0, holes=HOLES,
                   pause_at_record=pause_record, time_created=start)  # fmt: skip
    _write_channel(edir / "PFCEEGvsCBEEG.ncs", eeg, fs, 1, pause_at_record=pause_record,
                   time_created=start)  # fmt: skip
    _write_channel(edir / f"{WIDE_CHANNEL}.ncs", wide, WIDE_RATE, 2, time_created=start)
    end_us = g._end_us(eeg, g.EPHYS_START_US)
    pause_start_us = g.EPHYS_START_US + int(round(pause_index * 1e6 / fs))
    write_nev(
        edir / g.EVENTS_FILE,
        np.array([g.EPHYS_START_US, pause_start_us, pause_start_us + int(PAUSE_S * 1e6), end_us]),
        np.zeros(4, dtype=np.int64),
        ["Starting Recording", "Stopping Recording", "Starting Recording", "Stopping Recording"],
        time_created=start,
    )
    hole_start_s = np.array([(r * 512 + nv) / fs for r, nv in HOLES])
    truth = dict(eeg.truth())
    truth.update(g._scalar_truth(5, seed, size == g.FULL_SIZE, size))
    truth.update(
        {
            "ephys_start_us": np.array(g.EPHYS_START_US),
            "hole_start_s": hole_start_s,
            "hole_duration_s": np.array(missing) / fs,
            "hole_grid_index": np.array([r * 512 + nv for r, nv in HOLES]),
            "pause_start_s": np.array(pause_index / fs),
            "pause_s": np.array(PAUSE_S),
            "pause_grid_index": np.array(pause_index),
            "wide_rate_hz": np.array(WIDE_RATE),
            "grid_samples": np.array(n),
        }
    )
    return {
        "truth": truth,
        "summary": {
            "ephys_dir": str(edir),
            "channels": [c.name for c in channels],
            "rates_hz": [fs, fs, WIDE_RATE],
            "holes_ms": [round(1e3 * m / fs, 2) for m in missing],
            "pause_s": PAUSE_S,
        },
    }
