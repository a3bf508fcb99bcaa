"""Synthetic NWB export inputs of any size, written straight to stores (no pipeline run).

Shared by the export tests and ``bench/bench_export.py``: ephys samples are generated and
written a block at a time, so an hour at 32 kHz never sits in memory here either.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ace_assets.export.nwb import SessionMeta
from ace_assets.export.nwb_ephys import EphysData
from ace_assets.export.nwb_imaging import ImagingData
from ace_assets.io.neuralynx_grid import SampleClock
from ace_assets.io.store import ArrayStore, ArrayStoreWriter
from ace_assets.miniscope.extraction.result import ExtractionResult

RECORD = 512  #: samples per Neuralynx record


def ephys_inputs(
    folder: Path,
    *,
    seconds: float,
    fs: float = 32000.0,
    n_channels: int = 8,
    gap_after_s: float | None = None,
    frame_times: np.ndarray | None = None,
    block: int = 1 << 18,
    seed: int = 0,
) -> EphysData:
    """A filtered-ephys store with its record clock; a pause after ``gap_after_s`` if given."""
    n = int(seconds * fs)
    origin = 1_000_000_000
    first = np.arange(0, n, RECORD, dtype=np.int64)
    stamps = origin + np.round(first * 1e6 / fs).astype(np.int64)
    if gap_after_s is not None:
        stamps[first >= gap_after_s * fs] += 250_000  # a quarter-second pause
    clock = SampleClock(fs, origin, first, stamps, n)
    names = [f"CSC{c + 1}" for c in range(n_channels - 1)] + ["EMG"]
    rng = np.random.default_rng(seed)
    path = folder / "filtered.npyd"
    with ArrayStoreWriter(
        path, (n, n_channels), np.float32, {"channel_names": names, "sampling_rate_hz": fs}
    ) as writer:
        for a in range(0, n, block):
            k = min(block, n - a)
            t = (a + np.arange(k)) / fs
            wave = 1e-4 * np.sin(2 * np.pi * 2.0 * t)[:, None]
            noise = rng.standard_normal((k, n_channels), dtype=np.float32) * 2e-5
            writer.write(a, (wave + noise).astype(np.float32))
        clock.save(writer.tmp / "clock.npz")
        store = writer.commit()
    events = None
    if frame_times is not None:
        events = pd.DataFrame(
            {
                "timestamp_s": np.asarray(frame_times, np.float64),
                "ttl": np.full(len(frame_times), 1, np.int64),
                "string": ["TTL Input on AcqSystem1_0 board 0 port 0"] * len(frame_times),
            }
        )
    return EphysData(
        store=ArrayStore(store.path),
        clock=clock,
        channel_names=names,
        emg_channel="EMG",
        filter_description="butter 0.5-30 Hz, order 4, zero-phase",
        events=events,
        files=[f"{n}.ncs" for n in names],
    )


def extraction(
    *, n_components: int, n_frames: int, dims: tuple[int, int] = (120, 120), seed: int = 1
) -> ExtractionResult:
    """Sparse footprints (a disc each) and random float32 traces."""
    rng = np.random.default_rng(seed)
    h, w = dims
    yy, xx = np.mgrid[:h, :w]
    cols = []
    for _ in range(n_components):
        cy, cx = rng.uniform(6, h - 6), rng.uniform(6, w - 6)
        disc = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0).ravel()
        disc[disc < 0.05] = 0
        disc /= np.linalg.norm(disc)
        cols.append(sp.csc_matrix(disc.astype(np.float32)[:, None]))
    a = sp.hstack(cols, format="csc") if cols else sp.csc_matrix((h * w, 0), dtype=np.float32)
    c = rng.gamma(1.0, 1.0, (n_components, n_frames)).astype(np.float32)
    return ExtractionResult(
        A=a.astype(np.float32),
        C=c,
        S=np.maximum(c - 1.5, 0).astype(np.float32),
        C_raw=(c + rng.normal(0, 0.1, c.shape)).astype(np.float32),
        sn=np.full(n_components, 0.1),
        g=np.full((n_components, 1), 0.9),
        baseline=np.zeros(n_components),
        centers=rng.uniform(0, h, (n_components, 2)),
        snr=rng.uniform(3, 10, n_components),
        r_values=rng.uniform(0.5, 1, n_components),
        ids=np.arange(n_components, dtype=np.int64) * 2 + 1,
        dims=dims,
        fps=30.0,
        b0=np.zeros(dims, np.float32),
        background_mean=np.zeros(n_frames, np.float32),
        ring_weights=np.zeros((0, 0, 0), np.float32),
        correlation_image=rng.uniform(0, 1, dims).astype(np.float32),
        pnr_image=rng.uniform(0, 20, dims).astype(np.float32),
    )


def frame_times(n_frames: int, *, start_s: float = 0.5, fps: float = 30.0, seed: int = 2):
    """Frame times with the jitter of a real camera (irregular, increasing)."""
    rng = np.random.default_rng(seed)
    return start_s + np.arange(n_frames) / fps + rng.uniform(0, 2e-4, n_frames)


def imaging_inputs(
    folder: Path, *, n_frames: int, n_components: int, times: np.ndarray, per_file: int = 1000
) -> ImagingData:
    """AVI placeholders (the NWB file only names them) and a curated extraction."""
    movie = folder / "miniscope"
    movie.mkdir(parents=True, exist_ok=True)
    counts = [min(per_file, n_frames - a) for a in range(0, n_frames, per_file)]
    files = []
    for i, _ in enumerate(counts):
        (movie / f"{i}.avi").write_bytes(b"RIFF")
        files.append(str(movie / f"{i}.avi"))
    result = extraction(n_components=n_components, n_frames=n_frames)
    rng = np.random.default_rng(3)
    k = 4 * n_components
    events = pd.DataFrame(
        {
            "component": rng.choice(result.ids, k) if n_components else [],
            "frame": rng.integers(0, n_frames, k),
            "amplitude": rng.uniform(1, 3, k),
            "height_sd": rng.uniform(3, 6, k),
        }
    )
    events["time_s"] = events["frame"] / 30.0
    return ImagingData(
        avi_files=files,
        frames_per_file=counts,
        frame_rate=30.0,
        frame_shape=(120, 120),
        frame_times=np.asarray(times, np.float64),
        result=result,
        events=events,
        device={
            "deviceType": "Miniscope_V4_BNO",
            "frameRate": "30FPS",
            "framesPerFile": per_file,
            "gain": "High",
            "led0": 47,
            "ROI": {"height": 120, "width": 120},
        },
        rejected_ids=[4],
    )


def session_meta(line: int = 7) -> SessionMeta:
    return SessionMeta(
        line=line,
        start_time=dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.timezone.utc),
        start_source="the .ncs header's TimeCreated",
        animal_id="SynthRat",
        date="2024-01-01",
        weight_kg=0.512,
        drug="dexmedetomidine",
        dose="0.5",
        extra={"experimenter": "Doe, Jane", "institution": "Synth University", "surgeon": "AB"},
        parameters={"filter_range": [0.5, 30.0], "event_height": 3.0, "crop_coords": None},
        time_reference="the first ephys sample",
    )
