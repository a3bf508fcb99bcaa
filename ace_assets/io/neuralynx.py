"""Read a Neuralynx session (``.ncs`` channels + ``.nev`` events) in bounded blocks, as volts.

Every file's header and size is validated first, so bad input fails with an
:class:`AceInputError` naming the file. Samples are read from the records directly (plain
file reads of whole 1044-byte records; the format is in :mod:`neuralynx_format`): counts
times the header's signed ``ADBitVolts``, which is what the vendor's ``Nlx2MatCSC`` gives.

Streams and the analysis grid. Channels of one sampling rate form a stream. The line's
analysis grid is the stream of the lowest rate; channels of other rates are resampled onto
it (anti-alias FIR, polyphase decimation at the grid's sample times) and each is also kept
at its own rate as a stream of its own (:func:`write_stream_stores`). Channels whose pauses
differ are placed on the grid by their record timestamps (:mod:`neuralynx_grid`).

Clock and time origin. A sample's time is its record's hardware timestamp plus its offset
within the record at the header sampling rate, so pauses and the small drift between the
nominal rate and the acquisition clock are honoured exactly. Times are seconds from
``origin_us``, the earliest first sample among the requested channels; ``.nev`` event times
use the same origin.

Pauses. A pause up to ``max_fill_s`` is filled by linear interpolation and listed; a longer
one is a segment boundary that no filter or window crosses. Samples one channel lacks while
others have them follow the same rule per channel (filled, or NaN in a segment of their own).

Store layout. :func:`write_session_store` writes ``(n_samples, n_channels)`` float32 volts
(time is the store's frame axis); the per-record clock goes beside the data as ``clock.npz``
and :func:`load_clock` reconstructs the time of any sample.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ace_assets.errors import AceInputError
from ace_assets.io.confined import confined_file
from ace_assets.io.neuralynx_assemble import GridReader, ResampledSource
from ace_assets.io.neuralynx_format import (
    HEADER_MAGIC,
    HEADER_SIZE,
    NCS_RECORD_SIZE,
    NEV_DTYPE,
    NEV_RECORD_SIZE,
    SAMPLES_PER_RECORD,
)
from ace_assets.io.neuralynx_grid import (
    SampleClock,
    SampleGrid,
    build_grid,
    coverage_from_times,
    load_clock,
)
from ace_assets.io.neuralynx_records import ChannelRecords, record_index
from ace_assets.io.row_file import RowFile
from ace_assets.io.store import ArrayStore, ArrayStoreWriter

__all__ = [
    "NcsHeader",
    "NeuralynxSession",
    "SampleClock",
    "load_clock",
    "read_events",
    "read_ncs_header",
    "record_index",
    "write_session_store",
    "write_stream_stores",
]

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


@dataclass
class Stream:
    """Channels of one sampling rate, on their own grid."""

    fs: float
    columns: list[int]  # positions in the session's channel list
    grid: SampleGrid
    reader: GridReader

    @property
    def name(self) -> str:
        return f"{self.fs:g}Hz"


@dataclass(frozen=True)
class NeuralynxReport:
    """How one session's channels were put on the analysis grid: JSON-ready throughout."""

    dirname: str
    channels: list[str]
    files: list[str]
    sampling_rate_hz: float
    """The analysis grid's rate."""
    channel_rates_hz: list[float]
    """Each channel's own rate, in ``channels`` order."""
    streams: list[dict[str, Any]]
    """One row per rate: the grid's channels, then each resampled group kept as a stream."""
    resampled_channels: list[str]
    ad_bit_volts: list[float]
    input_inverted: list[bool]
    n_samples: int
    duration_s: float
    origin_us: int
    """Neuralynx timestamp (µs) of grid time 0: the earliest first record of any channel."""
    n_segments: int
    segments: list[dict[str, Any]]
    """Per segment: grid sample range and time span (s from the origin)."""
    gaps: list[dict[str, Any]]
    """Pauses of the whole grid: start, duration, and whether they were filled."""
    channel_runs: list[dict[str, Any]]
    """Per channel, grid ranges without a recorded sample, ``filled`` or ``nan``."""
    max_fill_s: float
    gap_tolerance_ms: float | None
    partial_records: list[dict[str, Any]]
    """Records holding fewer than 512 samples (usually the last of a file)."""
    events_file: str | None
    events_present: bool

    def manifest(self) -> dict[str, Any]:
        """Every field by name, for the asset's manifest."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def resampling_notes(self) -> list[str]:
        """One sentence per channel resampled onto the grid, for the log and the UI."""
        rates = dict(zip(self.channels, self.channel_rates_hz, strict=True))
        return [
            f"{name} ({rates[name]:g} Hz) resampled to the {self.sampling_rate_hz:g} Hz "
            "analysis grid (polyphase anti-alias FIR); its own stream is kept at its rate"
            for name in self.resampled_channels
        ]


class NeuralynxSession:
    """The requested channels of one recording directory, on one analysis grid.

    ``channels``: channel names, each a ``<name>.ncs`` file in ``dirname`` (case-insensitive).
    ``events_filename``: the ``.nev`` file name, or None; its absence is reported by
    ``events_present`` and only raises when :meth:`events` is called.
    ``max_fill_s``: pauses (and per-channel missing runs) up to this long are filled by
    linear interpolation; longer ones are segment boundaries / NaN.
    ``gap_tolerance_ms``: a record starting this much later than contiguous sampling is a
    pause (default: one sample period of its stream, as in neo).
    ``confine_to`` (data_path): each file is resolved and refused if it leads outside it.
    """

    def __init__(
        self,
        dirname: str | Path,
        channels: list[str],
        events_filename: str | None = None,
        *,
        max_fill_s: float = 0.0,
        gap_tolerance_ms: float | None = None,
        confine_to: str | Path | None = None,
    ) -> None:
        self.dirname = Path(dirname)
        if not self.dirname.is_dir():
            raise AceInputError("ephys directory not found", file=self.dirname)
        if not channels:
            raise AceInputError("no channels requested", file=self.dirname)
        if not max_fill_s >= 0:
            raise AceInputError(f"max_fill_s must be >= 0, got {max_fill_s}", column="max_fill_s")
        self.channels = list(channels)
        self.files = [_resolve_channel_file(self.dirname, c) for c in self.channels]
        if confine_to is not None:  # read the checked targets, never a link out of data_path
            self.files = [confined_file(p, confine_to) for p in self.files]
        repeated = [
            c for c, p in zip(self.channels, self.files, strict=True) if self.files.count(p) > 1
        ]
        if repeated:
            raise AceInputError(f"channels {repeated} requested more than once", file=self.dirname)
        self.headers = [read_ncs_header(p) for p in self.files]
        for h in self.headers:
            if h.n_records == 0:
                raise AceInputError("NCS file has a header but no sample records", file=h.path)
        self._check_unique_keys()
        self.max_fill_s = float(max_fill_s)
        self.gap_tolerance_ms = gap_tolerance_ms
        self.events_path = self.dirname / events_filename if events_filename else None
        if confine_to is not None and self.events_path is not None and self.events_path.is_file():
            self.events_path = confined_file(self.events_path, confine_to)
        self._records = [
            ChannelRecords.scan(h.path, h.sampling_rate, h.volts_per_count, h.n_records)
            for h in self.headers
        ]
        for k, rec in enumerate(self._records):  # channels of one system share timestamps:
            for other in self._records[:k]:  # keep one copy (memory per hour of 32 kHz)
                if np.array_equal(rec.timestamps_us, other.timestamps_us):
                    rec.timestamps_us = other.timestamps_us
                    break
        self.origin_us = int(min(int(r.timestamps_us[0]) for r in self._records))
        self._build_streams()

    # -- structure ---------------------------------------------------------------------------
    def _check_unique_keys(self) -> None:
        seen: dict[tuple[str, str], Path] = {}
        for h in self.headers:
            key = (h.channel_name, str(h.channel_id if h.channel_id is not None else "unknown"))
            if key in seen:
                raise AceInputError(
                    f"{h.path.name} and {seen[key].name} both declare -AcqEntName {key[0]} "
                    f"-ADChannel {key[1]}; two files of one channel cannot be told apart",
                    file=self.dirname,
                )
            seen[key] = h.path

    def _grid(
        self, fs: float, columns: list[int], extra: list[tuple[np.ndarray, np.ndarray]] | None
    ) -> SampleGrid:
        tol = None if self.gap_tolerance_ms is None else self.gap_tolerance_ms * 1000.0
        return build_grid(
            [self._records[c] for c in columns],
            fs,
            origin_us=self.origin_us,
            max_fill_s=self.max_fill_s,
            tolerance_us=tol,
            extra_coverage=extra,
        )

    def _build_streams(self) -> None:
        by_rate: dict[float, list[int]] = {}
        for c, h in enumerate(self.headers):
            by_rate.setdefault(h.sampling_rate, []).append(c)
        self.sampling_rate = min(by_rate)
        self.streams: list[Stream] = []
        for fs in sorted(by_rate, reverse=True):
            if fs == self.sampling_rate:
                continue
            cols = by_rate[fs]
            grid = self._grid(fs, cols, None)
            reader = GridReader(grid, [self._records[c] for c in cols], self._max_fill(fs))
            self.streams.append(Stream(fs, cols, grid, reader))
        common = by_rate[self.sampling_rate]
        # where each resampled channel has its own (recorded, unfilled) samples, in time
        spans = {
            c: self._recorded_spans(s, k) for s in self.streams for k, c in enumerate(s.columns)
        }
        probe = self._grid(self.sampling_rate, common, None)
        extra = {
            c: coverage_from_times(probe.clock, sp, probe.n_samples) for c, sp in spans.items()
        }
        order = [c for c in range(len(self.channels)) if c not in common]
        self.grid = self._grid(self.sampling_rate, common, [extra[c] for c in order])
        self.clock = self.grid.clock
        sources: list[Any] = []
        self._resampled: dict[int, ResampledSource] = {}
        for c in range(len(self.channels)):
            if c in common:
                sources.append(self._records[c])
                continue
            stream = next(s for s in self.streams if c in s.columns)
            src = ResampledSource(
                stream.reader, stream.columns.index(c), stream.grid.clock, self.clock, extra[c]
            )
            self._resampled[c] = src
            sources.append(src)
        # grid-table rows follow build order (record channels, then resampled): reorder
        table_order = common + order
        self.filled = [self.grid.filled[table_order.index(c)] for c in range(len(self.channels))]
        self.masked = [self.grid.masked[table_order.index(c)] for c in range(len(self.channels))]
        self.reader = GridReader(self.grid, sources, self._max_fill(self.sampling_rate))
        self.n_samples = self.grid.n_samples
        self.segment_starts = np.array([a for a, _ in self.grid.segments], dtype=np.int64)

    def _max_fill(self, fs: float) -> int:
        return int(np.floor(self.max_fill_s * fs + 1e-9))

    def _recorded_spans(self, stream: Stream, k: int) -> list[tuple[float, float]]:
        """Time spans where column k of a stream holds recorded (not filled, not NaN) samples."""
        starts, stops = self._records[stream.columns[k]].present_intervals()
        clock = stream.grid.clock
        first = clock.times_of(starts)
        last = clock.times_of(np.maximum(stops - 1, starts))
        return list(zip(first.tolist(), last.tolist(), strict=True))

    # -- reporting ---------------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return len(self.files)

    @property
    def sections(self) -> list[tuple[int, int]]:
        return list(self.grid.segments)

    @property
    def events_present(self) -> bool:
        return self.events_path is not None and self.events_path.is_file()

    @property
    def partial_records(self) -> list[dict[str, Any]]:
        """Records holding fewer than 512 samples (the last record of a file usually does)."""
        rows = []
        for path, rec in zip(self.files, self._records, strict=True):
            for r in np.flatnonzero(rec.nb_valid < SAMPLES_PER_RECORD).tolist():
                rows.append({"file": path.name, "record": r, "n_valid": int(rec.nb_valid[r])})
        return rows

    def segments(self) -> pd.DataFrame:
        """One row per segment: grid sample range and time span (s from origin)."""
        rows = []
        for i, (a, b) in enumerate(self.grid.segments):
            t = self.clock.times_of(np.array([a, b - 1]))
            rows.append(
                {
                    "segment": i,
                    "start_index": int(a),
                    "stop_index": int(b),
                    "t_start_s": float(t[0]),
                    "t_stop_s": float(t[1] + 1.0 / self.sampling_rate),
                }
            )
        return pd.DataFrame(rows)

    def gaps(self) -> pd.DataFrame:
        """Pauses of the analysis grid (every channel silent): start, duration, filled or not."""
        cols = ["start_s", "duration_s", "sample_index", "filled", "filled_samples"]
        return pd.DataFrame(self.grid.pauses, columns=cols)

    def channel_runs(self) -> pd.DataFrame:
        """Per channel, grid ranges without a recorded sample: ``filled`` or ``nan``."""
        rows = []
        for c, name in enumerate(self.channels):
            for kind, runs in (("filled", self.filled[c]), ("nan", self.masked[c])):
                for a, b in runs:
                    rows.append(
                        {
                            "channel": name,
                            "column": c,
                            "kind": kind,
                            "start_index": int(a),
                            "stop_index": int(b),
                            "start_s": float(self.clock.times_of(np.array([a]))[0]),
                            "duration_s": (b - a) / self.sampling_rate,
                        }
                    )
        cols = ["channel", "column", "kind", "start_index", "stop_index", "start_s", "duration_s"]
        return pd.DataFrame(rows, columns=cols)

    def stream_report(self) -> list[dict[str, Any]]:
        rows = [
            {
                "sampling_rate_hz": self.sampling_rate,
                "channels": [
                    self.channels[c]
                    for c in range(self.n_channels)
                    if self.headers[c].sampling_rate == self.sampling_rate
                ],
                "role": "analysis grid",
            }
        ]
        for s in self.streams:
            rows.append(
                {
                    "sampling_rate_hz": s.fs,
                    "channels": [self.channels[c] for c in s.columns],
                    "role": f"own stream; resampled to {self.sampling_rate:g} Hz for the analysis "
                    f"grid (polyphase FIR, {decimation_ratio(s.fs, self.sampling_rate)})",
                    "n_samples": s.grid.n_samples,
                    "segments": len(s.grid.segments),
                }
            )
        return rows

    def report(self) -> NeuralynxReport:
        runs = self.channel_runs()
        return NeuralynxReport(
            dirname=str(self.dirname),
            channels=self.channels,
            files=[p.name for p in self.files],
            sampling_rate_hz=self.sampling_rate,
            channel_rates_hz=[h.sampling_rate for h in self.headers],
            streams=self.stream_report(),
            resampled_channels=[self.channels[c] for c in self._resampled],
            ad_bit_volts=[h.ad_bit_volts for h in self.headers],
            input_inverted=[h.input_inverted for h in self.headers],
            n_samples=self.n_samples,
            duration_s=self.n_samples / self.sampling_rate,
            origin_us=self.origin_us,
            n_segments=len(self.grid.segments),
            segments=self.segments().to_dict("records"),
            gaps=self.gaps().to_dict("records"),
            channel_runs=runs.to_dict("records"),
            max_fill_s=self.max_fill_s,
            gap_tolerance_ms=self.gap_tolerance_ms,
            partial_records=self.partial_records,
            events_file=str(self.events_path) if self.events_path else None,
            events_present=self.events_present,
        )

    # -- data --------------------------------------------------------------------------------
    def read(self, start: int, stop: int) -> np.ndarray:
        """Volts ``(n_channels, stop - start)`` for grid samples ``start:stop``."""
        return self.reader.read(start, stop).T

    def iter_chunks(
        self, chunk_samples: int = 65536
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(t0_index, times_s, volts (n_channels, k))``; chunks never span a segment."""
        for t0, volts in self._iter_volts(chunk_samples):
            yield t0, self.clock.times(t0, t0 + volts.shape[1]), volts

    def _iter_volts(self, chunk_samples: int) -> Iterator[tuple[int, np.ndarray]]:
        if chunk_samples < 1:
            raise ValueError("chunk_samples must be >= 1")
        for s0, s1 in self.grid.segments:
            for a in range(s0, s1, chunk_samples):
                b = min(s1, a + chunk_samples)
                yield a, self.reader.read(a, b).T

    def events(self) -> pd.DataFrame:
        """The ``.nev`` events on this session's clock (see :func:`read_events`)."""
        if self.events_path is None:
            raise AceInputError("no events file named for this session", file=self.dirname)
        if not self.events_path.is_file():
            raise AceInputError("events file not found", file=self.events_path)
        return read_events(self.events_path, self.origin_us)


