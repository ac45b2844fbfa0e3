"""One recording: its channels, its sweeps and where each sweep starts (``replay.contents``).

ABF files (``.abf``) are read here with pyabf, every sweep starting where pyabf puts its first
sample (``absoluteTime=True``); AxoGraph (``.axgd``, ``.axgx``), Spike2 (``.smr``, ``.smrx``) and
WinWCP (``.wcp``) files through neo, and NWB (``.nwb``) files through pynwb, by ``replay.formats``.
Whatever the format, a recording is the same to replay, classify and train.
"""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

import numpy as np
import pyabf

from .contents import Channel, Contents, RecordingError, Sweep, check_contents, checked_rate, placed
from .formats import (AXOGRAPH_SUFFIXES, NWB_SUFFIXES, SPIKE2_SUFFIXES, WINWCP_SUFFIXES, read_axograph, read_nwb,
                      read_spike2, read_winwcp)

# The ABF2 section map: 18 entries of (block, bytes per entry, entries) from byte 76, in this order.
ABF2_SECTIONS = ("protocol", "ADC", "DAC", "epoch", "ADC per DAC", "epoch per DAC", "user list", "stats region",
                 "math", "strings", "data", "tag", "scope", "delta", "voice tag", "synch array", "annotation",
                 "stats")
ABF1_HEADER_BYTES = 6144
# pyabf scales int16 samples into float32: gain x 32768 + offset must stay a float32
FLOAT32_MAX = float(np.finfo(np.float32).max)

OPERATION_MODES = {
    1: "event-driven (variable length)",
    2: "event-driven (fixed length)",
    3: "gap-free",
    4: "high-speed oscilloscope",
    5: "episodic",
}


RECORDING_SUFFIXES = (".abf", *AXOGRAPH_SUFFIXES, *NWB_SUFFIXES, *SPIKE2_SUFFIXES, *WINWCP_SUFFIXES)
__all__ = ["Channel", "Recording", "RecordingError", "Sweep", "RECORDING_SUFFIXES"]


