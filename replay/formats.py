"""Recordings in formats other than ABF, read into what a :class:`~raphe.replay.recording.Recording`
holds (a :class:`~raphe.replay.contents.Contents`): AxoGraph, Spike2 and WinWCP files through neo,
NWB files through pynwb. Currents are given in pA and voltages in mV, whatever unit the
file stores them in, so that the detector's and the checks' units hold for every format.
"""

from __future__ import annotations

import logging
import math
import struct
import warnings
from pathlib import Path

import numpy as np

from .contents import Channel, Contents, RecordingError, Sweep, checked_rate, sweeps_in_order

# What each format's reader says of a unit, to raphe's units: (raphe's unit, factor to it).
UNITS = {"a": ("pA", 1e12), "amp": ("pA", 1e12), "amps": ("pA", 1e12), "ampere": ("pA", 1e12),
         "amperes": ("pA", 1e12), "ma": ("pA", 1e9), "ua": ("pA", 1e6), "na": ("pA", 1e3), "pa": ("pA", 1.0),
         "v": ("mV", 1e3), "volt": ("mV", 1e3), "volts": ("mV", 1e3), "mv": ("mV", 1.0), "uv": ("mV", 1e-3)}
AXOGRAPH_SUFFIXES = (".axgd", ".axgx")
NWB_SUFFIXES = (".nwb",)
SPIKE2_SUFFIXES = (".smr", ".smrx")
# The SON kinds of waveform channel neo reads as signals, and the bytes of one sample: Adc, RealWave.
SMR_WAVEFORM_ITEM_BYTES = {1: 2, 9: 4}
WINWCP_SUFFIXES = (".wcp",)
# How `raphe classify --nwb` begins its files' session description (raphe.pipelines.nwb).
RESULTS_DESCRIPTION = "raphe classification of "


def in_raphe_units(unit: str, values: np.ndarray) -> tuple[str, np.ndarray]:
    """``values`` in pA (a current) or mV (a voltage); other units are kept as they are."""
    known = UNITS.get(unit.strip().lower().replace("µ", "u"))
    if known is None:
        return unit.strip(), np.asarray(values, dtype=np.float32)
    name, factor = known
    return name, (np.asarray(values, dtype=np.float64) * factor).astype(np.float32)


def read_axograph(path: Path) -> Contents:
    """An AxoGraph file (``.axgd``, ``.axgx``), read by neo's AxographIO: each segment a sweep, each
    column of its signals a channel."""
    try:
        from neo.io import AxographIO
    except ImportError:
        raise RecordingError(f"{path.name}: AxoGraph files need neo: pip install 'raphe[formats]'") from None
    logging.getLogger("neo").setLevel(logging.ERROR)  # neo warns of trailing metadata it skips
    try:
        block = AxographIO(filename=str(path)).read_block(lazy=False)
    except Exception as exc:  # noqa: BLE001 (neo's readers raise anything on a damaged file)
        raise RecordingError(f"{path.name}: not a readable AxoGraph file ({type(exc).__name__}: {exc})") from None
    if not block.segments or not block.segments[0].analogsignals:
        raise RecordingError(f"{path.name}: holds no samples")
    rate, channels, sweeps = neo_sweeps(path.name, [list(segment.analogsignals) for segment in block.segments])
    return Contents("AxoGraph", "episodic" if len(sweeps) > 1 else "gap-free", rate, channels, sweeps,
                    block.rec_datetime)


def neo_sweeps(label: str, segments: list[list]) -> tuple[float, list[Channel], list[Sweep]]:
    """neo's signals, a list per segment, as raphe's rate, channels (in pA or mV) and sweeps (each
    segment a sweep at its ``t_start``); ``label`` names the source in every error."""
    rates = {float(s.sampling_rate.rescale("Hz")) for signals in segments for s in signals}
    if len(rates) != 1:
        raise RecordingError(f"{label}: signals at several sample rates ({', '.join(map(str, sorted(rates)))} Hz); "
                             "raphe needs one")
    rate = checked_rate(label, rates.pop())
    channels, found = [], []
    for k, signals in enumerate(segments):
        traces, names = [], []
        for signal in signals:
            unit = signal.units.dimensionality.string
            labels = signal.array_annotations.get("channel_names", [""] * signal.shape[1])
            for column in range(signal.shape[1]):
                raphe_unit, values = in_raphe_units("" if unit == "dimensionless" else unit,
                                                    np.asarray(signal.magnitude[:, column]))
                traces.append(values)
                names.append((str(labels[column]).strip(), raphe_unit))
        if len({len(t) for t in traces}) != 1:
            raise RecordingError(f"{label}: segment {k} holds signals of different lengths")
        if k == 0:
            channels = [Channel(i, name or f"ch{i}", unit) for i, (name, unit) in enumerate(names)]
        elif len(traces) != len(channels):
            raise RecordingError(f"{label}: segment {k} holds {len(traces)} channels, the first {len(channels)}")
        found.append((float(signals[0].t_start.rescale("s")), tuple(traces)))
    sweeps = sweeps_in_order(found, rate)
    if sweeps[0].num_samples == 0:
        raise RecordingError(f"{label}: holds no samples")
    return rate, channels, sweeps


