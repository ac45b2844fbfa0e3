"""A Lab Streaming Layer stream of current samples as raphe's input (`raphe serve --lsl-source NAME`).
(raphe's outputs on LSL, `--lsl`, are ``raphe.outputs.lsl``.)
"""

from __future__ import annotations

import numpy as np

from raphe.core.errors import RapheError
from raphe.core.native import native_stderr_silenced

from .protocol import PackedBlock
from .subscriber import ChannelStats, Continuity, ReceivedPacked, StreamStats


class LslSource:
    """A Lab Streaming Layer stream of current samples as raphe's input (`serve --lsl-source NAME`),
    in place of the ZeroMQ subscriber: the same ``wait``, ``receive_batch`` and ``stats``.

    The stream must have a regular rate; each chunk pulled becomes one packed block of all its
    channels (stream = the LSL stream's name; channels named by the labels of its description, else
    by number; units from each channel's ``unit``, else ``units``). Sample numbers count the samples
    received; a jump in LSL time longer than ``GAP_S`` beyond what the samples cover is a gap of the
    samples it would have held (LSL itself never says a sample was lost).
    """

    GAP_S = 0.05

    def __init__(self, name: str, units: str = "pA", timeout_s: float = 10.0):
        with native_stderr_silenced():
            import pylsl

            found = pylsl.resolve_byprop("name", name, timeout=timeout_s)
        if not found:
            raise RapheError(f"no LSL stream named {name!r} found within {timeout_s:g} s")
        info = found[0]
        self.sample_rate = float(info.nominal_srate())
        if not self.sample_rate > 0:
            raise RapheError(f"LSL stream {name!r} has an irregular rate; raphe needs a regular stream of samples")
        if info.channel_format() in (pylsl.cf_string, pylsl.cf_undefined):
            raise RapheError(f"LSL stream {name!r} carries text, not samples")
        self.endpoint = f"lsl:{name}"
        self.stream = name
        with native_stderr_silenced():
            # clock-synchronised, de-jittered stamps: the gap rule below compares them with the samples
            self.inlet = pylsl.StreamInlet(info, recover=True, processing_flags=pylsl.proc_clocksync
                                           | pylsl.proc_dejitter)
            self.inlet.open_stream(timeout=timeout_s)
        full = self.inlet.info()
        names, unit_list = [], []
        channel = full.desc().child("channels").child("channel")
        while not channel.empty():
            names.append(channel.child_value("label"))
            unit_list.append(channel.child_value("unit"))
            channel = channel.next_sibling()
        count = full.channel_count()
        self.channel_names = tuple(names[k] if k < len(names) and names[k] else str(k) for k in range(count))
        given = {u for u in unit_list if u}
        if len(given) > 1:
            raise RapheError(f"LSL stream {name!r} mixes units ({', '.join(sorted(given))}); raphe needs one")
        self.units = given.pop() if given else units
        self.stats = StreamStats()
        self._pending: list[tuple[list, list]] = []
        self._next_sample_num = 0
        self._first_stamp: float | None = None  # the LSL time of sample 0, on the samples' own timeline
        self._message_num = 0

    def wait(self, timeout_ms: int) -> bool:
        if self._pending:
            return True
        chunk, stamps = self.inlet.pull_chunk(timeout=timeout_ms / 1000.0, min_samples=1)
        if stamps:
            self._pending.append((chunk, stamps))
        return bool(stamps)

    def receive_batch(self, timeout_ms: int = 100, limit: int = 4096) -> list:
        if not self._pending:
            self.wait(timeout_ms)
        while len(self._pending) < limit:
            chunk, stamps = self.inlet.pull_chunk(timeout=0.0)
            if not stamps:
                break
            self._pending.append((chunk, stamps))
        batch, self._pending = [self._block(chunk, stamps) for chunk, stamps in self._pending], []
        return batch

    def _block(self, chunk: list, stamps: list) -> ReceivedPacked:
        samples = np.ascontiguousarray(np.asarray(chunk, dtype=np.float32).T)
        n = samples.shape[1]
        continuity = Continuity.START if self._first_stamp is None else Continuity.CONTINUOUS
        lost = 0
        if self._first_stamp is None:
            self._first_stamp = stamps[0]
        else:
            # against the timeline the samples received so far span, not the last chunk's stamp
            ahead = stamps[0] - (self._first_stamp + self._next_sample_num / self.sample_rate)
            if ahead > self.GAP_S:
                lost = int(round(ahead * self.sample_rate))
                continuity = Continuity.GAP
        self._next_sample_num += lost
        self._message_num += 1
        stats = self.stats
        stats.messages += 1
        stats.data_messages += 1
        stats.acquisitions = 1
        for k, channel_name in enumerate(self.channel_names):
            c = stats.channels.setdefault((self.stream, k), ChannelStats(self.stream, k, channel_name,
                                                                         self.sample_rate, self.units))
            c.samples += n
            c.blocks += 1
            c.gaps += continuity is Continuity.GAP
            c.lost_samples += lost
            c.next_sample_num = self._next_sample_num + n
        block = PackedBlock(self._message_num, self.stream, self._next_sample_num, self.sample_rate,
                            tuple(range(len(self.channel_names))), self.channel_names, samples,
                            int(stamps[0] * 1000))
        self._next_sample_num += n
        return ReceivedPacked(block, [continuity] * len(self.channel_names), samples, self.units)

    def forget_stream(self, stream: str) -> None:
        """The service forgot the stream's cells (silent past ``--forget-after``): its channels'
        counts start again if it sends again."""
        self.stats.forget_stream(stream)

    def close(self) -> None:
        self.inlet.close_stream()
