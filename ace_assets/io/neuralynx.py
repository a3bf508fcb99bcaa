"""Read a Neuralynx session (``.ncs`` channels + ``.nev`` events) lazily, in chunks, as volts.

Samples come through ``neo.rawio.NeuralynxRawIO.get_analogsignal_chunk`` (memory-mapped), so
reading a whole recording holds one chunk at a time (touched pages of neo's file maps are
released after each chunk; neo's ``parse_header`` itself reads every record once, which shows
up in ``ru_maxrss`` as reclaimable page cache, not heap). Before neo is involved every file's
header and size is validated here, so bad input fails with an :class:`AceInputError` naming
the file instead of a neo traceback.

Clock and time origin. Every sample's time is its record's hardware timestamp plus its
offset within the record at the header sampling rate: gaps, and the small drift between the
nominal rate and the acquisition clock, are honoured exactly. Times are seconds relative to
``origin_us``, the earliest first sample among the requested channels; ``.nev`` event times
use the same origin, so ephys samples and TTL pulses share one clock.

Segments. Records whose timestamp departs from contiguous sampling by more than
``gap_tolerance_ms`` (default: one sample period) start a new segment, as in neo; segments are
concatenated in sample index order and the gaps between them are reported. Only the last
record of a segment may be partial (neo's reader assumes so); a partial record elsewhere is
reported as an error rather than silently misread.

Store layout. :func:`write_session_store` writes ``(n_samples, n_channels)`` float32 volts:
time is the store's frame axis, so ``ArrayStore.read(a, b)`` and ``iter_chunks`` stream
contiguous time blocks. Sample times are not stored per sample (8 bytes x 115 M samples per
hour at 32 kHz); the per-record clock is saved beside the data as ``clock.npz`` and
:func:`load_clock` reconstructs the time of any sample range.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ace_assets.errors import AceInputError
from ace_assets.io.neuralynx_format import (  # noqa: E402
    HEADER_MAGIC,
    HEADER_SIZE,
    NCS_DTYPE,
    NCS_RECORD_SIZE,
    NEV_DTYPE,
    NEV_RECORD_SIZE,
    SAMPLES_PER_RECORD,
)
from ace_assets.io.store import ArrayStore, ArrayStoreWriter

_PROP = re.compile(r"^-(\S+)[ \t]*(.*?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class NcsHeader:
    """What the ``.ncs`` text header and file size say about one channel file."""

    path: Path
    sampling_rate: float
    ad_bit_volts: float
    input_inverted: bool
    channel_name: str
    channel_id: int | None
    n_records: int
    properties: dict[str, str] = field(repr=False)

    @property
    def volts_per_count(self) -> float:
        """Signed scale: counts x this = volts (negative when the input was inverted)."""
        return -self.ad_bit_volts if self.input_inverted else self.ad_bit_volts


def _header_text(path: Path, kind: str) -> str:
    if not path.is_file():
        raise AceInputError(f"{kind} file not found", file=path)
    size = path.stat().st_size
    if size < HEADER_SIZE:
        raise AceInputError(
            f"only {size} bytes; a Neuralynx {kind} file starts with a {HEADER_SIZE}-byte header",
            file=path,
        )
    with open(path, "rb") as fh:
        raw = fh.read(HEADER_SIZE)
    text = raw.strip(b"\x00").decode("latin-1")
    if not text.startswith(HEADER_MAGIC):
        start = text[:40].splitlines()[0] if text else ""
        raise AceInputError(
            f"not a Neuralynx file: header starts with {start!r}, expected "
            f"'######## Neuralynx Data File Header'",
            file=path,
        )
    return text


def header_properties(text: str) -> dict[str, str]:
    """``-Key value`` lines of a Neuralynx text header (first occurrence wins)."""
    props: dict[str, str] = {}
    for key, value in _PROP.findall(text):
        props.setdefault(key, value)
    return props


def _first_float(props: dict[str, str], key: str, path: Path) -> float:
    if key not in props:
        raise AceInputError(f"header has no -{key} line", file=path)
    token = props[key].split()[0] if props[key].split() else ""
    try:
        value = float(token)
    except ValueError:
        raise AceInputError(f"-{key} {props[key]!r} is not a number", file=path) from None
    if not np.isfinite(value) or value <= 0:
        raise AceInputError(f"-{key} must be a positive number, got {props[key]!r}", file=path)
    return value


def _record_count(path: Path, record_size: int, kind: str) -> int:
    body = path.stat().st_size - HEADER_SIZE
    n, rem = divmod(body, record_size)
    if rem:
        raise AceInputError(
            f"truncated {kind} file: {body} bytes after the header is not a whole number of "
            f"{record_size}-byte records ({n} complete records, then {rem} stray bytes); "
            "the file was probably cut off while copying or while Cheetah was writing",
            file=path,
        )
    return n


def read_ncs_header(path: str | Path) -> NcsHeader:
    """Validate an ``.ncs`` file's header and size; raises AceInputError naming the file."""
    path = Path(path)
    text = _header_text(path, "NCS")
    props = header_properties(text)
    file_type = props.get("FileType", "NCS").split()[0] if props.get("FileType") else "NCS"
    if file_type.upper() != "NCS":
        raise AceInputError(f"-FileType is {file_type!r}, expected NCS", file=path)
    if "RecordSize" in props and props["RecordSize"].split()[:1] != [str(NCS_RECORD_SIZE)]:
        raise AceInputError(
            f"-RecordSize {props['RecordSize']!r}, expected {NCS_RECORD_SIZE}", file=path
        )
    fs = _first_float(props, "SamplingFrequency", path)
    adbv = _first_float(props, "ADBitVolts", path)
    inverted_text = props.get("InputInverted", "False").split()[:1] or ["False"]
    if inverted_text[0] not in ("True", "False"):
        raise AceInputError(
            f"-InputInverted {props['InputInverted']!r}, expected True or False", file=path
        )
    name_tokens = props.get("AcqEntName", "").split()
    id_tokens = props.get("ADChannel", "").split()
    try:
        channel_id = int(id_tokens[0]) if id_tokens else None
    except ValueError:
        raise AceInputError(
            f"-ADChannel {props['ADChannel']!r} is not an integer", file=path
        ) from None
    n_records = _record_count(path, NCS_RECORD_SIZE, "NCS")
    return NcsHeader(
        path=path,
        sampling_rate=fs,
        ad_bit_volts=adbv,
        input_inverted=inverted_text[0] == "True",
        channel_name=name_tokens[0] if name_tokens else path.stem,
        channel_id=channel_id,
        n_records=n_records,
        properties=props,
    )