def read_spike2(path: Path) -> Contents:
    """A CED Spike2 file: ``.smr`` read by neo's Spike2RawIO, ``.smrx`` by its CedRawIO (which needs
    CED's sonpy). Each of its waveform channels is a channel; each stretch of recording between
    pauses (neo's segments) a sweep, at its time on the file's clock. Event, marker and spike
    channels are not signals and are left out."""
    try:
        from neo.rawio import CedRawIO, Spike2RawIO
    except ImportError:
        raise RecordingError(f"{path.name}: Spike2 files need neo: pip install 'raphe[formats]'") from None
    if path.suffix.lower() == ".smrx":
        reader = CedRawIO(filename=str(path))
    else:
        reader = Spike2RawIO(filename=str(path))
    try:
        reader.parse_header()
    except ImportError as exc:
        # sonpy ships binaries for some platforms only; the .smr format needs none
        raise RecordingError(f"{path.name}: .smrx files are read with CED's sonpy, which cannot be imported here "
                             f"({exc}); Spike2 can save the recording as .smr, which raphe reads without it") from None
    except Exception as exc:  # noqa: BLE001 (neo's readers raise anything on a damaged file)
        raise RecordingError(f"{path.name}: not a readable Spike2 file ({type(exc).__name__}: {exc})") from None
    if path.suffix.lower() == ".smr":
        check_smr_blocks(path)
    return neo_contents(path, reader, "Spike2", None)