class Recording:
    """An ABF1 or ABF2 file (any acquisition mode), an AxoGraph, NWB, Spike2 or WinWCP file, any number
    of channels.

    Attributes
    ----------
    path, name : the file and its stem (the stream name on the wire)
    format, mode : e.g. ``ABF 2.6.0.0``, ``AxoGraph``, ``NWB (icephys)``, ``Spike2``, ``WinWCP``;
        gap-free, episodic, ...
    abf_version : the ABF header's version (None for other formats)
    sample_rate : float, per channel, in Hz
    channels : list of :class:`Channel`
    sweeps : list of :class:`Sweep`, each with its start on the sample counter
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        contents = read_contents(self.path)
        self.name = self.path.stem
        self.format = contents.format
        self.abf_version = contents.format[len("ABF "):] if contents.format.startswith("ABF ") else None
        self.mode = contents.mode
        self.sample_rate = contents.sample_rate
        self.channels = contents.channels
        self.sweeps = contents.sweeps
        self.started_at = contents.started_at
        self.recorded_on = self.started_at.date().isoformat() if self.started_at else None

    @classmethod
    def from_traces(cls, name: str, sample_rate: float, channels: list[Channel],
                    traces: list[np.ndarray]) -> Recording:
        """A gap-free recording held in memory (a simulated rig), one float32 trace per channel."""
        return cls.from_sweeps(name, sample_rate, channels,
                               [Sweep(0, 0, tuple(np.asarray(t, dtype=np.float32) for t in traces))])

    @classmethod
    def from_sweeps(cls, name: str, sample_rate: float, channels: list[Channel], sweeps: list[Sweep]) -> Recording:
        """A recording held in memory, its sweeps on its own sample counter (episodic when several)."""
        recording = cls.__new__(cls)
        recording.path = Path(name)
        recording.name = name
        recording.format = "in memory"
        recording.abf_version = None
        recording.mode = "episodic" if len(sweeps) > 1 else "gap-free"
        recording.sample_rate = float(sample_rate)
        recording.channels = list(channels)
        recording.sweeps = list(sweeps)
        recording.started_at = recording.recorded_on = None
        return recording

    def __repr__(self) -> str:
        return (f"Recording({self.name!r}: {self.format}, {self.mode}, {len(self.channels)} ch, "
                f"{self.sample_rate:g} Hz, {len(self.sweeps)} sweep(s), {self.recorded_s:.2f} s recorded)")

    @property
    def total_samples(self) -> int:
        """Samples per channel actually stored."""
        return sum(s.num_samples for s in self.sweeps)

    @property
    def recorded_s(self) -> float:
        return self.total_samples / self.sample_rate

    @property
    def span_samples(self) -> int:
        """From the first sample counter value to the end of the last sweep (includes pauses)."""
        last = self.sweeps[-1]
        return last.sample_num + last.num_samples

    def description(self) -> dict:
        """What `raphe info --json` prints."""
        return {"file": str(self.path), "format": self.format, "abf_version": self.abf_version, "mode": self.mode,
                "sample_rate_hz": self.sample_rate, "recorded_on": self.recorded_on,
                "channels": [{"num": c.num, "name": c.name, "units": c.units} for c in self.channels],
                "sweeps": len(self.sweeps), "samples_per_channel": self.total_samples,
                "recorded_s": self.recorded_s, "sweep_start_samples": [s.sample_num for s in self.sweeps],
                "sweep_lengths": [s.num_samples for s in self.sweeps]}

    def select(self, wanted: list[str] | None) -> list[Channel]:
        """Channels by 0-based index or by name; all of them when ``wanted`` is None or empty."""
        if not wanted:
            return list(self.channels)
        chosen = []
        for item in wanted:
            match = [c for c in self.channels if c.name == item or str(c.num) == item]
            if not match:
                known = ", ".join(f"{c.num}={c.name}" for c in self.channels)
                raise RecordingError(f"{self.path.name} has no channel {item!r} (channels: {known})")
            if match[0] not in chosen:
                chosen.append(match[0])
        return chosen


def write_abf1(path: str | Path, trace: np.ndarray, sample_rate: float, units: str) -> None:
    """Write one channel as a gap-free ABF1 file (pyabf's writer stores int16 with a scale)."""
    pyabf.abfWriter.writeABF1(np.asarray(trace, np.float32)[np.newaxis, :], str(path), sampleRateHz=sample_rate,
                              units=units)


def _recording_start(abf: pyabf.ABF) -> datetime.datetime | None:
    """When the header says the recording started (the rig's local time, without a zone), or None
    where it says nothing plausible (some writers leave the field zero, which pyabf reads as a date
    in 1806 or 1970)."""
    try:
        when = abf.abfDateTime
    except (ValueError, OverflowError, AttributeError):
        return None
    if not isinstance(when, datetime.datetime) or not 1980 <= when.year <= datetime.date.today().year:
        return None
    return when


def _printable(text: str) -> str:
    # Headers written by non-Clampex tools carry NULs and control bytes in their name fields.
    return "".join(ch for ch in str(text) if ch.isprintable()).strip()


def read_contents(path: Path) -> Contents:
    """The file's contents, by its format (its suffix); one line for a missing, empty or unknown file."""
    if not path.exists():
        raise RecordingError(f"{path}: no such file")
    if not path.is_file():
        raise RecordingError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise RecordingError(f"{path}: empty file")
    suffix = path.suffix.lower()
    if suffix in AXOGRAPH_SUFFIXES:
        contents = read_axograph(path)
    elif suffix in NWB_SUFFIXES:
        contents = read_nwb(path)
    elif suffix in SPIKE2_SUFFIXES:
        contents = read_spike2(path)
    elif suffix in WINWCP_SUFFIXES:
        contents = read_winwcp(path)
    elif suffix in (".abf", ""):
        contents = read_abf(path)
    else:
        raise RecordingError(f"{path}: unknown recording format {path.suffix!r} (raphe reads "
                             f"{', '.join(RECORDING_SUFFIXES)})")
    check_contents(path, contents)
    return contents


def read_abf(path: Path) -> Contents:
    """The file's header first (rate and scaling checked), then its samples."""
    abf = _open_abf(path)
    rate = checked_rate(path, abf.sampleRate)
    _check_scaling(path, abf)
    channels = [Channel(i, _printable(abf.adcNames[i]) or f"ch{i}", _printable(abf.adcUnits[i]))
                for i in range(abf.channelCount)]
    try:
        sweeps = _read_sweeps(abf, rate)
    except RecordingError:
        raise
    except Exception as exc:  # pyabf reads the samples on the first sweep; a damaged file fails there
        raise RecordingError(f"{path}: truncated or corrupt ABF file ({_reason(exc)})") from None
    return Contents(f"ABF {abf.abfVersionString}", OPERATION_MODES.get(abf.nOperationMode, f"mode {abf.nOperationMode}"),
                    rate, channels, sweeps, _recording_start(abf))


def _reason(exc: Exception) -> str:
    # some of pyabf's exceptions carry no message; their type is then the reason
    return str(exc) or type(exc).__name__


def _check_scaling(path: Path, abf: pyabf.ABF) -> None:
    """Refuse int16 data whose scaling (gain and offset of each channel) would not fit a float32,
    before pyabf scales it (it would print numpy's overflow warning and give infinities)."""
    if abf._dtype != np.int16:
        return
    for channel, (gain, offset) in enumerate(zip(abf._dataGain, abf._dataOffset)):
        if not (np.isfinite(gain) and np.isfinite(offset) and abs(gain) * 32768 + abs(offset) <= FLOAT32_MAX):
            raise RecordingError(f"{path}: corrupt ABF header (channel {channel} is scaled by {gain:g} with offset "
                                 f"{offset:g}, beyond a float32)")


def _open_abf(path: Path) -> pyabf.ABF:
    try:
        with path.open("rb") as fh:
            signature = fh.read(4)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror})") from None
    if signature not in (b"ABF ", b"ABF2"):
        raise RecordingError(f"{path}: not an ABF file (no ABF signature)")
    check_header(path)
    try:
        return pyabf.ABF(str(path), loadData=False)
    except Exception as exc:  # pyabf reports a short or damaged file with assorted exception types
        raise RecordingError(f"{path}: truncated or corrupt ABF file ({_reason(exc)})") from None


