"""Write real Neuralynx ``.ncs`` / ``.nev`` files, so demos and tests exercise the true reader.

The layout is the one Cheetah 6.x writes and ``neo.rawio.NeuralynxRawIO`` reads: a 16 KiB
latin-1 text header padded with NULs, then fixed-size little-endian records.

- ``.ncs`` record (1044 bytes): uint64 timestamp (µs), uint32 channel, uint32 sample rate
  (whole Hz), uint32 number of valid samples, 512 int16 ADC counts.
- ``.nev`` record (184 bytes): int16 nstx, int16 npkt_id, int16 npkt_data_size, uint64
  timestamp (µs), int16 event id, uint16 TTL value, int16 crc, int16 dummy1, int16 dummy2,
  int32 extra[8], 128-byte NUL-padded event string.

Volts are converted to counts as ``round(volts / ADBitVolts)`` (negated when
``input_inverted``, because the reader negates inverted channels back), clipped to the int16
rails as a saturating ADC would.

Record timestamps within a contiguous section are ``round(section_start_us + k * 1e6 / fs)``
for the section's k-th sample, exactly what neo predicts, so a section without gaps is one
neo segment and each requested gap starts a new one.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from types import TracebackType

import numpy as np

from ace_assets.io.neuralynx_format import HEADER_SIZE, SAMPLES_PER_RECORD  # noqa: E402
from ace_assets.io.neuralynx_format import NCS_DTYPE as NCS_RECORD_DTYPE  # noqa: E402
from ace_assets.io.neuralynx_format import NEV_DTYPE as NEV_RECORD_DTYPE  # noqa: E402

assert NEV_RECORD_DTYPE.itemsize == 184

ADC_MAX = 32767
ADC_MIN = -32768
TTL_EVENT_ID = 11  # Cheetah's event id for digital-input (TTL) port changes
STRING_EVENT_ID = 19  # Cheetah's event id for user/system string events
DEFAULT_TIME_CREATED = _dt.datetime(2024, 1, 1, 12, 0, 0)
APPLICATION = 'Cheetah "6.4.2"'


def _header_bytes(lines: list[str], path: Path) -> bytes:
    text = "######## Neuralynx Data File Header\r\n" + "".join(f"{ln}\r\n" for ln in lines)
    raw = text.encode("latin-1")
    if len(raw) > HEADER_SIZE:
        raise ValueError(f"{path}: Neuralynx header text exceeds {HEADER_SIZE} bytes")
    return raw + b"\x00" * (HEADER_SIZE - len(raw))


def _fmt_time(t: _dt.datetime) -> str:
    return t.strftime("%Y/%m/%d %H:%M:%S")


def _fmt_float(x: float) -> str:
    return np.format_float_positional(float(x), trim="-")


def ncs_header(
    path: Path,
    fs: float,
    *,
    ad_bit_volts: float,
    channel_name: str,
    channel_id: int,
    input_inverted: bool,
    time_created: _dt.datetime,
    time_closed: _dt.datetime | None,
) -> bytes:
    """The 16 KiB text header of an ``.ncs`` file (Cheetah 6.4 / DigitalLynxSX style)."""
    input_range_uv = int(round(ADC_MAX * ad_bit_volts * 1e6))
    high_cut = min(9000.0, float(int(0.45 * fs)))
    closed = _fmt_time(time_closed) if time_closed else "File was not closed properly"
    lines = [
        "",
        "-FileType NCS",
        "-FileVersion 3.4",
        "-RecordSize 1044",
        "",
        f"-ApplicationName {APPLICATION}",
        "-AcquisitionSystem AcqSystem1 DigitalLynxSX",
        '-ReferenceChannel "Source 01 Reference"',
        f'-OriginalFileName "C:\\CheetahData\\ace_assets_demo\\{path.name}"',
        f"-TimeCreated {_fmt_time(time_created)}",
        f"-TimeClosed {closed}",
        "",
        "-HardwareSubSystemName AcqSystem1",
        "-HardwareSubSystemType DigitalLynxSX",
        f"-SamplingFrequency {_fmt_float(fs)}",
        f"-ADMaxValue {ADC_MAX}",
        f"-ADBitVolts {_fmt_float(ad_bit_volts)}",
        f"-AcqEntName {channel_name}",
        "-NumADChannels 1",
        f"-ADChannel {int(channel_id)}",
        f"-InputRange {input_range_uv}",
        f"-InputInverted {'True' if input_inverted else 'False'}",
        "",
        "-DSPLowCutFilterEnabled True",
        "-DspLowCutFrequency 0.1",
        "-DspLowCutNumTaps 0",
        "-DspLowCutFilterType DCO",
        "-DSPHighCutFilterEnabled True",
        f"-DspHighCutFrequency {_fmt_float(high_cut)}",
        "-DspHighCutNumTaps 256",
        "-DspHighCutFilterType FIR",
        "-DspDelayCompensation Enabled",
        "-DspFilterDelay_\u00b5s 3984",
    ]
    return _header_bytes(lines, path)


class NcsWriter:
    """Stream samples into one ``.ncs`` file; memory is one partial record, whatever the length.

    ``append`` takes int16 ADC counts or float volts (converted with ``ad_bit_volts``).
    ``add_gap(seconds)`` ends the current record (possibly partial) and starts the next
    record ``seconds`` later than contiguous sampling would put it. ``close`` writes any
    remaining samples as a final partial record and stamps ``-TimeClosed`` in the header.
    """

    def __init__(
        self,
        path: str | Path,
        fs: float,
        *,
        start_us: int = 0,
        ad_bit_volts: float = 3.0e-8,
        channel_name: str = "CSC1",
        channel_id: int = 0,
        input_inverted: bool = False,
        time_created: _dt.datetime | None = None,
    ) -> None:
        if not fs > 0:
            raise ValueError(f"sampling rate must be positive, got {fs}")
        if not ad_bit_volts > 0:
            raise ValueError(f"ad_bit_volts must be positive, got {ad_bit_volts}")
        if start_us < 0:
            raise ValueError(f"start_us must be >= 0, got {start_us}")
        if any(c.isspace() for c in channel_name) or not channel_name:
            raise ValueError(
                f"channel_name must be one word (neo splits on spaces): {channel_name!r}"
            )
        self.path = Path(path)
        self.fs = float(fs)
        self.ad_bit_volts = float(ad_bit_volts)
        self.channel_name = channel_name
        self.channel_id = int(channel_id)
        self.input_inverted = bool(input_inverted)
        self.time_created = time_created or DEFAULT_TIME_CREATED
        self._us_per_sample = 1e6 / self.fs
        self._section_start_us = float(start_us)
        self._section_written = 0  # samples of the current section already in written records
        self._pending = np.empty(0, dtype=np.int16)
        self.n_samples = 0
        self.n_records = 0
        self.last_record_valid = 0
        self._end_us = float(start_us)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(self._header(None))

    def _header(self, time_closed: _dt.datetime | None) -> bytes:
        return ncs_header(
            self.path,
            self.fs,
            ad_bit_volts=self.ad_bit_volts,
            channel_name=self.channel_name,
            channel_id=self.channel_id,
            input_inverted=self.input_inverted,
            time_created=self.time_created,
            time_closed=time_closed,
        )

    def to_counts(self, samples: np.ndarray) -> np.ndarray:
        """int16 counts as the ADC would have stored them (floats are volts)."""
        arr = np.asarray(samples)
        if arr.ndim != 1:
            raise ValueError(f"{self.path}: samples must be 1-D, got shape {arr.shape}")
        if arr.dtype == np.int16:
            return arr
        if np.issubdtype(arr.dtype, np.integer):
            if arr.size and (arr.min() < ADC_MIN or arr.max() > ADC_MAX):
                raise ValueError(f"{self.path}: integer samples must fit int16 ADC counts")
            return arr.astype(np.int16)
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{self.path}: float (volt) samples contain NaN or inf")
            sign = -1.0 if self.input_inverted else 1.0
            counts = np.rint(sign * arr.astype(np.float64) / self.ad_bit_volts)
            return np.clip(counts, ADC_MIN, ADC_MAX).astype(np.int16)
        raise ValueError(
            f"{self.path}: samples must be int16 counts or float volts, not {arr.dtype}"
        )

    def append(self, samples: np.ndarray, *, gaps: list[tuple[int, float]] | None = None) -> None:
        """Add samples; ``gaps`` are (index into ``samples``, seconds) inserted before that index."""
        counts = self.to_counts(samples)
        cuts: dict[int, float] = {}
        for index, seconds in gaps or []:
            if not 0 <= int(index) <= counts.size:
                raise ValueError(f"gap index {index} outside 0..{counts.size}")
            cuts[int(index)] = cuts.get(int(index), 0.0) + float(seconds)
        start = 0
        for index in sorted(cuts):
            self._push(counts[start:index])
            self.add_gap(cuts[index])
            start = index
        self._push(counts[start:])

    def add_gap(self, seconds: float) -> None:
        """End the current record and start the next one ``seconds`` later than contiguous."""
        if seconds < 0:
            raise ValueError(f"gap must be >= 0 s, got {seconds}")
        self._flush_partial()
        self._section_start_us += self._section_written * self._us_per_sample + seconds * 1e6
        self._section_written = 0

    def _push(self, counts: np.ndarray) -> None:
        if counts.size == 0:
            return
        buf = np.concatenate([self._pending, counts]) if self._pending.size else counts
        n_full = buf.size // SAMPLES_PER_RECORD
        if n_full:
            blocks = buf[: n_full * SAMPLES_PER_RECORD].reshape(n_full, SAMPLES_PER_RECORD)
            self._write_records(blocks, np.full(n_full, SAMPLES_PER_RECORD))
        self._pending = buf[n_full * SAMPLES_PER_RECORD :].copy()

    def _flush_partial(self) -> None:
        if self._pending.size:
            block = np.zeros((1, SAMPLES_PER_RECORD), dtype=np.int16)
            block[0, : self._pending.size] = self._pending
            self._write_records(block, np.array([self._pending.size]))
            self._pending = np.empty(0, dtype=np.int16)

    def _write_records(self, blocks: np.ndarray, nb_valid: np.ndarray) -> None:
        k = blocks.shape[0]
        offsets = self._section_written + np.concatenate([[0], np.cumsum(nb_valid)[:-1]])
        rec = np.zeros(k, dtype=NCS_RECORD_DTYPE)
        rec["timestamp"] = np.rint(self._section_start_us + offsets * self._us_per_sample)
        rec["channel_id"] = self.channel_id
        rec["sample_rate"] = int(round(self.fs))
        rec["nb_valid"] = nb_valid
        rec["samples"] = blocks
        self._fh.write(rec.tobytes())
        n_new = int(nb_valid.sum())
        self._section_written += n_new
        self.n_samples += n_new
        self.n_records += k
        self.last_record_valid = int(nb_valid[-1])
        self._end_us = self._section_start_us + self._section_written * self._us_per_sample

    def close(self) -> Path:
        """Write the last (partial) record and the final header; returns the file path."""
        if self._fh.closed:
            return self.path
        self._flush_partial()
        duration = _dt.timedelta(microseconds=max(0.0, self._end_us))
        self._fh.seek(0)
        self._fh.write(self._header(self.time_created + duration))
        self._fh.close()
        return self.path

    def __enter__(self) -> NcsWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_ncs(
    path: str | Path,
    samples: np.ndarray,
    fs: float,
    *,
    start_us: int = 0,
    ad_bit_volts: float = 3.0e-8,
    channel_name: str = "CSC1",
    channel_id: int = 0,
    input_inverted: bool = False,
    gaps: list[tuple[int, float]] | None = None,
    partial_last: bool = False,
    time_created: _dt.datetime | None = None,
) -> Path:
    """Write one channel to ``path`` as a Neuralynx ``.ncs`` file.

    ``samples``: int16 ADC counts, or float volts. ``gaps``: (sample index, seconds) pairs;
    the sample at that index starts a new record placed ``seconds`` after where contiguous
    sampling would put it (the record before it is partial unless the index is a multiple of
    512 within its section). All samples are always written: a remainder that does not fill
    the last record becomes a partial final record whatever ``partial_last`` says;
    ``partial_last=True`` asserts that outcome and raises ValueError if the sample count
    fills whole records. Channels that share a directory need distinct ``channel_id`` or
    ``channel_name`` (neo keys channels by the pair).
    """
    counts_total = int(np.asarray(samples).shape[0])
    writer = NcsWriter(
        path,
        fs,
        start_us=start_us,
        ad_bit_volts=ad_bit_volts,
        channel_name=channel_name,
        channel_id=channel_id,
        input_inverted=input_inverted,
        time_created=time_created,
    )
    try:
        writer.append(samples, gaps=gaps)
        if partial_last and writer._pending.size == 0:
            raise ValueError(
                f"{writer.path}: partial_last=True but the {counts_total} samples after the last "
                f"gap fill whole {SAMPLES_PER_RECORD}-sample records; pass a count that does not"
            )
    except BaseException:
        writer._fh.close()
        Path(writer.path).unlink(missing_ok=True)
        raise
    return writer.close()


def ttl_event_string(ttl: int) -> str:
    """The event string Cheetah writes for a digital-input change."""
    return f"TTL Input on AcqSystem1_0 board 0 port 0 value (0x{int(ttl) & 0xFFFF:04X})."


def digital_lynx_event_string(word: int) -> str:
    """The event string Cheetah 5.6 on a Digital Lynx writes for a parallel-port change."""
    return f"Digital Lynx Parallel Input Port TTL (0x{int(word) & 0xFFFF:04X})"


def write_digital_lynx_nev(
    path: str | Path,
    timestamps_us: np.ndarray,
    words: np.ndarray,
    strings: list[tuple[int, str]] = (),
    *,
    time_created: _dt.datetime | None = None,
) -> Path:
    """Events as a Cheetah 5.6 Digital Lynx writes them: every port change is event_id 0 with
    the whole parallel-port word in ``ttl`` (words above 0x7FFF stored as negative int16) and
    the string ``Digital Lynx Parallel Input Port TTL (0x....)``. ``strings``: extra
    ``(timestamp_us, text)`` events such as "Starting Recording" (event_id 0, ttl 0)."""
    ts = np.asarray(timestamps_us, dtype=np.int64)
    w = np.asarray(words, dtype=np.int64) & 0xFFFF
    stored = np.where(w > 0x7FFF, w - 0x10000, w)  # the int16 a Digital Lynx export shows
    rows = [
        (int(t), int(v), digital_lynx_event_string(int(v) & 0xFFFF))
        for t, v in zip(ts, stored, strict=True)
    ]
    rows += [(int(t), 0, text) for t, text in strings]
    rows.sort(key=lambda r: r[0])
    return write_nev(
        path,
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        [r[2] for r in rows],
        event_ids=np.int16(0),
        time_created=time_created,
        application='Cheetah "5.6.0"',
    )


def write_nev(
    path: str | Path,
    timestamps_us: np.ndarray,
    ttl_values: np.ndarray,
    strings: list[str] | None = None,
    *,
    event_ids: np.ndarray | None = None,
    time_created: _dt.datetime | None = None,
    application: str = APPLICATION,
) -> Path:
    """Write a Neuralynx ``.nev`` events file.

    ``strings``: one per event (default: Cheetah's TTL-input string for each TTL value).
    ``event_ids`` default: 11 (TTL) for events with the default string or a non-zero TTL,
    19 (string event, e.g. "Starting Recording") otherwise.
    """
    path = Path(path)
    ts = np.asarray(timestamps_us)
    ttl = np.asarray(ttl_values)
    if ts.ndim != 1 or ttl.shape != ts.shape:
        raise ValueError(f"{path}: timestamps_us and ttl_values must be 1-D of equal length")
    if ts.size and (np.any(ts < 0) or np.any(np.diff(ts.astype(np.float64)) < 0)):
        raise ValueError(f"{path}: event timestamps must be non-negative and non-decreasing")
    if ttl.size and (ttl.min() < -0x8000 or ttl.max() > 0xFFFF):
        raise ValueError(f"{path}: TTL values must fit uint16 (or int16 for words above 0x7FFF)")
    custom = strings is not None
    if custom and len(strings) != ts.size:
        raise ValueError(f"{path}: strings must have one entry per event ({ts.size})")
    texts = list(strings) if custom else [ttl_event_string(v) for v in ttl]
    rec = np.zeros(ts.size, dtype=NEV_RECORD_DTYPE)
    rec["nstx"] = 800
    rec["npkt_id"] = 102
    rec["npkt_data_size"] = 2
    rec["timestamp"] = np.rint(ts).astype(np.uint64)
    rec["ttl"] = (ttl.astype(np.int64) & 0xFFFF).astype(np.uint16)  # int16 -20480 -> 0xB000
    if event_ids is not None:
        rec["event_id"] = np.broadcast_to(np.asarray(event_ids, dtype=np.int16), ts.shape)
    else:
        is_ttl = (ttl != 0) | (not custom)
        rec["event_id"] = np.where(is_ttl, TTL_EVENT_ID, STRING_EVENT_ID)
    encoded = []
    for text in texts:
        raw = text.encode("latin-1")
        if len(raw) > 127:
            raise ValueError(f"{path}: event string longer than 127 bytes: {text!r}")
        encoded.append(raw)
    rec["event_string"] = encoded if encoded else []
    created = time_created or DEFAULT_TIME_CREATED
    span = float(ts[-1]) if ts.size else 0.0
    lines = [
        "",
        "-FileType Event",
        "-FileVersion 3.4",
        "-RecordSize 184",
        "",
        f"-ApplicationName {application}",
        "-AcquisitionSystem AcqSystem1 DigitalLynxSX",
        f'-OriginalFileName "C:\\CheetahData\\ace_assets_demo\\{path.name}"',
        f"-TimeCreated {_fmt_time(created)}",
        f"-TimeClosed {_fmt_time(created + _dt.timedelta(microseconds=span))}",
        "",
        "-HardwareSubSystemName AcqSystem1",
        "-HardwareSubSystemType DigitalLynxSX",
        "-AcqEntName Events",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(_header_bytes(lines, path))
        fh.write(rec.tobytes())
    return path
