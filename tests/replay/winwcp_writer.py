"""A test-only writer of WinWCP ``.wcp`` files (Strathclyde Electrophysiology Software, format
version 9), byte for byte as WinWCP's published file structure lays them out: a 1024-byte header
block of ``KEY=value`` lines (CR LF), then each record as a 1024-byte analysis block (status,
type, group number, time recorded, sampling interval, each channel's A/D voltage limit ``VMax``,
a marker) followed by its data block of interleaved int16 samples in 512-byte sectors. A sample
is ``code * VMax / (ADCMAX * YG)`` in the channel's units ``YU``.

raphe reads no file this module writes except through neo's WinWcpRawIO, so a test of raphe on
these files is a test against neo's reading of the published format.
"""

from __future__ import annotations

import datetime
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SECTOR = 512
HEADER_BYTES = 1024
ANALYSIS_BYTES = 1024
ADCMAX = 32767
SAMPLES_MULTIPLE = 256  # WinWCP records hold a multiple of 256 samples per channel


@dataclass
class WcpChannel:
    """A channel: its name, units, and the value of one A/D code (VMax = step * ADCMAX, YG = 1)."""

    name: str
    units: str
    step: float


def write_wcp(path: str | Path, channels: list[WcpChannel], records: list[tuple[float, np.ndarray]],
              interval_s: float, recorded: datetime.datetime = datetime.datetime(2024, 5, 6, 10, 0, 0)) -> None:
    """Write ``records``, each (time recorded in s, int16 codes of shape samples x channels)."""
    samples = records[0][1].shape[0]
    if samples % SAMPLES_MULTIPLE or any(codes.shape != (samples, len(channels)) for _, codes in records):
        raise ValueError(f"every record must hold the same multiple of {SAMPLES_MULTIPLE} samples per channel")
    data_sectors = samples * len(channels) * 2 // SECTOR
    stamp = recorded.strftime("%d/%m/%Y %H:%M:%S")
    lines = ["VER=9", f"CTIME={stamp}", f"RTIME={stamp}", f"NC={len(channels)}", f"NR={len(records)}",
             f"NBH={HEADER_BYTES}", f"NBA={ANALYSIS_BYTES // SECTOR}", f"NBD={data_sectors}", "AD=10.0000",
             f"ADCMAX={ADCMAX}", f"NP={samples}", f"DT={interval_s:.6g}", "NZ=20", "ID=raphe test"]
    for c, channel in enumerate(channels):
        lines += [f"YN{c}={channel.name}", f"YU{c}={channel.units}", f"YG{c}=1.0000", f"YZ{c}=0",
                  f"YO{c}={c}", f"YR{c}={c}"]
    header = "".join(line + "\r\n" for line in lines).encode("ascii")
    if len(header) > HEADER_BYTES:
        raise ValueError("too many channels for a 1024-byte header")
    out = bytearray(header.ljust(HEADER_BYTES, b"\0"))
    vmax = [channel.step * ADCMAX for channel in channels]
    for time_recorded, codes in records:
        analysis = struct.pack("<8s4sfff", b"ACCEPTED", b"TEST", 0.0, time_recorded, interval_s)
        analysis += struct.pack(f"<{len(channels)}f", *vmax) + b"\0" * 16  # the marker text
        out += analysis.ljust(ANALYSIS_BYTES, b"\0")
        out += np.ascontiguousarray(codes, "<i2").tobytes()
    Path(path).write_bytes(bytes(out))
