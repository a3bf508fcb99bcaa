"""The memory-mapped record reader against neo, the header authority: every sample and the
time of every neo segment's first sample, on the real Pegasus files (gaps, partial records,
inverted inputs) and on the demo's files; both the block reader and the store writer."""

from __future__ import annotations

from pathlib import Path

import neo.rawio
import numpy as np
import pytest

from ace_assets.io.neuralynx import NeuralynxSession, read_ncs_header, write_session_store
from ace_assets.io.neuralynx_records import map_records, record_index
from ace_assets_tests.helpers.paths import DATA

REAL = DATA / "neuralynx_pegasus"
REAL_FILES = sorted(p.name for p in REAL.glob("*.ncs"))


def _neo_segments(path: Path) -> tuple[np.ndarray, list[int], list[float], float]:
    """neo's int16 samples of one file (segments concatenated), each segment's first
    sample index and time (s, original clock), and its gain (µV per count)."""
    r = neo.rawio.NeuralynxRawIO(
        dirname=str(path.parent),
        include_filenames=[path.name],
        keep_original_times=True,
        gap_tolerance_ms=0.01,
    )
    r.parse_header()
    counts, starts, times = [], [], []
    first = 0
    for seg in range(r.segment_count(0)):
        n = r.get_signal_size(0, seg, 0)
        counts.append(r.get_analogsignal_chunk(0, seg, 0, n, stream_index=0).ravel())
        starts.append(first)
        times.append(float(r.get_signal_t_start(0, seg, 0)))
        first += n
    gain = float(r.header["signal_channels"]["gain"][0])
    return np.concatenate(counts), starts, times, gain


def _check_against_neo(path: Path, tmp_path: Path) -> None:
    counts, starts, times, gain = _neo_segments(path)
    header = read_ncs_header(path)
    assert header.volts_per_count * 1e6 == pytest.approx(gain, rel=1e-12)
    records = map_records(path, header.n_records)
    ts, nv = record_index(path, header.n_records)
    np.testing.assert_array_equal(ts, records["timestamp"].astype(np.int64))
    mapped = np.concatenate([records["samples"][r, :k] for r, k in enumerate(nv.tolist())])
    np.testing.assert_array_equal(mapped, counts)

    session = NeuralynxSession(path.parent, [path.stem], max_fill_s=0.0)
    assert session.n_samples == counts.size
    volts = session.read(0, session.n_samples)[0]  # the block reader (gaps, partial records)
    np.testing.assert_array_equal(volts, counts * header.volts_per_count)
    store = write_session_store(session, tmp_path / f"{path.stem}.npyd", chunk_samples=3000)
    expected = (counts * header.volts_per_count).astype(np.float32)  # the store's float32
    np.testing.assert_array_equal(store.read(0, store.n_frames)[:, 0], expected)
    ours_us = session.clock.times_of(np.array(starts)) * 1e6 + session.origin_us
    np.testing.assert_allclose(ours_us, np.array(times) * 1e6, rtol=0, atol=1.0)


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_files_read_from_the_memmap_equal_neo(name: str, tmp_path: Path) -> None:
    _check_against_neo(REAL / name, tmp_path)


def test_demo_files_read_from_the_memmap_equal_neo(demo_data: Path, tmp_path: Path) -> None:
    files = sorted(demo_data.rglob("*.ncs"))
    assert files
    for path in files:
        _check_against_neo(path, tmp_path)


def test_store_writer_fast_path_equals_the_block_reader(tmp_path: Path) -> None:
    """Several channels of full, back-to-back records: the store is written straight from
    the memmap; it must hold what the general block reader gives, cast to float32."""
    names = ["LAHC1", "LAHC2", "LAHC3"]
    session = NeuralynxSession(REAL, names, max_fill_s=0.1)
    store = write_session_store(session, tmp_path / "s.npyd", chunk_samples=1024)
    whole = session.read(0, session.n_samples).T.astype(np.float32)
    np.testing.assert_array_equal(store.read(0, store.n_frames), whole)


def test_store_writer_takes_the_fast_path_only_where_records_are_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short pause (filled, leaving a partial record) and a long one (a segment boundary):
    blocks over whole back-to-back records come straight from the memmap, blocks touching a
    pause or a partial record take the general reader, and the store equals the general
    reader everywhere."""
    from ace_assets.demo.neuralynx_writer import NcsWriter
    from ace_assets.io.neuralynx_assemble import GridReader

    fs, n = 2000.0, 20_000
    rng = np.random.default_rng(5)
    folder = tmp_path / "rec"
    folder.mkdir()
    for c in range(3):
        with NcsWriter(folder / f"CSC{c}.ncs", fs, channel_name=f"CSC{c}", channel_id=c) as w:
            x = np.cumsum(rng.normal(size=n)) * 20e-6
            w.append(x, gaps=[(5000, 0.01), (12_000, 1.0)])
    session = NeuralynxSession(folder, ["CSC0", "CSC1", "CSC2"], max_fill_s=0.05)
    assert len(session.grid.segments) == 2 and session.channel_runs().kind.eq("filled").all()
    general = session.read(0, session.n_samples).T.astype(np.float32)

    calls = {"general": 0, "counts": 0}
    read, counts_into = GridReader.read, GridReader.counts_into

    def counting_read(self, a, b):  # noqa: ANN001, ANN202 - a spy
        calls["general"] += 1
        return read(self, a, b)

    def counting_counts(self, a, b, out):  # noqa: ANN001, ANN202 - a spy
        took = counts_into(self, a, b, out)
        calls["counts"] += took
        return took

    monkeypatch.setattr(GridReader, "read", counting_read)
    monkeypatch.setattr(GridReader, "counts_into", counting_counts)
    store = write_session_store(session, tmp_path / "s.npyd", chunk_samples=1000)
    # int16 counts on disk, the filled samples kept exactly beside them: the same float32
    assert store.stored.dtype == np.int16 and store.meta["encoding"]["patched_rows"] > 0
    np.testing.assert_array_equal(store.read(0, store.n_frames), general)
    for c in range(3):
        np.testing.assert_array_equal(store.read(4000, 13_000, c), general[4000:13_000, c])
    assert 0 < calls["general"] < calls["counts"]  # both paths taken, the fast one mostly
