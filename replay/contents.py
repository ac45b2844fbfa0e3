"""What a recording holds, whatever its format: channels, sweeps placed on the stream's sample
counter, the sample rate and when recording began.

A sweep keeps its start on the counter (from the time its format gives its first sample), so the
pause between episodic sweeps shows downstream as a jump of ``sample_num``; where a file puts a
sweep at or before the end of the previous one (many episodic headers give a start-to-start
interval equal to the sweep length), the sweep starts one sample later: two sweeps are never
presented as continuous.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

import numpy as np

from raphe.core.errors import RapheError
from raphe.streamer.protocol import Limits


# What a recording's header may say, whatever the format: beyond these it is corrupt or not a
# recording of cells (a claimed 1e36 Hz would size the detector's buffers by it).
SAMPLE_RATE_HZ = (100.0, 1e6)
MAX_CHANNELS = 4096


class RecordingError(RapheError):
    """A file that cannot be read as a recording, or a request it cannot satisfy."""


def checked_rate(path, rate: float) -> float:
    """``rate`` if it is a sample rate raphe can work at (finite, within :data:`SAMPLE_RATE_HZ`),
    else one line naming the file. Each reader checks the rate as soon as it reads it, before
    anything is placed or sized by it."""
    low, high = SAMPLE_RATE_HZ
    rate = float(rate)
    if not (math.isfinite(rate) and low <= rate <= high):
        raise RecordingError(f"{path}: the header's sample rate {rate:g} Hz lies outside {low:g} Hz..{high:g} Hz "
                             "(a corrupt header?)")
    return rate


def check_contents(path, contents: Contents) -> None:
    """The one validation of what any reader made of a file's header, used wherever a recording is
    opened: its sample rate, its channel count, at least one sample, and sweeps that end within the
    wire's sample counter (a corrupt start time, read as a float, may lie anywhere)."""
    checked_rate(path, contents.sample_rate)
    if not 1 <= len(contents.channels) <= MAX_CHANNELS:
        raise RecordingError(f"{path}: the header gives {len(contents.channels)} channels "
                             f"(raphe reads 1..{MAX_CHANNELS})")
    if not contents.sweeps or contents.sweeps[0].num_samples == 0:
        raise RecordingError(f"{path}: holds no samples")
    last = contents.sweeps[-1]
    if last.sample_num + last.num_samples >= Limits().counter:
        raise RecordingError(f"{path}: the header places sweep {last.index} at sample {last.sample_num}, beyond "
                             "the sample counter (a corrupt header?)")


@dataclass(frozen=True, slots=True)
class Channel:
    num: int
    name: str
    units: str


@dataclass(frozen=True, slots=True)
class Sweep:
    index: int
    sample_num: int
    traces: tuple[np.ndarray, ...]  # one float32 array per channel

    @property
    def num_samples(self) -> int:
        return int(self.traces[0].shape[0])


@dataclass(frozen=True)
class Contents:
    format: str
    mode: str
    sample_rate: float
    channels: list[Channel]
    sweeps: list[Sweep]
    started_at: datetime.datetime | None


def placed(index: int, start_s: float, rate: float, traces: tuple[np.ndarray, ...], next_free: int) -> Sweep:
    """A sweep at its start on the sample counter, one sample after the previous one at the earliest."""
    return Sweep(index, max(int(round(start_s * rate)), next_free), traces)


def sweeps_in_order(found: list[tuple[float, tuple[np.ndarray, ...]]], rate: float) -> list[Sweep]:
    """(start in s, traces) pairs as sweeps in recorded order, placed by :func:`placed`."""
    sweeps, next_free = [], 0
    for index, (start_s, traces) in enumerate(sorted(found, key=lambda item: item[0])):
        sweep = placed(index, start_s, rate, traces, next_free)
        sweeps.append(sweep)
        next_free = sweep.sample_num + sweep.num_samples + 1
    return sweeps
