"""The EDF+ writer on generated stores: read back by edfio and by edflib (pyedflib, strict)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import edfio
import numpy as np
import pandas as pd
import pyedflib
import pytest

from ace_assets.export import edf
from ace_assets.export.edf import (
    Annotation,
    EdfIdentity,
    EdfSignal,
    choose_record,
    edf_number,
    patient_field,
    recording_field,
    signal_labels,
    write_edf,
)
from ace_assets.export.edf_annotations import event_annotations, period_annotations
from ace_assets.io.store import ArrayStore, ArrayStoreWriter

FS = 1000.0
NAMES = ["PFCLFPvsCBEEG", "PFCEEGvsCBEEG", "EMG"]
#: segment 1 starts this long after segment 0 ends: a pause no reader filled
PAUSE_S = 0.3137
NAN_RUN = (2, 4100, 4160)  # column, start, stop: one channel lacks these samples


def _store(root: Path, n0: int = 3700, n1: int = 2900, seed: int = 1) -> ArrayStore:
    """Two segments of three channels (volts, µV-scale EEG, a larger EMG), one NaN run."""
    rng = np.random.default_rng(seed)
    n = n0 + n1
    t = np.arange(n) / FS
    x = np.stack(
        [
            80e-6 * np.sin(2 * np.pi * 7 * t) + 20e-6 * rng.standard_normal(n),
            150e-6 * np.sin(2 * np.pi * 1.5 * t) + 10e-6 * rng.standard_normal(n) + 40e-6,
            300e-6 * rng.standard_normal(n),
        ],
        axis=1,
    ).astype(np.float32)
    c, a, b = NAN_RUN
    x[a:b, c] = np.nan
    t1 = n0 / FS + PAUSE_S
    meta = {
        "sampling_rate_hz": FS,
        "channel_names": NAMES,
        "segments": [
            {"segment": 0, "start_index": 0, "stop_index": n0, "t_start_s": 0.0},
            {"segment": 1, "start_index": n0, "stop_index": n, "t_start_s": t1},
        ],
        "gaps": [{"start_s": n0 / FS, "duration_s": PAUSE_S, "sample_index": n0, "filled": False}],
        "channel_runs": [
            {"channel": NAMES[c], "column": c, "kind": "nan", "start_index": a, "stop_index": b}
        ],
    }
    with ArrayStoreWriter(root / "signals.npyd", x.shape, np.float32, meta) as w:
        w.write(0, x)
        return w.commit()


def _identity() -> EdfIdentity:
    return EdfIdentity(
        patient=patient_field("Demo Rat 7", extra=["weight=0.51kg"]),
        recording=recording_field(
            dt.date(2024, 1, 3), admin_code="line_3", equipment="Neuralynx", extra=["drug=iso"]
        ),
        start=dt.datetime(2024, 1, 3, 12, 34, 56),
    )


def _signals() -> list[EdfSignal]:
    labels = signal_labels(NAMES, "EMG")
    pairs = zip(labels, NAMES, strict=True)
    return [EdfSignal(lb, f"Neuralynx CSC {n}.ncs", "HP:0.1Hz") for lb, n in pairs]


EVENTS = [Annotation(0.5, "TTL 0x0001"), Annotation(0.501, "TTL 0x0000")]
PERIOD = Annotation(1.25, "high slow wave power period", 2.0)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("edf")
    store = _store(root)
    info = write_edf(
        root / "x.edf", store, _signals(), [*EVENTS, PERIOD], _identity(), block_samples=1500
    )
    return store, info, root / "x.edf"


def _slot(store: ArrayStore, index: int, rate: float) -> int:
    """Where a store sample sits in the file: its segment's start time, then consecutive."""
    seg = next(s for s in store.meta["segments"] if s["start_index"] <= index < s["stop_index"])
    return int(round(seg["t_start_s"] * rate)) + index - seg["start_index"]


def test_samples_read_back_within_the_stated_resolution(written) -> None:
    store, info, path = written
    x = store.read()
    rate = info["sampling_rate_hz"]
    slots = np.array([_slot(store, i, rate) for i in range(store.n_frames)])
    for reader_data in (
        [s.data for s in edfio.read_edf(path).signals],
        [pyedflib.EdfReader(str(path)).readSignal(c) for c in range(len(NAMES))],
    ):
        for c, channel in enumerate(info["channels"]):
            step = channel["resolution_uV"]
            span = np.nanmax(x[:, c]) - np.nanmin(x[:, c])
            assert step <= 1.03 * span * 1e6 / 65535  # range = the data's, plus 1 % each side
            got = np.asarray(reader_data[c])[slots]
            ok = np.isfinite(x[:, c])
            err = np.abs(got[ok] - x[ok, c].astype(np.float64) * 1e6)
            assert err.max() <= 0.5 * step * (1 + 1e-6) + 1e-6 * abs(x[ok, c]).max() * 1e6
            assert np.all(np.abs(got[~ok]) <= step)  # unrecorded: written as 0 µV


