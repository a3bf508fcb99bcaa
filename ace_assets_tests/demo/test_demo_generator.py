"""The synthetic demo data: ground truth consistent with what is written to disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import shift as nd_shift
from scipy.signal import butter, hilbert, sosfiltfilt

from ace_assets.demo.ephys_synth import EphysSynthConfig, SyntheticEphys
from ace_assets.demo.generate import (
    EPHYS_CHANNELS,
    EVENTS_FILE,
    LINE_DIRS,
    generate_demo,
    small_size,
    truth_path,
)
from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope
from ace_assets.demo.miniscope_writer import read_avi, write_v3_session, write_v4_session
from ace_assets.io.store import load_npz


def _movie(**kw: object) -> SyntheticMiniscope:
    base: dict[str, object] = dict(height=48, width=64, n_frames=100, n_neurons=6, seed=3)
    base.update(kw)
    return SyntheticMiniscope(MiniscopeSynthConfig(**base))  # type: ignore[arg-type]


def _circ_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (a - b))))


# --- miniscope synthesis -----------------------------------------------------------


def test_footprints_match_centres_and_spacing() -> None:
    m = _movie(height=96, width=96, n_neurons=15, neuron_radius=3.0)
    t = m.truth
    a, c = t["footprints"], t["centers"]
    assert a.shape == (15, 96, 96) and a.dtype == np.float32
    assert np.allclose(a.reshape(15, -1).max(1), 1.0)
    yy, xx = np.mgrid[0:96, 0:96]
    com = np.stack([(a * yy).sum((1, 2)), (a * xx).sum((1, 2))], 1) / a.sum((1, 2))[:, None]
    assert np.abs(com - c).max() < 0.25
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1)) + np.eye(15) * 1e9
    assert d.min() >= 3.0 * 3.0 - 1e-6
    # every neuron fires, and C is the AR(1) filter of S
    assert (t["S"] > 0).sum(1).min() >= 3
    g = float(t["g"][0])
    assert np.allclose(t["C"][:, 1:], g * t["C"][:, :-1] + t["S"][:, 1:], atol=1e-3)


def test_frames_reproducible_by_range_and_seed() -> None:
    m = _movie(nonrigid_amplitude=0.8)
    whole = m.frames(0, 100)
    assert whole.dtype == np.uint8 and whole.shape == (100, 48, 64)
    assert np.array_equal(m.frames(37, 52), whole[37:52])
    assert np.array_equal(_movie(nonrigid_amplitude=0.8).frames(90, 100), whole[90:])
    assert not np.array_equal(_movie(seed=4).frames(0, 5), whole[:5])
    with pytest.raises(ValueError):
        m.frames(90, 101)


def test_movie_is_background_plus_footprints_times_traces() -> None:
    m = _movie(motion_amplitude=0.0)
    t = m.truth
    got = m.render(10, 30, bleach=False, flicker=False, bands=False, noise=False, quantize=False)
    bg = t["background_static"] + np.einsum(
        "jt,jhw->thw", t["background_temporal"][:, 10:30], t["background_spatial"]
    )
    want = bg + np.einsum("nt,nhw->thw", t["C"][:, 10:30], t["footprints"])
    assert np.allclose(got, want, atol=1e-3)
    # the background dominates, as in 1-photon data
    assert bg.mean() > 2.5 * t["amplitudes"].mean()


def test_rigid_shift_convention() -> None:
    m = _movie(motion_amplitude=2.5, nonrigid_amplitude=0.0)
    shifts = m.truth["shifts"]
    k = int(np.argmax(np.abs(shifts).sum(1)))
    moved = m.render(
        k, k + 1, bleach=False, flicker=False, bands=False, noise=False, quantize=False
    )[0]
    still = m.render(
        k,
        k + 1,
        motion=False,
        bleach=False,
        flicker=False,
        bands=False,
        noise=False,
        quantize=False,
    )[0]
    # frame[y, x] = scene[y - dy, x - dx]  <=>  frame = ndimage.shift(scene, (dy, dx))
    ref = nd_shift(still, shifts[k], order=1, mode="reflect")
    wrong = nd_shift(still, -shifts[k], order=1, mode="reflect")
    inner = (slice(6, -6), slice(6, -6))
    assert np.abs(moved - ref)[inner].max() < 0.5
    assert np.abs(moved - wrong)[inner].max() > 2.0
    assert np.abs(shifts).max() == pytest.approx(2.5, rel=1e-4)


def test_bands_sit_in_the_denoiser_notch() -> None:
    m = _movie(flicker_sd=0.0, noise_sd=0.0, band_cycles=12, band_amplitude=5.0)
    noisy = m.render(0, 4, quantize=False)
    clean = m.clean_frames(0, 4)
    spec = np.abs(np.fft.fftshift(np.fft.fft2(noisy - clean), axes=(1, 2)))
    cy, cx = 48 // 2, 64 // 2
    strip = spec[:, :, cx - 3 : cx + 4]
    rows = np.abs(np.arange(48) - cy) > 10
    assert strip[:, rows].sum() > 0.99 * spec.sum()
    # bands travel: phase at row 0 changes frame to frame
    b = m.bands(0, 3)[:, :, 0]
    assert not np.allclose(b[0], b[1])
    # at full size the default band frequency lies beyond centerHalfHeightToLeave = 90
    full = SyntheticMiniscope(
        MiniscopeSynthConfig(height=608, width=608, n_frames=2, n_neurons=1, neuron_radius=7.0)
    )
    prof = np.abs(np.fft.fftshift(np.fft.fft(full.bands(0, 1)[0, :, 0])))
    assert abs(int(np.argmax(prof)) - 304) > 90


def test_phase_locked_neurons_fire_at_preferred_phase() -> None:
    rng = np.random.default_rng(0)
    n_frames = 3000
    phase = np.angle(
        np.exp(1j * (2 * np.pi * 7.0 / 30.0 * np.arange(n_frames) + rng.normal(0, 0.3, n_frames)))
    )
    m = _movie(
        n_frames=n_frames,
        n_neurons=8,
        firing_rate=1.0,
        lock_phase=phase,
        locked_fraction=0.5,
        preferred_phase=1.0,
        lock_kappa=3.0,
    )
    t = m.truth
    assert t["locked"].sum() == 4
    for n in range(8):
        ph = phase[t["S"][n] > 0]
        vec = np.exp(1j * ph).mean()
        if t["locked"][n]:
            assert abs(vec) > 0.5 and _circ_err(np.angle(vec), 1.0) < 0.3
            assert t["preferred_phase"][n] == pytest.approx(1.0)
        else:
            assert abs(vec) < 0.25 and np.isnan(t["preferred_phase"][n])


# --- Miniscope writers -------------------------------------------------------------


def test_v4_session_round_trips_losslessly(tmp_path: Path) -> None:
    m = _movie()
    info = write_v4_session(tmp_path / "s", m, frames_per_file=40, verify=True)
    vdir = tmp_path / "s" / "Miniscope"
    assert [p.name for p in info.video_files] == ["0.avi", "1.avi", "2.avi"]
    decoded = np.stack([f for p in info.video_files for f in read_avi(p)])
    assert np.array_equal(decoded, m.frames(0, 100))
    meta = json.loads((vdir / "metaData.json").read_text())
    assert meta["ROI"]["height"] == 48 and meta["ROI"]["width"] == 64
    assert meta["frameRate"] == "30FPS" and meta["framesPerFile"] == 40
    assert meta["compression"] == "FFV1" and meta["deviceName"] == "Miniscope"
    assert json.loads((tmp_path / "s" / "metaData.json").read_text())["miniscopes"] == ["Miniscope"]
    lines = (vdir / "timeStamps.csv").read_text().splitlines()
    assert lines[0] == "Frame Number,Time Stamp (ms),Buffer Index"
    rows = np.array([[int(v) for v in ln.split(",")] for ln in lines[1:]])
    assert len(rows) == 100 and np.array_equal(rows[:, 0], np.arange(100))
    assert np.abs(rows[:, 1] - np.arange(100) * 1000 / 30).max() <= 0.5
    with pytest.raises(FileExistsError):
        write_v4_session(tmp_path / "s", m)


def test_v4_dropped_frames_show_as_gaps(tmp_path: Path) -> None:
    m = _movie(n_frames=60)
    info = write_v4_session(tmp_path / "a", m, frames_per_file=25, dropped_frames=[10, 11, 40])
    decoded = np.stack([f for p in info.video_files for f in read_avi(p)])
    assert decoded.shape[0] == 57
    assert np.array_equal(decoded[10], m.frames(12, 13)[0])
    lines = (tmp_path / "a" / "Miniscope" / "timeStamps.csv").read_text().splitlines()[1:]
    stamps = np.array([int(ln.split(",")[1]) for ln in lines])
    assert np.array_equal(np.array([int(ln.split(",")[0]) for ln in lines]), np.arange(57))
    gaps = np.flatnonzero(np.diff(stamps) > 50)
    assert gaps.tolist() == [9, 37]
    write_v4_session(tmp_path / "b", m, dropped_frames=[10, 11, 40], number_dropped_frames=True)
    lines = (tmp_path / "b" / "Miniscope" / "timeStamps.csv").read_text().splitlines()[1:]
    numbers = np.array([int(ln.split(",")[0]) for ln in lines])
    assert 10 not in numbers and 40 not in numbers and numbers[-1] == 59


def test_v3_session_layout(tmp_path: Path) -> None:
    m = _movie(n_frames=50)
    info = write_v3_session(tmp_path / "v3", m, frames_per_file=20, verify=True)
    assert [p.name for p in info.video_files] == ["msCam1.avi", "msCam2.avi", "msCam3.avi"]
    lines = (tmp_path / "v3" / "timestamp.dat").read_text().splitlines()
    assert lines[0] == "camNum\tframeNum\tsysClock\tbuffer"
    rows = np.array([[int(v) for v in ln.split("\t")] for ln in lines[1:]])
    scope = rows[rows[:, 0] == 1]
    assert np.array_equal(scope[:, 1], np.arange(1, 51))
    assert set(rows[:, 0].tolist()) == {0, 1} and np.all(np.diff(rows[:, 2]) >= 0)
    cams = rows[:, 0]
    assert np.count_nonzero(np.diff(cams)) > 50  # interleaved, not one block per camera


# --- ephys synthesis ---------------------------------------------------------------


def test_ephys_truth_phase_matches_signal() -> None:
    e = SyntheticEphys(EphysSynthConfig(fs=1000.0, duration_s=40.0, seed=5, emg_burst_rate=0.3))
    x = e.chunk(0, e.n_samples)
    assert np.array_equal(np.concatenate([c for _, c in e.iter_chunks(7001)], axis=1), x)
    t = e.times()
    truth = e.phase_at(t)
    inner = slice(2000, -2000)
    clean = np.angle(hilbert(e.oscillation_at(t)))
    assert _circ_err(clean, truth)[inner].max() < 0.05
    sos = butter(3, [5.0, 9.0], "bandpass", fs=1000.0, output="sos")
    est = np.angle(hilbert(sosfiltfilt(sos, x[0])))
    assert np.median(_circ_err(est, truth)[inner]) < 0.2
    # the EMG channel is bursty broadband noise
    env = e.emg_envelope_at(t)
    emg = x[2] - sosfiltfilt(butter(4, 20.0, "lowpass", fs=1000.0, output="sos"), x[2])
    busy, quiet = env > 0.5 * e.config.emg_burst_sd, env < 2 * e.config.emg_baseline_sd
    assert busy.any() and emg[busy].std() > 5 * emg[quiet].std()


def test_ephys_gap_shifts_time_not_phase_continuity() -> None:
    e = SyntheticEphys(EphysSynthConfig(fs=1000.0, duration_s=10.0, gaps=((4096, 0.5),)))
    t = e.times()
    assert t[4096] - t[4095] == pytest.approx(0.5 + 1e-3)
    assert e.total_time_s == pytest.approx(10.5)
    # the oscillation kept running during the pause
    expected = e.phase_at(t[4095:4096], wrap=False) + 2 * np.pi * 7.0 * 0.501
    assert _circ_err(e.phase_at(t[4096:4097]), expected)[0] < 2 * np.pi * 0.3 * 0.501 + 1e-6


# --- the demo project --------------------------------------------------------------


def test_generate_demo_writes_expected_files(tmp_path: Path) -> None:
    import neo.rawio as neo_rawio

    size = small_size()
    out = tmp_path / "data"
    res = generate_demo(out, seed=1, size=size)
    assert set(res["lines"]) == {1, 2, 3, 4, 5, 6}
    for line, dirs in LINE_DIRS.items():
        assert truth_path(out, line).exists()
        if "miniscope" in dirs:
            vdir = out / dirs["miniscope"] / "Miniscope"
            assert sorted(p.name for p in vdir.glob("*.avi")) == ["0.avi", "1.avi"]
            assert (vdir / "metaData.json").exists() and (vdir / "timeStamps.csv").exists()
        if "ephys" in dirs:
            names = {p.name for p in (out / dirs["ephys"]).iterdir()}
            channels = (
                ("PFCLFPvsCBEEG", "PFCEEGvsCBEEG", "HPCwide") if line == 5 else EPHYS_CHANNELS
            )
            assert names == {f"{c}.ncs" for c in channels} | {EVENTS_FILE}

    t1 = load_npz(truth_path(out, 1))
    n_frames = size.n_frames
    assert t1["footprints"].shape == (size.n_neurons, size.height, size.width)
    assert t1["C"].shape == (size.n_neurons, n_frames) and t1["locked"].any()
    assert t1["frame_times_ephys_s"].shape == (n_frames,)
    assert np.allclose(t1["frame_phase"], t1["lock_phase"])

    reader = neo_rawio.NeuralynxRawIO(dirname=str(out / LINE_DIRS[1]["ephys"]))
    reader.parse_header()
    assert sorted(reader.header["signal_channels"]["name"]) == sorted(EPHYS_CHANNELS)
    assert reader.get_signal_size(0, 0, 0) == int(t1["ephys_n_samples"])
    rising = None
    for c in range(reader.event_channels_count()):
        ts, _, labels = reader.get_event_timestamps(0, 0, c)
        if reader.header["event_channels"]["name"][c].endswith("ttl=1"):
            rising = reader.rescale_event_timestamp(ts)
    assert rising is not None
    spurious = t1["spurious_ttl_indices"]
    assert rising.size == n_frames + spurious.size
    kept = np.delete(rising, spurious)
    assert np.abs(kept - t1["frame_times_ephys_s"]).max() < 2e-6
    assert kept[0] == pytest.approx(2.5, abs=1e-3)

    # the oscillation phase the neurons were locked to is the channel's true phase
    raw = reader.get_analogsignal_chunk(0, 0, None, None, stream_index=0)
    volts = reader.rescale_signal_raw_to_float(raw, stream_index=0)
    lfp = volts[:, list(reader.header["signal_channels"]["name"]).index("PFCLFPvsCBEEG")]
    fs = float(t1["ephys_fs"])
    est = np.angle(hilbert(sosfiltfilt(butter(3, [5, 9], "bandpass", fs=fs, output="sos"), lfp)))
    idx = np.rint(t1["frame_times_ephys_s"] * fs).astype(int)
    assert np.median(_circ_err(est[idx], t1["frame_phase"])) < 0.3

    gap_reader = neo_rawio.NeuralynxRawIO(
        dirname=str(out / LINE_DIRS[3]["ephys"]), gap_tolerance_ms=1.0
    )
    gap_reader.parse_header()
    assert gap_reader.header["nb_segment"][0] == 2

    # written once: a rerun skips, other settings refuse
    again = generate_demo(out, seed=1, size=size)
    assert all(v["status"] == "exists" for v in again["lines"].values())
    with pytest.raises(FileExistsError):
        generate_demo(out, seed=2, size=size)


def test_generate_demo_is_deterministic(tmp_path: Path) -> None:
    size = small_size(n_files=1, frames_per_file=30)
    a = generate_demo(tmp_path / "a", seed=7, size=size, lines=(1,))
    b = generate_demo(tmp_path / "b", seed=7, size=size, lines=(1,))
    assert a["lines"][1]["spurious_ttl_indices"] == b["lines"][1]["spurious_ttl_indices"]
    for rel in ["Events.nev", "PFCLFPvsCBEEG.ncs"]:
        pa = tmp_path / "a" / LINE_DIRS[1]["ephys"] / rel
        pb = tmp_path / "b" / LINE_DIRS[1]["ephys"] / rel
        assert pa.read_bytes() == pb.read_bytes()
    ta, tb = load_npz(truth_path(tmp_path / "a", 1)), load_npz(truth_path(tmp_path / "b", 1))
    assert ta.keys() == tb.keys()
    assert all(np.array_equal(ta[k], tb[k], equal_nan=ta[k].dtype.kind == "f") for k in ta)


def test_cli_writes_default_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ace_assets.demo.__main__ import main

    assert main(["--out", str(tmp_path), "--seed", "0"]) == 0
    assert "line 1: status=written" in capsys.readouterr().out
    t1 = load_npz(truth_path(tmp_path, 1))
    assert t1["C"].shape == (30, 600) and t1["spurious_ttl_indices"].tolist() == [0, 302]
    avis = sorted((tmp_path / LINE_DIRS[1]["miniscope"] / "Miniscope").glob("*.avi"))
    assert len(avis) == 3 and sum(1 for _ in read_avi(avis[-1])) == 200


def test_digital_lynx_events_as_cheetah_5_6_writes_them(tmp_path: Path) -> None:
    """Line 4: event_id 0 everywhere, the whole port word (idle 0x3000), behaviour bits
    toggling, words above 0x7FFF stored as negative int16; bit 3 rises once per frame."""
    from ace_assets.io.neuralynx import read_events
    from ace_assets.io.neuralynx_format import HEADER_SIZE, NEV_DTYPE
    from ace_assets.multimodal.ttl import choose_sync_bit, ttl_rising_edges

    out = tmp_path / "data"
    generate_demo(out, seed=3, size=small_size(), lines=(4,))
    truth = load_npz(truth_path(out, 4))
    path = out / LINE_DIRS[4]["ephys"] / EVENTS_FILE
    raw = np.fromfile(path, dtype=NEV_DTYPE, offset=HEADER_SIZE)
    assert set(raw["event_id"].tolist()) == {0}
    words = raw["ttl"][raw["event_string"] != b"Starting Recording"]
    assert {0x3000, 0x3003, 0x3008, 0x30C0, 0x7000, 0xB000} <= set(words.tolist())
    assert -20480 in raw["ttl"].view(np.int16).tolist()  # 0xB000 as an int16 export shows it
    assert b"Digital Lynx Parallel Input Port TTL (0x3008)" in raw["event_string"].tolist()
    events = read_events(path, origin_us=int(truth["ephys_start_us"]))
    frames = truth["frame_times_ephys_s"]
    assert ttl_rising_edges(events).size <= 2  # all bits over an idle 0x3000: almost nothing
    sync = ttl_rising_edges(events, bit=3)
    assert sync.size == frames.size and np.abs(sync - frames).max() < 1e-6
    chosen, report = choose_sync_bit(events, frames.size, truth["camera_timestamps_ms"])
    assert chosen.bit == 3 and report.sync_bit_source == "automatic"
    signed = events.assign(ttl=events.ttl.where(events.ttl < 0x8000, events.ttl - 0x10000))
    assert (signed.ttl < 0).any()
    np.testing.assert_array_equal(
        ttl_rising_edges(signed, bit=15), ttl_rising_edges(events, bit=15)
    )


def test_line_5_partial_records_pause_and_32khz(tmp_path: Path) -> None:
    from ace_assets.demo.ephys_lines import HOLES, PAUSE_S, WIDE_CHANNEL, WIDE_RATE
    from ace_assets.io.neuralynx import read_ncs_header, record_index

    out = tmp_path / "data"
    size = small_size()
    generate_demo(out, seed=3, size=size, lines=(5,))
    folder = out / LINE_DIRS[5]["ephys"]
    per_record_us = 512 * 1e6 / size.ephys_fs
    h = read_ncs_header(folder / "PFCLFPvsCBEEG.ncs")
    ts, nv = record_index(h.path, h.n_records)
    for record, valid in HOLES:
        assert nv[record] == valid and ts[record + 1] - ts[record] == per_record_us
    pauses = np.flatnonzero(np.diff(ts) > per_record_us + 1)
    (k,) = pauses
    assert ts[k + 1] - ts[k] == pytest.approx(per_record_us + PAUSE_S * 1e6, abs=1)
    h2 = read_ncs_header(folder / "PFCEEGvsCBEEG.ncs")
    ts2, nv2 = record_index(h2.path, h2.n_records)
    assert (nv2[:-1] == 512).all() and ts2[k + 1] == ts[k + 1]  # same pause, no holes
    wide = read_ncs_header(folder / f"{WIDE_CHANNEL}.ncs")
    assert wide.sampling_rate == WIDE_RATE
    tsw, _ = record_index(wide.path, wide.n_records)
    assert np.abs(np.diff(tsw) - 16000).max() <= 1  # records on, through the pause
