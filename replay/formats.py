"""Recordings in formats other than ABF, read into what a :class:`~raphe.replay.recording.Recording`
holds (a :class:`~raphe.replay.contents.Contents`): AxoGraph files through neo, NWB files through
pynwb. Currents are given in pA and voltages in mV, whatever unit the
file stores them in, so that the detector's and the checks' units hold for every format.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .contents import Channel, Contents, RecordingError, checked_rate, sweeps_in_order

# What each format's reader says of a unit, to raphe's units: (raphe's unit, factor to it).
UNITS = {"a": ("pA", 1e12), "amp": ("pA", 1e12), "amps": ("pA", 1e12), "ampere": ("pA", 1e12),
         "amperes": ("pA", 1e12), "ma": ("pA", 1e9), "ua": ("pA", 1e6), "na": ("pA", 1e3), "pa": ("pA", 1.0),
         "v": ("mV", 1e3), "volt": ("mV", 1e3), "volts": ("mV", 1e3), "mv": ("mV", 1.0), "uv": ("mV", 1e-3)}
AXOGRAPH_SUFFIXES = (".axgd", ".axgx")
NWB_SUFFIXES = (".nwb",)
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
    rates = {float(s.sampling_rate.rescale("Hz")) for seg in block.segments for s in seg.analogsignals}
    if len(rates) != 1:
        raise RecordingError(f"{path.name}: signals at several sample rates ({', '.join(map(str, sorted(rates)))} Hz); "
                          "raphe needs one")
    rate = checked_rate(path.name, rates.pop())
    channels, found = [], []
    for k, segment in enumerate(block.segments):
        traces, names = [], []
        for signal in segment.analogsignals:
            unit = signal.units.dimensionality.string
            labels = signal.array_annotations.get("channel_names", [""] * signal.shape[1])
            for column in range(signal.shape[1]):
                raphe_unit, values = in_raphe_units("" if unit == "dimensionless" else unit,
                                                    np.asarray(signal.magnitude[:, column]))
                traces.append(values)
                names.append((str(labels[column]).strip(), raphe_unit))
        if len({len(t) for t in traces}) != 1:
            raise RecordingError(f"{path.name}: segment {k} holds signals of different lengths")
        if k == 0:
            channels = [Channel(i, name or f"ch{i}", unit) for i, (name, unit) in enumerate(names)]
        elif len(traces) != len(channels):
            raise RecordingError(f"{path.name}: segment {k} holds {len(traces)} channels, the first {len(channels)}")
        found.append((float(segment.analogsignals[0].t_start.rescale("s")), tuple(traces)))
    sweeps = sweeps_in_order(found, rate)
    if sweeps[0].num_samples == 0:
        raise RecordingError(f"{path.name}: holds no samples")
    return Contents("AxoGraph", "episodic" if len(sweeps) > 1 else "gap-free", rate, channels, sweeps,
                    block.rec_datetime)


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