def validate_nev(path: str | Path) -> int:
    """Validate an ``.nev`` file's header and size; returns its number of event records."""
    path = Path(path)
    text = _header_text(path, "NEV")
    props = header_properties(text)
    file_type = (props.get("FileType") or "Event").split()[0]
    if file_type.lower() not in ("event", "nev"):
        raise AceInputError(f"-FileType is {file_type!r}, expected Event", file=path)
    return _record_count(path, NEV_RECORD_SIZE, "NEV")


def read_events(path: str | Path, origin_us: int = 0) -> pd.DataFrame:
    """Events of a ``.nev`` file: timestamp_us, timestamp_s (from ``origin_us``), ttl,
    event_id, string. TTL values are the digital-input port word (uint16)."""
    path = Path(path)
    n = validate_nev(path)
    if n == 0:
        rec = np.zeros(0, dtype=NEV_DTYPE)
    else:
        rec = np.fromfile(path, dtype=NEV_DTYPE, offset=HEADER_SIZE, count=n)
    ts = rec["timestamp"].astype(np.int64)
    strings = [s.split(b"\x00", 1)[0].decode("latin-1") for s in rec["event_string"]]
    return pd.DataFrame(
        {
            "timestamp_us": ts,
            "timestamp_s": (ts - int(origin_us)) / 1e6,
            "ttl": rec["ttl"].astype(np.int64),
            "event_id": rec["event_id"].astype(np.int64),
            "string": pd.Series(strings, dtype=object),
        }
    )


