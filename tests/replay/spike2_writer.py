"""A test-only writer of CED Spike2 ``.smr`` files, byte for byte as CED's published SON filing
system lays them out (``sonintl.h``: the 512-byte ``TFileHead``, an array of 140-byte ``TChannel``
from byte 512 rounded up to a disk block, then chains of ``TDataBlock`` of a 20-byte header and
their items), at revision 6, where a waveform channel's sample interval is ``lChanDvd`` clock ticks
of ``usPerTime * dTimeBase`` seconds and block pointers are byte offsets.

raphe reads no file this module writes except through neo's Spike2RawIO, so a test of raphe on
these files is a test against neo's reading of the published format.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DISKBLOCK = 512
CHANNEL_BYTES = 140
BLOCK_HEADER_BYTES = 20
SLOTS = 32  # Spike2 files keep 32 channel slots, the unused ones of kind 0
KIND_ADC, KIND_EVENT_RISE, KIND_REALWAVE = 1, 3, 9
TIME_BASE_S = 1e-6  # dTimeBase: one clock tick is usPerTime microseconds
BLOCK_BYTES = 4 * DISKBLOCK  # each data block's physical size (phySz), a multiple of 512


@dataclass
class Waveform:
    """A waveform channel: ``sections`` of (tick of the first sample, samples), one sample every
    ``divide`` ticks. int16 samples make an Adc channel (a value is ``code * scale / 6553.6 +
    offset``), float32 samples a RealWave channel (values as they are)."""

    title: str
    units: str
    divide: int
    sections: list[tuple[int, np.ndarray]]
    scale: float = 1.0
    offset: float = 0.0


@dataclass
class Events:
    """An event (rising edge) channel: the ticks of its events."""

    title: str
    ticks: list[int] = field(default_factory=list)


def pascal(text: str, size: int) -> bytes:
    """SON's LSTRING: a length byte, then the characters, in ``size`` bytes."""
    encoded = text.encode("ascii")[:size - 1]
    return bytes([len(encoded)]) + encoded.ljust(size - 1, b"\0")


def write_smr(path: str | Path, channels: list[Waveform | Events], us_per_time: int = 1,
              comment: str = "raphe test") -> None:
    """Write ``channels`` (in slots 0, 1, ...) as a revision 6 SON file."""
    first_data = DISKBLOCK + -(-SLOTS * CHANNEL_BYTES // DISKBLOCK) * DISKBLOCK
    blocks_out = bytearray()
    table = bytearray(SLOTS * CHANNEL_BYTES)
    max_time = 0
    for slot, channel in enumerate(channels):
        if isinstance(channel, Waveform):
            dtype = np.dtype("<i2") if np.asarray(channel.sections[0][1]).dtype == np.int16 else np.dtype("<f4")
            kind = KIND_ADC if dtype == np.int16 else KIND_REALWAVE
            per_block = (BLOCK_BYTES - BLOCK_HEADER_BYTES) // dtype.itemsize
            pieces = []  # (start tick, end tick, bytes)
            for first_tick, samples in channel.sections:
                samples = np.asarray(samples, dtype)
                for at in range(0, len(samples), per_block):
                    part = samples[at:at + per_block]
                    start = first_tick + at * channel.divide
                    pieces.append((start, start + (len(part) - 1) * channel.divide, len(part), part.tobytes()))
        else:
            kind, per_block = KIND_EVENT_RISE, (BLOCK_BYTES - BLOCK_HEADER_BYTES) // 4
            ticks = np.asarray(channel.ticks, "<i4")
            pieces = [(int(part[0]), int(part[-1]), len(part), part.tobytes())
                      for part in (ticks[at:at + per_block] for at in range(0, len(ticks), per_block))]
        offsets = [first_data + len(blocks_out) + k * BLOCK_BYTES for k in range(len(pieces))]
        for k, (start, end, items, payload) in enumerate(pieces):
            pred = offsets[k - 1] if k > 0 else -1
            succ = offsets[k + 1] if k + 1 < len(pieces) else -1
            block = struct.pack("<iiiiHH", pred, succ, start, end, slot + 1, items) + payload
            blocks_out += block.ljust(BLOCK_BYTES, b"\0")
        last_time = pieces[-1][1] if pieces else 0
        max_time = max(max_time, last_time)
        divide = channel.divide if isinstance(channel, Waveform) else 0
        ideal_rate = 1.0 / (divide * us_per_time * TIME_BASE_S) if divide else 0.0
        entry = struct.pack("<HiiiHHhhHH", 0, -1, offsets[0] if pieces else -1, offsets[-1] if pieces else -1,
                            len(pieces), 0, 0, 0, BLOCK_BYTES, per_block)
        entry += pascal("", 72) + struct.pack("<ii", last_time, divide) + struct.pack("<h", slot)
        entry += pascal(channel.title, 10) + struct.pack("<fBB", ideal_rate, kind, 0)
        if isinstance(channel, Waveform):
            entry += struct.pack("<ff", channel.scale, channel.offset) + pascal(channel.units, 6) + struct.pack("<H", 1)
        table[slot * CHANNEL_BYTES:(slot + 1) * CHANNEL_BYTES] = entry.ljust(CHANNEL_BYTES, b"\0")
    head = struct.pack("<h10s8sHHhihHHHHid", 6, b"(C) CED 87", b"raphe".ljust(8), us_per_time, 1, 0, first_data,
                       SLOTS, CHANNEL_BYTES, 0, BLOCK_BYTES, 0, max_time, TIME_BASE_S)
    head += struct.pack("<BBBBBBH", 0, 0, 0, 10, 6, 5, 2024) + b"\0" * 52
    head += pascal(comment, 80) + b"\0" * 80 * 4
    assert len(head) == DISKBLOCK
    Path(path).write_bytes(head + bytes(table).ljust(first_data - DISKBLOCK, b"\0") + bytes(blocks_out))