def check_header(path: Path) -> None:
    """Refuse a header whose sections, entry counts or sweep counts do not fit in the file, before
    pyabf allocates or loops by them (a corrupt count must not take the memory or the time)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(ABF1_HEADER_BYTES)
    if len(head) < 512:
        raise RecordingError(f"{path}: truncated or corrupt ABF file (header of {len(head)} bytes)")
    if head[:4] == b"ABF2":
        for k, name in enumerate(ABF2_SECTIONS):
            # pyabf reads the entry count as 32 bits; both readings must describe the same, sane section
            block, entry_bytes, count = struct.unpack_from("<IIq", head, 76 + 16 * k)
            count32, = struct.unpack_from("<i", head, 76 + 16 * k + 8)
            past_end = count and (entry_bytes == 0 or block * 512 + entry_bytes * count > size)
            if count < 0 or count32 != count or past_end:
                raise RecordingError(f"{path}: truncated or corrupt ABF file ({name} section of {count} entries of "
                                     f"{entry_bytes} bytes at block {block} lies past the end of the file)")
        return
    acquired, = struct.unpack_from("<i", head, 10)
    episodes, = struct.unpack_from("<i", head, 16)
    data_block, = struct.unpack_from("<i", head, 40)
    data_format, = struct.unpack_from("<h", head, 100)
    channels, = struct.unpack_from("<h", head, 120)
    if not (1 <= channels <= 16 and data_format in (0, 1) and acquired >= 0 and data_block >= 0):
        raise RecordingError(f"{path}: truncated or corrupt ABF file (ABF1 header: {channels} channels, "
                             f"data format {data_format}, {acquired} samples)")
    if data_block * 512 + acquired * (2 if data_format == 0 else 4) > size:
        raise RecordingError(f"{path}: truncated or corrupt ABF file (its {acquired} samples lie past the end "
                             "of the file)")
    if not 0 <= episodes <= max(acquired // channels, 1):
        raise RecordingError(f"{path}: truncated or corrupt ABF file (the header gives {episodes} sweeps for "
                             f"{acquired} samples)")


def _read_sweeps(abf: pyabf.ABF, rate: float) -> list[Sweep]:
    sweeps = []
    next_free = 0
    for index in range(abf.sweepCount):
        traces = []
        for channel in range(abf.channelCount):
            abf.setSweep(index, channel=channel, absoluteTime=True)
            traces.append(np.asarray(abf.sweepY, dtype=np.float32))
        sweep = placed(index, float(abf.sweepX[0]), rate, tuple(traces), next_free)
        sweeps.append(sweep)
        next_free = sweep.sample_num + sweep.num_samples + 1
    return sweeps
