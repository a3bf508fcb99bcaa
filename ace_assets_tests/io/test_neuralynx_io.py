"""Neuralynx writer -> neo -> NeuralynxSession round trips, and bad-input errors."""

from __future__ import annotations

from pathlib import Path

import neo.rawio
import numpy as np
import pytest

from ace_assets.demo.neuralynx_writer import NcsWriter, write_ncs, write_nev
from ace_assets.errors import AceInputError
from ace_assets.io.neuralynx import (
    NeuralynxSession,
    load_clock,
    read_events,
    read_ncs_header,
    write_session_store,
    write_stream_stores,
)
from ace_assets.io.neuralynx_format import HEADER_SIZE, NCS_DTYPE
from ace_assets.io.store import ArrayStore

FS = 1000.0
ADBV = 3.0e-8
START_US = 5_000_000


def _volts(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    return 2e-4 * np.sin(2 * np.pi * 3 * t + seed) + rng.normal(0, 5e-5, n)


@pytest.fixture()
def session_dir(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Two channels (one inverted), a 0.75 s gap at sample 3000, partial last record."""
    n = 7000  # 7000 - 3000 = 4000 = 7 * 512 + 416 -> partial last record
    truth = {"CSC1": _volts(n, 1), "EEGvsREF": _volts(n, 2)}
    for k, (name, v) in enumerate(truth.items()):
        write_ncs(
            tmp_path / f"{name}.ncs",
            v,
            FS,
            start_us=START_US,
            ad_bit_volts=ADBV,
            channel_name=name,
            channel_id=k,
            input_inverted=(k == 1),
            gaps=[(3000, 0.75)],
            partial_last=True,
        )
    rises = START_US + np.arange(10) * 100_000
    ts = np.sort(np.concatenate([rises, rises + 1000]))
    ttl = np.tile([1, 0], 10)
    write_nev(tmp_path / "Events.nev", ts, ttl)
    return tmp_path, truth


def test_neo_reads_writer_output(session_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    d, truth = session_dir
    r = neo.rawio.NeuralynxRawIO(dirname=str(d), gap_tolerance_ms=1.0)
    r.parse_header()
    chans = r.header["signal_channels"]
    assert sorted(chans["name"].tolist()) == ["CSC1", "EEGvsREF"]
    assert np.all(chans["sampling_rate"] == FS)
    assert r.segment_count(0) == 2
    assert r.get_signal_t_start(0, 1, 0) - r.get_signal_t_start(0, 0, 0) == pytest.approx(3.75)
    got = []
    for seg in range(2):
        n = r.get_signal_size(0, seg, 0)
        raw = r.get_analogsignal_chunk(0, seg, 0, n, 0)
        got.append(r.rescale_signal_raw_to_float(raw, dtype="float64", stream_index=0) * 1e-6)
    sig = np.vstack(got)
    for c, name in enumerate(chans["name"]):
        np.testing.assert_allclose(sig[:, c], truth[name], atol=ADBV / 2 + 1e-15)
    assert [r.event_count(0, 0, i) for i in range(r.event_channels_count())] == [10, 10]


def test_session_values_times_and_gaps(session_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    d, truth = session_dir
    s = NeuralynxSession(d, ["CSC1", "eegvsref"], "Events.nev")  # file match ignores case
    assert s.sampling_rate == FS and s.n_samples == 7000 and s.n_channels == 2
    assert [h.input_inverted for h in s.headers] == [False, True]
    volts = s.read(0, s.n_samples)
    np.testing.assert_allclose(volts[0], truth["CSC1"], atol=ADBV / 2 + 1e-15)
    np.testing.assert_allclose(volts[1], truth["EEGvsREF"], atol=ADBV / 2 + 1e-15)

    # neo's own scaled reading equals ours (to float rounding)
    r = neo.rawio.NeuralynxRawIO(dirname=str(d), gap_tolerance_ms=1.0)
    r.parse_header()
    raw = r.get_analogsignal_chunk(0, 0, 0, 3000, 0)
    ref = r.rescale_signal_raw_to_float(raw, dtype="float64", stream_index=0) * 1e-6
    order = [list(r.header["signal_channels"]["name"]).index(n) for n in ("CSC1", "EEGvsREF")]
    np.testing.assert_allclose(volts[:, :3000], ref[:, order].T, rtol=1e-12, atol=0)

    gaps = s.gaps()
    assert len(gaps) == 1
    assert gaps.sample_index[0] == 3000
    assert gaps.start_s[0] == pytest.approx(3.0, abs=1e-6)
    assert gaps.duration_s[0] == pytest.approx(0.75, abs=1e-6)
    segs = s.segments()
    assert segs.stop_index.tolist() == [3000, 7000]
    assert s.partial_records == [
        {"file": "CSC1.ncs", "record": 5, "n_valid": 440},  # 3000 = 5*512 + 440, before the gap
        {"file": "CSC1.ncs", "record": 13, "n_valid": 416},
        {"file": "EEGvsREF.ncs", "record": 5, "n_valid": 440},
        {"file": "EEGvsREF.ncs", "record": 13, "n_valid": 416},
    ]

    chunks = list(s.iter_chunks(1234))
    assert all(v.shape[0] == 2 for _, _, v in chunks)
    assert max(v.shape[1] for _, _, v in chunks) == 1234
    starts = [t0 for t0, _, _ in chunks]
    assert 3000 in starts  # chunks restart at the gap
    times = np.concatenate([t for _, t, _ in chunks])
    np.testing.assert_allclose(np.concatenate([v for _, _, v in chunks], axis=1), volts)
    expected = np.concatenate([np.arange(3000), np.arange(3000, 7000) + 750]) / FS
    np.testing.assert_allclose(times, expected, atol=1e-6)

    ev = s.events()
    assert ev.ttl.tolist() == [1, 0] * 10
    np.testing.assert_allclose(ev.timestamp_s[::2], np.arange(10) * 0.1)
    assert ev.string[0].startswith("TTL Input")


def test_store_and_clock(session_dir: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    d, truth = session_dir
    s = NeuralynxSession(d, ["CSC1", "EEGvsREF"], None)
    assert not s.events_present
    store = write_session_store(s, tmp_path / "raw.npyd", chunk_samples=999)
    assert isinstance(store, ArrayStore)
    assert store.shape == (7000, 2) and store.dtype == np.float32
    np.testing.assert_allclose(store.read(0, 7000)[:, 0], truth["CSC1"], atol=1e-7)
    assert store.meta["layout"] == "(n_samples, n_channels)"
    assert store.meta["gaps"][0]["duration_s"] == pytest.approx(0.75, abs=1e-6)
    clock = load_clock(store.path)
    np.testing.assert_allclose(clock.times(2998, 3002), [2.998, 2.999, 3.75, 3.751], atol=1e-9)
    pos = clock.position(np.array([0.0, 2.9995, 3.2, 3.7505, 100.0]))
    np.testing.assert_allclose(pos[:2], [0.0, 2999.5])
    assert np.isnan(pos[2]) and np.isnan(pos[4])  # inside the gap / after the end
    assert pos[3] == pytest.approx(3000.5)


def test_chunked_writer_matches_whole(tmp_path: Path) -> None:
    v = _volts(5000, 3)
    whole = write_ncs(tmp_path / "a" / "CSC1.ncs", v, FS, gaps=[(1700, 0.1)])
    with NcsWriter(tmp_path / "b" / "CSC1.ncs", FS) as w:
        w.append(v[:1000])
        w.append(v[1000:2500], gaps=[(700, 0.1)])
        w.append(v[2500:])
    assert whole.read_bytes() == (tmp_path / "b" / "CSC1.ncs").read_bytes()
    with pytest.raises(ValueError, match="partial_last"):
        write_ncs(tmp_path / "c" / "CSC1.ncs", v[:1024], FS, partial_last=True)


def test_not_neuralynx_header(tmp_path: Path) -> None:
    bad = tmp_path / "CSC1.ncs"
    bad.write_bytes(b"RIFF not a neuralynx file".ljust(16384 + 1044, b"\0"))
    with pytest.raises(AceInputError, match="not a Neuralynx file") as err:
        read_ncs_header(bad)
    assert err.value.file == str(bad)
    with pytest.raises(AceInputError, match="CSC1.ncs"):
        NeuralynxSession(tmp_path, ["CSC1"])


def test_truncated_and_missing_files(tmp_path: Path) -> None:
    path = write_ncs(tmp_path / "CSC1.ncs", _volts(2048, 1), FS)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(AceInputError, match="truncated") as err:
        NeuralynxSession(tmp_path, ["CSC1"])
    assert err.value.file == str(path)
    with pytest.raises(AceInputError, match="no CSC9.ncs"):
        NeuralynxSession(tmp_path, ["CSC9"])


def test_mixed_sampling_rates_become_streams(tmp_path: Path) -> None:
    """A 2 kHz channel beside a 1 kHz one: own stream at 2 kHz, polyphase-resampled onto the
    1 kHz analysis grid; equal to scipy's resample_poly away from the ends."""
    from scipy.signal import resample_poly

    lfp, emg = _volts(3000, 1), _volts(6000, 2)
    write_ncs(tmp_path / "LFP.ncs", lfp, 1000.0, channel_name="LFP", channel_id=0)
    write_ncs(tmp_path / "EMG.ncs", emg, 2000.0, channel_name="EMG", channel_id=1)
    s = NeuralynxSession(tmp_path, ["LFP", "EMG"])
    assert s.sampling_rate == 1000.0 and s.n_samples == 3000
    assert [st.fs for st in s.streams] == [2000.0]
    assert s.report().resampled_channels == ["EMG"]
    volts = s.read(0, 3000)
    np.testing.assert_allclose(volts[0], lfp, atol=ADBV / 2 + 1e-15)
    counts_emg = np.rint(emg / ADBV) * ADBV
    ref = resample_poly(counts_emg, 1, 2)
    inner = slice(100, -100)
    np.testing.assert_allclose(volts[1][inner], ref[inner], rtol=0, atol=1e-12)
    store = write_session_store(s, tmp_path / "out" / "raw.npyd")
    assert store.meta["resampled"]["EMG"]["from_hz"] == 2000.0
    assert store.meta["resampled"]["EMG"]["max_time_offset_us"] < 1.0
    own = write_stream_stores(s, tmp_path / "out")
    native = ArrayStore(own["2000Hz"])
    np.testing.assert_allclose(native.read(0, 6000)[:, 0], emg, atol=ADBV / 2 + 1e-7)


def test_channels_with_different_pauses_share_one_grid(tmp_path: Path) -> None:
    """B pauses 0.25 s where A records on, restarting off A's record grid: A's samples stay,
    B is NaN there (a long run), and B's 5-sample hole elsewhere is filled."""
    n = 6000
    a_volts, b_volts = _volts(n, 1), _volts(n, 2)
    write_ncs(tmp_path / "A.ncs", a_volts, FS, channel_name="A", channel_id=0, start_us=START_US)
    with NcsWriter(tmp_path / "B.ncs", FS, channel_name="B", channel_id=1, start_us=START_US) as w:
        w.append(b_volts[:2048])  # 4 full records
        w.add_gap(0.25)  # B silent for 250 samples, then 8 records...
        w.append(b_volts[2298 : 2298 + 507])  # ...one of them 5 short: a 5 ms hole
        w.add_gap(0.005)
        w.append(b_volts[2298 + 512 :])
    s = NeuralynxSession(tmp_path, ["A", "B"], max_fill_s=0.1)
    assert s.n_samples == n
    v = s.read(0, n)
    np.testing.assert_allclose(v[0], a_volts, atol=ADBV / 2 + 1e-15)
    assert np.isnan(v[1, 2048:2298]).all()
    np.testing.assert_allclose(v[1, :2048], b_volts[:2048], atol=ADBV / 2 + 1e-15)
    hole = slice(2298 + 507, 2298 + 512)  # filled by prediction: the 3 Hz wave continues
    smooth = 2e-4 * np.sin(2 * np.pi * 3 * np.arange(n) / FS + 2)
    assert np.abs(v[1, hole] - smooth[hole]).max() < 4 * 5e-5  # within the noise
    runs = s.channel_runs()
    assert runs[["channel", "kind", "start_index", "stop_index"]].values.tolist() == [
        ["B", "filled", 2805, 2810],
        ["B", "nan", 2048, 2298],
    ]
    assert [(a, b) for a, b in s.grid.segments] == [(0, 2048), (2048, 2298), (2298, n)]
    assert s.gaps().empty  # A never paused: no pause of the whole grid


def test_missing_events_file(tmp_path: Path) -> None:
    write_ncs(tmp_path / "CSC1.ncs", _volts(2000, 1), FS)
    s = NeuralynxSession(tmp_path, ["CSC1"], "Events.nev")
    assert not s.events_present
    assert s.report().events_present is False
    with pytest.raises(AceInputError, match="events file not found") as err:
        s.events()
    assert err.value.file.endswith("Events.nev")


def test_events_with_strings(tmp_path: Path) -> None:
    path = write_nev(
        tmp_path / "Events.nev",
        np.array([100, 200, 300]),
        np.array([0, 2, 0]),
        ["Starting Recording", "TTL Input on AcqSystem1_0 board 0 port 0 value (0x0002).", "x"],
    )
    ev = read_events(path, origin_us=100)
    assert ev.string.tolist()[0] == "Starting Recording"
    assert ev.event_id.tolist() == [19, 11, 19]
    np.testing.assert_allclose(ev.timestamp_s, [0, 1e-4, 2e-4])


def test_partial_record_inside_a_section_and_duplicate_channels(tmp_path: Path) -> None:
    v = _volts(4000, 1)
    # a partial record followed by a contiguous one (neo would misread it): read as recorded
    with NcsWriter(tmp_path / "C.ncs", FS, channel_name="C", channel_id=2) as w:
        w.append(v[:700])
        w.add_gap(0.0)
        w.append(v[700:])
    s = NeuralynxSession(tmp_path, ["C"])
    assert s.partial_records[0] == {"file": "C.ncs", "record": 1, "n_valid": 188}
    assert len(s.grid.segments) == 1 and s.n_samples == 4000
    np.testing.assert_allclose(s.read(0, 4000)[0], v, atol=ADBV / 2 + 1e-15)
    write_ncs(tmp_path / "D.ncs", v, FS, channel_name="C", channel_id=2)
    with pytest.raises(AceInputError, match="cannot be told apart"):
        NeuralynxSession(tmp_path, ["C", "D"])
    # records out of time order are refused, naming the file and the record
    write_ncs(tmp_path / "E.ncs", v, FS, channel_name="E", channel_id=4)
    raw = bytearray((tmp_path / "E.ncs").read_bytes())
    rec = np.frombuffer(raw, dtype=NCS_DTYPE, offset=HEADER_SIZE).copy()
    rec["timestamp"][3] = rec["timestamp"][1]
    raw[HEADER_SIZE:] = rec.tobytes()
    (tmp_path / "E.ncs").write_bytes(bytes(raw))
    with pytest.raises(AceInputError, match="record 3 has timestamp") as err:
        NeuralynxSession(tmp_path, ["E"])
    assert err.value.file.endswith("E.ncs")
    rec["timestamp"][3] = rec["timestamp"][2] + 512_000
    rec["nb_valid"][5] = 70_000  # a corrupt count (would wrap in a narrow integer)
    raw[HEADER_SIZE:] = rec.tobytes()
    (tmp_path / "E.ncs").write_bytes(bytes(raw))
    with pytest.raises(AceInputError, match="record 5 claims 70000 valid samples"):
        NeuralynxSession(tmp_path, ["E"])