def check_smr_blocks(path: Path) -> None:
    """Refuse a ``.smr`` file whose waveform blocks hold samples past its end, which neo would read
    as zeros. The layout is CED's SON file's: the channel count at byte 30 of the header, 140-byte
    channel entries from byte 512 (first block at 6, block count at 14, kind at 122), and blocks
    chained by a 20-byte header (next block at 4, item count at 18), their pointers counted in
    bytes, or in 512-byte disk blocks from revision 9."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(512)
        revision, = struct.unpack_from("<h", head, 0)
        slots, = struct.unpack_from("<h", head, 30)
        unit = 512 if revision == 9 else 1
        for slot in range(slots):
            fh.seek(512 + 140 * slot)
            entry = fh.read(140)
            item_bytes = SMR_WAVEFORM_ITEM_BYTES.get(entry[122])
            if item_bytes is None:
                continue
            at, = struct.unpack_from("<i", entry, 6)
            blocks, = struct.unpack_from("<H", entry, 14)
            for _ in range(blocks):
                fh.seek(at * unit)
                block = fh.read(20)
                items, = struct.unpack_from("<H", block, 18)
                if at * unit + 20 + items * item_bytes > size:
                    raise RecordingError(f"{path.name}: truncated or corrupt Spike2 file (Spike2 channel {slot + 1}'s "
                                         f"samples lie past the end of the file)")
                at, = struct.unpack_from("<i", block, 4)


def read_winwcp(path: Path) -> Contents:
    """A WinWCP file (Strathclyde Electrophysiology Software), read by neo's WinWcpRawIO: each
    record a sweep, placed at the time its analysis block says it was recorded."""
    try:
        from neo.rawio import WinWcpRawIO
    except ImportError:
        raise RecordingError(f"{path.name}: WinWCP files need neo: pip install 'raphe[formats]'") from None
    reader = WinWcpRawIO(filename=str(path))
    try:
        with warnings.catch_warnings():
            # a file of no records makes neo take the median of no intervals; the error it then
            # raises is the one line to show, not numpy's warnings
            warnings.simplefilter("ignore")
            reader.parse_header()
        starts = winwcp_record_times(path, reader.segment_count(0))
        # the file stores each record's sample interval as a float32, so its rate is known to a
        # float32's precision: a 25 us interval is 40000 Hz, not the 40000.001 Hz of its inverse
        rate = float(np.float32(reader.get_signal_sampling_rate(0)))
    except Exception as exc:  # noqa: BLE001 (neo's readers raise anything on a damaged file)
        raise RecordingError(f"{path.name}: not a readable WinWCP file ({type(exc).__name__}: {exc})") from None
    return neo_contents(path, reader, "WinWCP", starts, rate)


def winwcp_record_times(path: Path, records: int) -> list[float]:
    """Each record's "time recorded" (s): the float after the status, type and group number that
    open its analysis block, the block found where neo's WinWcpRawIO finds it (after a 1024-byte
    header, records of a 1024-byte analysis block and ``NBD`` 512-byte sectors of samples). neo
    gives every record a start of 0, which would lose the pauses between them."""
    with path.open("rb") as fh:
        fields = dict(line.split("=", 1) for line in fh.read(1024).decode("ascii").split("\r\n") if "=" in line)
        record_bytes = 1024 + 512 * int(fields["NBD"])
        times = []
        for k in range(records):
            fh.seek(1024 + k * record_bytes + 16)
            time, = struct.unpack("<f", fh.read(4))
            if not math.isfinite(time):
                raise ValueError(f"record {k} was recorded at {time} s")
            times.append(time)
    return times


def neo_contents(path: Path, reader, fmt: str, starts: list[float] | None, rate: float | None = None) -> Contents:
    """What a parsed neo raw reader holds: every signal channel, in the order of the file's header
    (neo groups them into streams by rate, unit and scale), converted from the unit the header
    writes (a unit neo does not know is kept as written, not dropped); each segment a sweep starting
    at ``starts`` (s) or, where None, at its earliest signal. ``rate`` where the caller knows the
    file's sample rate better than neo's arithmetic gives it."""
    header_channels = reader.header["signal_channels"]
    streams = reader.header["signal_streams"]
    if len(header_channels) == 0:
        raise RecordingError(f"{path.name}: holds no waveform channels")
    rates = {float(reader.get_signal_sampling_rate(k)) for k in range(len(streams))}
    if len(rates) != 1:
        raise RecordingError(f"{path.name}: signals at several sample rates "
                             f"({', '.join(f'{r:g}' for r in sorted(rates))} Hz); raphe needs one")
    rate = checked_rate(path.name, rates.pop() if rate is None else rate)
    # each stream's columns are its channels in header order
    in_stream = [np.flatnonzero(header_channels["stream_id"] == stream["id"]) for stream in streams]
    channels, found = [], []
    try:
        for segment in range(reader.segment_count(0)):
            by_position, t_starts = {}, []
            for k, positions in enumerate(in_stream):
                raw = reader.get_analogsignal_chunk(0, segment, stream_index=k)
                values = reader.rescale_signal_raw_to_float(raw, dtype="float64", stream_index=k)
                for column, position in enumerate(positions):
                    by_position[position] = in_raphe_units(str(header_channels[position]["units"]), values[:, column])
                t_starts.append(float(reader.get_signal_t_start(0, segment, k)))
            converted = [by_position[position] for position in sorted(by_position)]
            if len({len(values) for _, values in converted}) != 1:
                raise RecordingError(f"{path.name}: sweep {segment} holds channels of different lengths")
            if segment == 0:
                names = [str(header_channels[position]["name"]).strip() for position in sorted(by_position)]
                channels = [Channel(i, name or f"ch{i}", unit)
                            for i, (name, (unit, _)) in enumerate(zip(names, converted))]
            start = starts[segment] if starts is not None else min(t_starts)
            found.append((start, tuple(values for _, values in converted)))
    except RecordingError:
        raise
    except Exception as exc:  # noqa: BLE001 (a truncated file fails where neo reads its samples)
        raise RecordingError(f"{path.name}: truncated or corrupt {fmt} file ({type(exc).__name__}: {exc})") from None
    sweeps = sweeps_in_order(found, rate)
    return Contents(fmt, "episodic" if len(sweeps) > 1 else "gap-free", rate, channels, sweeps,
                    reader.raw_annotations["blocks"][0].get("rec_datetime"))


def read_nwb(path: Path) -> Contents:
    """An NWB file, read by pynwb: its intracellular series (each electrode a channel, each sweep
    number a sweep) or, where it has none, its extracellular ones (each electrode a channel)."""
    try:
        import pynwb
    except ImportError:
        raise RecordingError(f"{path.name}: NWB files need pynwb: pip install 'raphe[nwb]'") from None
    try:
        with pynwb.NWBHDF5IO(str(path), "r") as io:
            nwbfile = io.read()
            series = list(nwbfile.acquisition.values())
            started = nwbfile.session_start_time
            icephys = [s for s in series if isinstance(s, pynwb.icephys.PatchClampSeries)]
            if icephys:
                return nwb_icephys(path, icephys, started)
            ecephys = [s for s in series if isinstance(s, pynwb.ecephys.ElectricalSeries)]
            if ecephys:
                return nwb_ecephys(path, ecephys, started)
            if str(nwbfile.session_description).startswith(RESULTS_DESCRIPTION):
                raise RecordingError(f"{path.name}: a file of raphe's results (classify --nwb), not a recording")
    except RecordingError:
        raise
    except Exception as exc:  # noqa: BLE001 (h5py and hdmf raise many kinds on a damaged file)
        raise RecordingError(f"{path.name}: not a readable NWB file ({type(exc).__name__}: {exc})") from None
    raise RecordingError(f"{path.name}: no intracellular (PatchClampSeries) or extracellular (ElectricalSeries) "
                      "series in its acquisition")


def series_rate(path: Path, series) -> float:
    if series.rate is None or not series.rate > 0:
        raise RecordingError(f"{path.name}: series {series.name!r} has no regular rate (timestamps only); "
                          "raphe needs a sample rate")
    return checked_rate(path.name, series.rate)


def series_values(series) -> np.ndarray:
    """The series' data in its unit (``conversion`` and ``offset`` applied)."""
    return np.asarray(series.data[:], dtype=np.float64) * series.conversion + getattr(series, "offset", 0.0)