def cache_block_samples(n_channels: int, block_bytes: int = 1 << 20) -> int:
    """Samples per block so one float32 block of all channels is about ``block_bytes``, in
    whole records: the scaling from int16 then stays in a core's cache (1 MiB blocks of 8
    channels took 1.65 ns per value here, 4 MiB ones 2.2 ns)."""
    records = max(1, block_bytes // (4 * max(1, n_channels) * SAMPLES_PER_RECORD))
    return records * SAMPLES_PER_RECORD


def decimation_ratio(fs_in: float, fs_out: float) -> str:
    ratio = fs_in / fs_out
    return f"down {ratio:g}" if float(ratio).is_integer() else f"ratio {ratio:.4g}, nearest sample"


def _grid_meta(grid: SampleGrid, names: list[str], fs: float) -> dict[str, Any]:
    clock = grid.clock
    segments = []
    for i, (a, b) in enumerate(grid.segments):
        t = clock.times_of(np.array([a, b - 1]))
        segments.append(
            {
                "segment": i,
                "start_index": int(a),
                "stop_index": int(b),
                "t_start_s": float(t[0]),
                "t_stop_s": float(t[1] + 1.0 / fs),
            }
        )
    runs = [
        {"channel": names[c], "column": c, "kind": kind, "start_index": a, "stop_index": b}
        for c in range(len(names))
        for kind, table in (("filled", grid.filled), ("nan", grid.masked))
        for a, b in table[c]
    ]
    return {"segments": segments, "gaps": grid.pauses, "channel_runs": runs}


def _write_grid_store(
    reader: GridReader,
    path: str | Path,
    meta: dict[str, Any],
    chunk_samples: int,
    finish: Any = None,
) -> ArrayStore:
    """Stream a grid reader into a store; ``finish(meta)`` may add what writing measured."""
    n, n_ch = reader.n_samples, len(reader.sources)
    scales = reader.scales  # int16 counts where the grid is channels' counts (io.scaled_store)
    with ArrayStoreWriter(path, (n, n_ch), np.float32, meta, scale=scales) as writer:
        block = np.empty((min(chunk_samples, n), n_ch), dtype=np.float32)
        counts = np.empty(block.shape, dtype=np.int16)
        encoder = writer.encoder
        # written through the file by a second thread, writeback started early: see row_file
        with RowFile(writer.array, writeback=True, background=True) as rows:
            for s0, s1 in reader.grid.segments:
                for a in range(s0, s1, chunk_samples):
                    b = min(s1, a + chunk_samples)
                    if encoder is not None and reader.counts_into(a, b, counts[: b - a]):
                        rows.write(a, counts[: b - a])
                        continue
                    reader.read_into(a, b, block[: b - a])
                    out = block[: b - a] if encoder is None else encoder.encode(a, block[: b - a])
                    rows.write(a, out)
        reader.grid.clock.save(writer.tmp / "clock.npz")
        if finish is not None:
            finish(writer.meta)
        return writer.commit()


def write_session_store(
    session: NeuralynxSession,
    path: str | Path,
    *,
    chunk_samples: int | None = None,
    meta: dict[str, Any] | None = None,
) -> ArrayStore:
    """Write all channels as volts on the analysis grid: ``(n_samples, n_channels)`` float32.

    Written a block at a time (memory: one block per channel; by default a block of about
    1 MiB, :func:`cache_block_samples`). Meta carries the sampling
    rate, channel names, scales, segments, pauses, per-channel filled / NaN runs and which
    channels were resampled; ``clock.npz`` inside the store gives sample times.
    """
    info = session.report()
    full_meta = {
        "layout": "(n_samples, n_channels)",
        "units": "V",
        "sampling_rate_hz": session.sampling_rate,
        "channel_names": session.channels,
        "files": info.files,
        "ad_bit_volts": info.ad_bit_volts,
        "input_inverted": info.input_inverted,
        "origin_us": info.origin_us,
        "segments": info.segments,
        "gaps": info.gaps,
        "channel_runs": info.channel_runs,
        "partial_records": info.partial_records,
        "max_fill_s": info.max_fill_s,
        "gap_tolerance_ms": info.gap_tolerance_ms,
        "streams": info.streams,
        "resampled": {
            session.channels[c]: {
                "from_hz": session.headers[c].sampling_rate,
                "to_hz": session.sampling_rate,
                "method": "polyphase FIR (scipy resample_poly design), nearest native sample",
            }
            for c in session._resampled
        },
        **(meta or {}),
    }

    def finish(written: dict[str, Any]) -> None:
        for c, src in session._resampled.items():
            written["resampled"][session.channels[c]]["max_time_offset_us"] = src.max_offset_us

    chunk = chunk_samples or cache_block_samples(session.n_channels)
    return _write_grid_store(session.reader, path, full_meta, chunk, finish)


def write_stream_stores(
    session: NeuralynxSession, folder: str | Path, *, chunk_samples: int = 1 << 16
) -> dict[str, str]:
    """Each channel group whose rate differs from the analysis grid, at its own rate:
    ``<folder>/stream_<rate>Hz.npyd``. Returns {stream name: store path}."""
    out: dict[str, str] = {}
    for s in session.streams:
        names = [session.channels[c] for c in s.columns]
        meta = {
            "layout": "(n_samples, n_channels)",
            "units": "V",
            "sampling_rate_hz": s.fs,
            "channel_names": names,
            "origin_us": session.origin_us,
            "files": [session.files[c].name for c in s.columns],
            "ad_bit_volts": [session.headers[c].ad_bit_volts for c in s.columns],
            **_grid_meta(s.grid, names, s.fs),
        }
        path = Path(folder) / f"stream_{s.name}.npyd"
        _write_grid_store(s.reader, path, meta, chunk_samples)
        out[s.name] = str(path)
    return out