def test_the_pause_keeps_its_length_and_is_annotated(written) -> None:
    store, info, path = written
    rate = info["sampling_rate_hz"]
    n0 = store.meta["segments"][0]["stop_index"]
    first_after = _slot(store, n0, rate)
    assert first_after == n0 + round(PAUSE_S * rate)
    got = edfio.read_edf(path).signals[0].data
    before, after = store.read(n0 - 1, n0 + 1)[:, 0].astype(np.float64) * 1e6
    inside = got[n0:first_after]  # interpolated between the samples either side
    lo, hi = min(before, after), max(before, after)
    step = info["channels"][0]["resolution_uV"]
    assert np.all((inside >= lo - step) & (inside <= hi + step))
    skips = [
        a for a in edfio.read_edf(path).annotations if a.text == edf.UNRECORDED and a.onset < 5
    ]
    assert [(round(a.onset, 6), round(a.duration, 6)) for a in skips] == [
        (n0 / rate, round(round(PAUSE_S * rate) / rate, 6))
    ]
    assert info["interpolated_samples"] == info["n_records"] * info["samples_per_record"] - (
        store.n_frames
    )


def test_annotations_have_their_onsets(written) -> None:
    store, info, path = written
    for onsets, durations, texts in (
        _edfio_annotations(path),
        pyedflib.EdfReader(str(path)).readAnnotations(),
    ):
        table = list(zip(np.round(onsets, 6).tolist(), [str(t) for t in texts], strict=True))
        for a in [*EVENTS, PERIOD]:
            assert (a.onset_s, a.text) in table
        i = [str(t) for t in texts].index(PERIOD.text)
        assert durations[i] == pytest.approx(PERIOD.duration_s)
        c, a, b = NAN_RUN
        label = info["channels"][c]["label"]
        j = [str(t) for t in texts].index(f"{edf.UNRECORDED}@@{label}")
        assert onsets[j] == pytest.approx(_slot(store, a, FS) / FS)
        assert durations[j] == pytest.approx((b - a) / FS)


def _edfio_annotations(path: Path):
    ann = edfio.read_edf(path).annotations
    return [a.onset for a in ann], [a.duration or -1 for a in ann], [a.text for a in ann]


def test_emg_is_labelled_and_header_fields_follow_edf_rules(written) -> None:
    _, info, path = written
    raw = path.read_bytes()
    ns = int(raw[252:256])
    header = raw[: 256 * (ns + 1)]
    assert int(header[184:192]) == len(header) == 256 * 5
    assert all(32 <= b <= 126 for b in header)  # printable US-ASCII only
    text = header.decode("ascii")
    assert text[:8] == "0       "
    assert re.fullmatch(r"\d\d\.\d\d\.\d\d", text[168:176]) and text[168:176] == "03.01.24"
    assert re.fullmatch(r"\d\d\.\d\d\.\d\d", text[176:184]) and text[176:184] == "12.34.56"
    assert text[192:236].startswith("EDF+C")
    assert int(text[236:244]) == info["n_records"]
    patient = text[8:88].split()
    assert patient[:4] == ["Demo_Rat_7", "X", "X", "X"] and "weight=0.51kg" in patient
    recording = text[88:168].split()
    assert recording[:5] == ["Startdate", "03-JAN-2024", "line_3", "X", "Neuralynx"]
    labels = [text[256 + 16 * i : 256 + 16 * (i + 1)].rstrip() for i in range(ns)]
    assert labels == ["EEG PFCLFPvsCBEE", "EEG PFCEEGvsCBEE", "EMG", "EDF Annotations"]
    for i in range(ns):  # numbers fit their 8 characters and parse
        for offset in (104, 112, 120, 128):  # physical min/max, digital min/max
            float(text[256 + ns * offset + 8 * i : 256 + ns * offset + 8 * (i + 1)])
    read = edfio.read_edf(path)
    assert [s.label for s in read.signals] == labels[:3]
    assert {s.physical_dimension for s in read.signals} == {"uV"}
    assert read.startdate == dt.date(2024, 1, 3) and read.starttime == dt.time(12, 34, 56)
    edflib = pyedflib.EdfReader(
        str(path)
    ).getHeader()  # edflib refuses non-EDF+ headers; "_" reads as a space
    assert edflib["patientcode"] == "Demo Rat 7" and edflib["equipment"] == "Neuralynx"