def nwb_icephys(path: Path, all_series: list, started) -> Contents:
    rates = {series_rate(path, s) for s in all_series}
    if len(rates) != 1:
        raise RecordingError(f"{path.name}: series at several sample rates; raphe needs one")
    rate = rates.pop()
    electrodes = list(dict.fromkeys(s.electrode.name for s in all_series))
    by_sweep: dict[int, dict[str, object]] = {}
    for k, s in enumerate(all_series):
        number = int(s.sweep_number) if s.sweep_number is not None else k
        if s.electrode.name in by_sweep.setdefault(number, {}):
            raise RecordingError(f"{path.name}: two series of electrode {s.electrode.name!r} in sweep {number}")
        by_sweep[number][s.electrode.name] = s
    units = {}
    found = []
    for number, members in sorted(by_sweep.items()):
        if set(members) != set(electrodes):
            raise RecordingError(f"{path.name}: sweep {number} lacks electrode(s) "
                              f"{', '.join(sorted(set(electrodes) - set(members)))}")
        traces = []
        for electrode in electrodes:
            unit, values = in_raphe_units(members[electrode].unit, series_values(members[electrode]))
            if units.setdefault(electrode, unit) != unit:
                raise RecordingError(f"{path.name}: electrode {electrode!r} changes unit between sweeps")
            traces.append(values)
        if len({len(t) for t in traces}) != 1:
            raise RecordingError(f"{path.name}: sweep {number}'s series differ in length")
        found.append((float(members[electrodes[0]].starting_time or 0.0), tuple(traces)))
    channels = [Channel(i, name, units[name]) for i, name in enumerate(electrodes)]
    sweeps = sweeps_in_order(found, rate)
    return Contents("NWB (icephys)", "episodic" if len(sweeps) > 1 else "gap-free", rate, channels, sweeps, started)


def nwb_ecephys(path: Path, all_series: list, started) -> Contents:
    if len(all_series) > 1:
        names = ", ".join(s.name for s in all_series)
        raise RecordingError(f"{path.name}: several extracellular series ({names}); raphe reads one per file")
    series = all_series[0]
    rate = series_rate(path, series)
    data = series_values(series)
    if data.ndim == 1:
        data = data[:, np.newaxis]
    labels = [str(e) for e in series.electrodes.data[:]] if series.electrodes is not None else []
    unit, values = in_raphe_units(series.unit, data)
    traces = tuple(np.ascontiguousarray(values[:, k]) for k in range(values.shape[1]))
    channels = [Channel(k, f"electrode {labels[k]}" if k < len(labels) else f"ch{k}", unit)
                for k in range(len(traces))]
    sweeps = sweeps_in_order([(float(series.starting_time or 0.0), traces)], rate)
    return Contents("NWB (ecephys)", "gap-free", rate, channels, sweeps, started)