def record_index(path: Path, n_records: int, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and valid-sample counts of every record, read in blocks (no file mapping,
    so the scan does not leave the whole file in this process's resident set)."""
    ts = np.empty(n_records, dtype=np.int64)
    nv = np.empty(n_records, dtype=np.int64)
    with open(path, "rb") as fh:
        fh.seek(HEADER_SIZE)
        for a in range(0, n_records, block):
            rec = np.fromfile(fh, dtype=NCS_DTYPE, count=min(block, n_records - a))
            ts[a : a + rec.size] = rec["timestamp"]
            nv[a : a + rec.size] = rec["nb_valid"]
    return ts, nv


@dataclass(frozen=True)
class Section:
    """A run of records sampled without a gap (one neo segment)."""

    first_record: int
    stop_record: int  # exclusive
    n_samples: int


def scan_sections(
    timestamps_us: np.ndarray, nb_valid: np.ndarray, fs: float, tolerance_us: float
) -> list[Section]:
    """Split records where the next timestamp departs from contiguity (neo's rule)."""
    ts = timestamps_us.astype(np.int64)
    nv = nb_valid.astype(np.int64)
    if ts.size == 0:
        return []
    delta = np.diff(ts)
    predicted = (nv[:-1] / fs * 1e6).astype(np.int64)
    cuts = np.flatnonzero(np.abs(delta - predicted) > tolerance_us) + 1
    bounds = [0, *cuts.tolist(), ts.size]
    return [Section(a, b, int(nv[a:b].sum())) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass
class SampleClock:
    """Time of every sample from the per-record timestamps (compact: one entry per record).

    ``record_first_index[r]`` is the global (concatenated) sample index of record r's first
    valid sample; ``record_timestamp_us[r]`` its hardware timestamp.
    """

    fs: float
    origin_us: int
    record_first_index: np.ndarray  # int64, increasing
    record_timestamp_us: np.ndarray  # int64
    n_samples: int

    def times(self, start: int, stop: int) -> np.ndarray:
        """Seconds (from ``origin_us``) of global samples ``start:stop``."""
        idx = np.arange(start, stop, dtype=np.int64)
        rec = np.searchsorted(self.record_first_index, idx, side="right") - 1
        offset = (idx - self.record_first_index[rec]) * (1e6 / self.fs)
        return ((self.record_timestamp_us[rec] - self.origin_us) + offset) / 1e6

    def position(self, times_s: np.ndarray) -> np.ndarray:
        """Fractional global sample index of each time; NaN outside the recording or in a gap
        (more than one sample period after the last sample of a record)."""
        t_us = np.asarray(times_s, dtype=np.float64) * 1e6 + self.origin_us
        rec = np.searchsorted(self.record_timestamp_us, t_us, side="right") - 1
        ok = rec >= 0
        rec = np.clip(rec, 0, None)
        first = self.record_first_index[rec]
        stops = np.append(self.record_first_index[1:], self.n_samples)[rec]
        frac = first + (t_us - self.record_timestamp_us[rec]) * (self.fs / 1e6)
        ok &= (frac <= stops) & (frac <= self.n_samples - 1)
        return np.where(ok, frac, np.nan)

    def save(self, path: str | Path) -> None:
        np.savez(
            path,
            fs=np.float64(self.fs),
            origin_us=np.int64(self.origin_us),
            record_first_index=self.record_first_index,
            record_timestamp_us=self.record_timestamp_us,
            n_samples=np.int64(self.n_samples),
        )


def load_clock(store_path: str | Path) -> SampleClock:
    """The sample clock saved with a store written by :func:`write_session_store`."""
    with np.load(Path(store_path) / "clock.npz", allow_pickle=False) as z:
        return SampleClock(
            fs=float(z["fs"]),
            origin_us=int(z["origin_us"]),
            record_first_index=z["record_first_index"],
            record_timestamp_us=z["record_timestamp_us"],
            n_samples=int(z["n_samples"]),
        )


def _resolve_channel_file(dirname: Path, name: str) -> Path:
    stem = name[:-4] if name.lower().endswith(".ncs") else name
    exact = dirname / f"{stem}.ncs"
    if exact.is_file():
        return exact
    matches = [
        p for p in dirname.iterdir() if p.is_file() and p.name.lower() == f"{stem}.ncs".lower()
    ]
    if len(matches) == 1:
        return matches[0]
    available = sorted(p.stem for p in dirname.iterdir() if p.suffix.lower() == ".ncs")
    raise AceInputError(
        f"channel {name!r} has no {stem}.ncs file; .ncs channels present: {available}",
        file=dirname,
    )


class NeuralynxSession:
    """The requested channels of one recording directory, read lazily through neo.

    ``channels``: channel names, each a ``<name>.ncs`` file in ``dirname`` (case-insensitive).
    ``events_filename``: the ``.nev`` file name, or None; its absence is reported by
    ``events_present`` and only raises when :meth:`events` is called.
    """

    def __init__(
        self,
        dirname: str | Path,
        channels: list[str],
        events_filename: str | None = None,
        *,
        gap_tolerance_ms: float | None = None,
    ) -> None:
        self.dirname = Path(dirname)
        if not self.dirname.is_dir():
            raise AceInputError("ephys directory not found", file=self.dirname)
        if not channels:
            raise AceInputError("no channels requested", file=self.dirname)
        self.channels = list(channels)
        self.files = [_resolve_channel_file(self.dirname, c) for c in self.channels]
        repeated = [
            c for c, p in zip(self.channels, self.files, strict=True) if self.files.count(p) > 1
        ]
        if repeated:
            raise AceInputError(f"channels {repeated} requested more than once", file=self.dirname)
        self.headers = [read_ncs_header(p) for p in self.files]
        for h in self.headers:
            if h.n_records == 0:
                raise AceInputError("NCS file has a header but no sample records", file=h.path)
        self.sampling_rate = self._common_rate()
        self._check_unique_keys()
        self.gap_tolerance_ms = (
            1000.0 / self.sampling_rate if gap_tolerance_ms is None else float(gap_tolerance_ms)
        )
        self._scan_records()
        self.events_path = self.dirname / events_filename if events_filename else None
        self._reader = self._open_neo()
        self._map_neo_channels()
        self.release_pages()

    # -- validation -------------------------------------------------------------------------
    def _common_rate(self) -> float:
        rates = {h.path.name: h.sampling_rate for h in self.headers}
        if len(set(rates.values())) > 1:
            listing = ", ".join(f"{name}: {rate:g} Hz" for name, rate in rates.items())
            raise AceInputError(
                f"channels have different sampling rates ({listing}); load channels of one "
                "rate together (e.g. LFP/EEG separately from a differently sampled channel)",
                file=self.dirname,
            )
        return next(iter(rates.values()))

    def _check_unique_keys(self) -> None:
        seen: dict[tuple[str, str], Path] = {}
        for h in self.headers:
            key = (h.channel_name, str(h.channel_id if h.channel_id is not None else "unknown"))
            if key in seen:
                raise AceInputError(
                    f"{h.path.name} and {seen[key].name} both declare -AcqEntName {key[0]} "
                    f"-ADChannel {key[1]}; neo cannot tell them apart",
                    file=self.dirname,
                )
            seen[key] = h.path

    def _scan_records(self) -> None:
        tol_us = self.gap_tolerance_ms * 1000.0
        structures = []
        self._clock_source: tuple[np.ndarray, np.ndarray] | None = None
        self.partial_records: list[dict[str, Any]] = []
        for h in self.headers:
            ts, nv = record_index(h.path, h.n_records)
            bad = np.flatnonzero((nv < 0) | (nv > SAMPLES_PER_RECORD))
            if bad.size:
                raise AceInputError(
                    f"record {int(bad[0])} claims {int(nv[bad[0]])} valid samples (max 512)",
                    file=h.path,
                )
            sections = scan_sections(ts, nv, self.sampling_rate, tol_us)
            for s in sections:
                inner = np.flatnonzero(nv[s.first_record : s.stop_record - 1] < SAMPLES_PER_RECORD)
                if inner.size:
                    r = s.first_record + int(inner[0])
                    raise AceInputError(
                        f"record {r} holds {int(nv[r])} of 512 samples but the next record "
                        "continues without a gap; partial records are only supported at the "
                        "end of a segment",
                        file=h.path,
                    )
                if nv[s.stop_record - 1] < SAMPLES_PER_RECORD:
                    self.partial_records.append(
                        {
                            "file": h.path.name,
                            "record": s.stop_record - 1,
                            "n_valid": int(nv[s.stop_record - 1]),
                        }
                    )
            structures.append([(s.n_samples, int(ts[s.first_record])) for s in sections])
            if self._clock_source is None:
                self._clock_source = (ts, nv)
                self.sections = sections
        lengths = [[n for n, _ in st] for st in structures]
        if any(ln != lengths[0] for ln in lengths):
            detail = "; ".join(
                f"{h.path.name}: {ln}" for h, ln in zip(self.headers, lengths, strict=True)
            )
            raise AceInputError(
                f"channels have different segment structures (samples per segment: {detail})",
                file=self.dirname,
            )
        ts, nv = self._clock_source
        first_index = np.concatenate([[0], np.cumsum(nv)[:-1]]).astype(np.int64)
        self.origin_us = int(min(st[0][1] for st in structures))
        starts = np.cumsum([0] + [s.n_samples for s in self.sections])
        self.segment_starts = starts[:-1].astype(np.int64)
        self.n_samples = int(starts[-1])
        self.clock = SampleClock(
            self.sampling_rate, self.origin_us, first_index, ts, self.n_samples
        )

    def _open_neo(self) -> Any:
        import neo.rawio  # local: keeps importing this module cheap

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reader = neo.rawio.NeuralynxRawIO(
                    dirname=str(self.dirname),
                    include_filenames=[p.name for p in self.files],
                    gap_tolerance_ms=self.gap_tolerance_ms,
                )
                reader.parse_header()  # touches every record; pages released below
        except Exception as exc:  # neo raises bare ValueError/IOError/AssertionError
            names = ", ".join(p.name for p in self.files)
            raise AceInputError(f"neo could not read [{names}]: {exc}", file=self.dirname) from exc
        n_seg = reader.segment_count(0)
        if n_seg != len(self.sections):
            raise AceInputError(
                f"neo found {n_seg} segments but the record timestamps give "
                f"{len(self.sections)}; refusing to guess which is right",
                file=self.dirname,
            )
        return reader

    def _map_neo_channels(self) -> None:
        reader = self._reader
        chans = reader.header["signal_channels"]
        by_file = {os.path.realpath(f): uid for uid, f in reader.ncs_filenames.items()}
        groups: dict[int, list[tuple[int, int]]] = {}
        gains = np.empty(len(self.files))
        for row, (path, h) in enumerate(zip(self.files, self.headers, strict=True)):
            uid = by_file.get(os.path.realpath(path))
            if uid is None:
                raise AceInputError("neo did not load this channel", file=path)
            hit = np.flatnonzero((chans["name"] == uid[0]) & (chans["id"] == uid[1]))
            ch = chans[hit[0]]
            stream_index = int(
                np.flatnonzero(reader.header["signal_streams"]["id"] == ch["stream_id"])[0]
            )
            in_stream = np.flatnonzero(chans["stream_id"] == ch["stream_id"])
            groups.setdefault(stream_index, []).append(
                (row, int(np.flatnonzero(in_stream == hit[0])[0]))
            )
            gains[row] = float(ch["gain"]) * 1e-6  # neo gives µV per count, sign included
            if not np.isclose(gains[row], h.volts_per_count, rtol=1e-9):
                raise AceInputError(
                    f"neo's scale {gains[row]:g} V/count disagrees with the header's "
                    f"{h.volts_per_count:g}",
                    file=path,
                )
        self._groups = groups
        self._gains = gains

    # -- reporting ---------------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return len(self.files)

    @property
    def events_present(self) -> bool:
        return self.events_path is not None and self.events_path.is_file()

    def segments(self) -> pd.DataFrame:
        """One row per segment: global sample range and time span (s from origin)."""
        rows = []
        for i, (s, a) in enumerate(zip(self.sections, self.segment_starts, strict=True)):
            b = int(a) + s.n_samples
            t = self.clock.times(int(a), int(a) + 1)[0]
            t_end = self.clock.times(b - 1, b)[0] + 1.0 / self.sampling_rate
            rows.append(
                {
                    "segment": i,
                    "start_index": int(a),
                    "stop_index": b,
                    "t_start_s": t,
                    "t_stop_s": t_end,
                }
            )
        return pd.DataFrame(rows)

    def gaps(self) -> pd.DataFrame:
        """Gaps between segments: when the gap starts (s from origin) and how long it lasts."""
        seg = self.segments()
        rows = [
            {
                "after_segment": int(seg.segment[i]),
                "start_s": float(seg.t_stop_s[i]),
                "duration_s": float(seg.t_start_s[i + 1] - seg.t_stop_s[i]),
                "sample_index": int(seg.start_index[i + 1]),
            }
            for i in range(len(seg) - 1)
        ]
        return pd.DataFrame(
            rows, columns=["after_segment", "start_s", "duration_s", "sample_index"]
        )

    def report(self) -> dict[str, Any]:
        return {
            "dirname": str(self.dirname),
            "channels": self.channels,
            "files": [p.name for p in self.files],
            "sampling_rate_hz": self.sampling_rate,
            "ad_bit_volts": [h.ad_bit_volts for h in self.headers],
            "input_inverted": [h.input_inverted for h in self.headers],
            "n_samples": self.n_samples,
            "duration_s": self.n_samples / self.sampling_rate,
            "origin_us": self.origin_us,
            "n_segments": len(self.sections),
            "segments": self.segments().to_dict("records"),
            "gaps": self.gaps().to_dict("records"),
            "gap_tolerance_ms": self.gap_tolerance_ms,
            "partial_records": self.partial_records,
            "events_file": str(self.events_path) if self.events_path else None,
            "events_present": self.events_present,
        }

    # -- data --------------------------------------------------------------------------------
    def _segment_of(self, index: int) -> int:
        return int(np.searchsorted(self.segment_starts, index, side="right") - 1)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Volts ``(n_channels, stop - start)`` for global samples ``start:stop`` (may span
        segments)."""
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"range {start}:{stop} outside 0:{self.n_samples}")
        out = np.empty((self.n_channels, stop - start))
        pos = start
        while pos < stop:
            seg = self._segment_of(pos)
            seg_start = int(self.segment_starts[seg])
            seg_stop = seg_start + self.sections[seg].n_samples
            end = min(stop, seg_stop)
            out[:, pos - start : end - start] = self._read_segment(
                seg, pos - seg_start, end - seg_start
            )
            pos = end
        return out

    def _read_segment(self, seg: int, i0: int, i1: int) -> np.ndarray:
        out = np.empty((self.n_channels, i1 - i0))
        for stream_index, members in self._groups.items():
            rows = [r for r, _ in members]
            raw = self._reader.get_analogsignal_chunk(
                block_index=0,
                seg_index=seg,
                i_start=i0,
                i_stop=i1,
                stream_index=stream_index,
                channel_indexes=[c for _, c in members],
            )
            out[rows] = raw.T * self._gains[rows, None]
        return out

    def iter_chunks(
        self, chunk_samples: int = 65536
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(t0_index, times_s, volts (n_channels, k))``; chunks never span a gap."""
        for t0, volts in self._iter_volts(chunk_samples):
            yield t0, self.clock.times(t0, t0 + volts.shape[1]), volts

    def _iter_volts(self, chunk_samples: int) -> Iterator[tuple[int, np.ndarray]]:
        if chunk_samples < 1:
            raise ValueError("chunk_samples must be >= 1")
        for seg, section in enumerate(self.sections):
            base = int(self.segment_starts[seg])
            for i0 in range(0, section.n_samples, chunk_samples):
                i1 = min(section.n_samples, i0 + chunk_samples)
                yield base + i0, self._read_segment(seg, i0, i1)
                self.release_pages()

    def release_pages(self) -> None:
        """Unmap the .ncs pages neo's memory maps have touched (they stay in the page cache),
        so a long read does not grow this process's RSS. Best effort (uses neo internals)."""
        from ace_assets.io.pages import release_pages

        for seg_maps in getattr(self._reader, "_sigs_memmaps", None) or []:
            release_pages(*seg_maps.values())

    def events(self) -> pd.DataFrame:
        """The ``.nev`` events on this session's clock (see :func:`read_events`)."""
        if self.events_path is None:
            raise AceInputError("no events file named for this session", file=self.dirname)
        if not self.events_path.is_file():
            raise AceInputError("events file not found", file=self.events_path)
        return read_events(self.events_path, self.origin_us)


def write_session_store(
    session: NeuralynxSession,
    path: str | Path,
    *,
    chunk_samples: int = 1 << 16,
    meta: dict[str, Any] | None = None,
) -> ArrayStore:
    """Write all channels as volts into an ArrayStore of shape (n_samples, n_channels) float32.

    Written chunk by chunk (memory: one chunk). Meta carries sampling rate, channel names,
    scales, segments and gaps; ``clock.npz`` inside the store gives sample times
    (:func:`load_clock`).
    """
    info = session.report()
    full_meta = {
        "layout": "(n_samples, n_channels)",
        "units": "V",
        "sampling_rate_hz": session.sampling_rate,
        "channel_names": session.channels,
        **{k: info[k] for k in ("files", "ad_bit_volts", "input_inverted", "origin_us")},
        **{k: info[k] for k in ("segments", "gaps", "partial_records", "gap_tolerance_ms")},
        **(meta or {}),
    }
    from ace_assets.io.pages import release_pages

    shape = (session.n_samples, session.n_channels)
    with ArrayStoreWriter(path, shape, np.float32, full_meta) as writer:
        for t0, volts in session._iter_volts(chunk_samples):
            writer.write(t0, volts.T)
            release_pages(writer.array)
        session.clock.save(writer.tmp / "clock.npz")
        return writer.commit()