def test_labels_are_unique_within_16_characters() -> None:
    names = ["LongChannelNameNumberOne", "LongChannelNameNumberTwo", "EMGneck", "x y"]
    labels = signal_labels(names, "EMGneck")
    assert labels == ["EEG LongChannelN", "EEG LongChanne~2", "EMGneck", "EEG x_y"]
    assert signal_labels(["CSC1"], "CSC1") == ["EMG CSC1"]


@pytest.mark.parametrize("value", [-287.29513, 249.64421, 0.0000123, -0.5, 1234.5678, -99999.99])
def test_numbers_round_outward_into_8_characters(value: float) -> None:
    down, up = edf_number(value, up=False), edf_number(value, up=True)
    assert len(down) <= 8 and len(up) <= 8
    assert float(down) <= value <= float(up)
    assert float(up) - float(down) <= 1e-5 * max(1.0, abs(value))


@pytest.mark.parametrize(
    ("fs", "n_ch"), [(2000.0, 3), (32000.0, 8), (32556.0, 3), (30000.0, 64), (1017.25, 4)]
)
def test_records_hold_whole_samples_within_the_recommended_size(fs: float, n_ch: int) -> None:
    layout = choose_record(fs, n_ch)
    assert layout.samples >= 1 and len(layout.duration) <= 8
    assert abs(layout.rate_hz - fs) <= 1e-6 * fs
    if fs * 0.01 * 2 * n_ch <= edf.MAX_RECORD_BYTES:
        assert 2 * n_ch * layout.samples <= edf.MAX_RECORD_BYTES


def test_written_in_bounded_blocks_and_independent_of_them(tmp_path: Path, monkeypatch) -> None:
    store = _store(tmp_path, n0=5000, n1=4000, seed=3)
    reads: list[int] = []
    original = ArrayStore.read

    def counting(self: ArrayStore, start: int = 0, stop: int | None = None) -> np.ndarray:
        out = original(self, start, stop)
        reads.append(len(out))
        return out

    monkeypatch.setattr(ArrayStore, "read", counting)
    burst = [Annotation(2.0 + k * 1e-4, f"TTL 0x{k % 2:04X}") for k in range(3000)]
    small = write_edf(tmp_path / "a.edf", store, _signals(), burst, _identity(), block_samples=700)
    assert max(reads) <= 1000  # 700 samples rounded up to whole 1 s records
    monkeypatch.setattr(ArrayStore, "read", original)
    write_edf(tmp_path / "b.edf", store, _signals(), burst, _identity(), block_samples=1 << 20)
    assert (tmp_path / "a.edf").read_bytes() == (tmp_path / "b.edf").read_bytes()
    texts = [a.text for a in edfio.read_edf(tmp_path / "a.edf").annotations]
    assert sum(t.startswith("TTL") for t in texts) == 3000  # a burst overflows into later records
    assert small["annotation_bytes_per_record"] % 2 == 0


def test_events_and_periods_become_annotations() -> None:
    events = pd.DataFrame(
        {
            "timestamp_s": [0.0, 1.5, 1.501, 2.0, 9.9],
            "ttl": [0, 1, 0, -20480, 0],
            "event_id": [19, 11, 11, 0, 19],
            "string": [
                "Starting Recording",
                "TTL Input on AcqSystem1_0 board 0 port 0 value (0x0001).",
                "TTL Input on AcqSystem1_0 board 0 port 0 value (0x0000).",
                "Digital Lynx Parallel Input Port TTL (0xB000)",
                "Stopping Recording",
            ],
        }
    )
    got = [(a.onset_s, a.text) for a in event_annotations(events, t0_s=0.5)]
    assert got == [
        (-0.5, "Starting Recording"),
        (1.0, "TTL 0x0001"),
        (1.001, "TTL 0x0000"),
        (1.5, "TTL 0xB000"),
        (9.4, "Stopping Recording"),
    ]
    params = {
        "zero time (s)": 3.0,
        "periods of high slow wave power (s)": [[2.5, 12.5]],
        "control periods (s)": [[12.5, 22.5], [30.0, 31.0]],
        "baseline period (min)": 0.5,
    }
    periods = [(a.onset_s, a.text, a.duration_s) for a in period_annotations(params)]
    assert periods == [
        (5.5, "high slow wave power period", 10.0),
        (15.5, "control period", 10.0),
        (33.0, "control period", 1.0),
        (3.0, "baseline period", 30.0),
    ]
