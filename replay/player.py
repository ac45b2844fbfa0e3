"""Publishing a recording as a rig would: every selected channel in blocks, paced by its sample counter."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from raphe.streamer.publisher import Publisher

from .recording import Channel, Recording, RecordingError


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    loops: int
    messages: int
    samples: int  # per channel
    seconds: float

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else math.inf


def block_samples(sample_rate: float, block_ms: float) -> int:
    """Samples in a block of ``block_ms`` at ``sample_rate`` (at least one)."""
    if not block_ms > 0:
        raise RecordingError(f"block duration must be > 0 ms (got {block_ms})")
    return max(1, int(round(sample_rate * block_ms / 1000.0)))


def replay(recording: Recording, publisher: Publisher, *, channels: list[Channel] | None = None,
           block_ms: float = 10.0, speed: float = 1.0, loop: bool = False,
           on_block: Callable[[int], None] | None = None,
           stop: threading.Event | None = None, packed: bool = False) -> ReplaySummary:
    """Publish ``recording`` on ``publisher``.

    Parameters
    ----------
    channels : the channels to publish (default all); each keeps its index as ``channel_num``.
    block_ms : block duration in ms (default 10); the last block of a sweep may be shorter.
    speed : 1.0 is real time (default), N is N times faster, ``math.inf`` as fast as possible. A block
        is sent when its last sample would have been acquired, so pauses between sweeps are kept too.
    loop : start again at the end, as a new acquisition (``message_num`` and ``sample_num`` restart).
    on_block : called with the number of samples per channel in each block sent (for progress).
    stop : ends the replay at the next block when set.
    packed : every block of all channels in one packed BLOCK message (raphe's own format) instead
        of one Open Ephys DATA message per channel; all channels must share their units.
    """
    if not speed > 0:
        raise RecordingError(f"speed must be > 0 (got {speed})")
    chosen = list(recording.channels) if channels is None else channels
    if packed and len({c.units for c in chosen}) > 1:
        raise RecordingError(f"a packed block carries one unit; {recording.name}'s channels have "
                             f"{', '.join(sorted({c.units for c in chosen}))} (choose channels with --channels)")
    step = block_samples(recording.sample_rate, block_ms)
    seconds_per_sample = 1.0 / (recording.sample_rate * speed)
    first = recording.sweeps[0].sample_num
    messages = samples = loops = 0
    started = time.perf_counter()
    while True:
        loops += 1
        if loops > 1:
            publisher.new_acquisition()
        loop_start = time.perf_counter()
        for sweep in recording.sweeps:
            for offset in range(0, sweep.num_samples, step):
                if stop is not None and stop.is_set():
                    return ReplaySummary(loops, messages, samples, time.perf_counter() - started)
                end = min(offset + step, sweep.num_samples)
                sample_num = sweep.sample_num + offset
                if speed != math.inf:
                    due = loop_start + (sample_num + (end - offset) - first) * seconds_per_sample
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                if packed:
                    publisher.send_block(recording.name, sample_num, recording.sample_rate,
                                         np.stack([sweep.traces[c.num][offset:end] for c in chosen]),
                                         [c.num for c in chosen], [c.name for c in chosen], chosen[0].units)
                    messages += 1
                else:
                    for channel in chosen:
                        publisher.send_data(recording.name, channel.num, channel.name, sample_num,
                                            recording.sample_rate, sweep.traces[channel.num][offset:end],
                                            channel.units)
                    messages += len(chosen)
                samples += end - offset
                if on_block is not None:
                    on_block(end - offset)
        if not loop:
            return ReplaySummary(loops, messages, samples, time.perf_counter() - started)
