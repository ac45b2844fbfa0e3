"""Lab Streaming Layer: raphe's outputs (`raphe serve --lsl NAME`), for LabRecorder and LSL clients,
and a stream of current samples as its input (`raphe serve --lsl-source NAME`, :class:`LslSource`).

Two outlets, made when the service starts so that inlets can connect before the first spike:

- ``NAME-posteriors`` (type ``Classification``, irregular rate, float64): one sample per classified
  spike, its channels ``channel_num``, ``n_spikes``, ``novel`` (0/1), ``decided`` (0 while undecided
  or not classifiable, else 1 + the decided class's index), then the deciding posterior, the
  waveform's and the firing's, one value per class each (named in the stream's description).
- ``NAME-decisions`` (type ``Markers``, irregular rate, string): one JSON object whenever a cell's
  decision changes: ``cell``, ``acquisition``, ``decision``, ``spikes_to_decision``,
  ``seconds_to_decision``.

Timestamps come from the spike's sample time, not from when raphe finished with it: each cell's
first spike of an acquisition anchors its sample clock to LSL's clock at that moment, and every
later spike is stamped ``anchor + (sample_num - first sample_num) / sample_rate``, so the stream
keeps the rig's own timing whatever the processing delay.
"""

from __future__ import annotations

import json

import numpy as np

from raphe.core.errors import RapheError
from raphe.core.native import native_stderr_silenced

from .outputs import SpikeUpdate
from .protocol import PackedBlock
from .subscriber import ChannelStats, Continuity, ReceivedPacked, StreamStats

PARTS = ("posterior", "waveform", "firing")


class LslOutputs:
    """The two LSL outlets for a model's ``classes``; ``publish`` each spike's update."""

    def __init__(self, name: str, classes: tuple[str, ...], source_id: str = "raphe"):
        with native_stderr_silenced():
            import pylsl

            labels = ["channel_num", "n_spikes", "novel", "decided"] + [f"{part}_{c}" for part in PARTS
                                                                       for c in classes]
            info = pylsl.StreamInfo(f"{name}-posteriors", "Classification", len(labels), pylsl.IRREGULAR_RATE,
                                    pylsl.cf_double64, f"{source_id}-posteriors")
            channels = info.desc().append_child("channels")
            for label in labels:
                channels.append_child("channel").append_child_value("label", label)
            self.posteriors = pylsl.StreamOutlet(info)
            self.decisions = pylsl.StreamOutlet(pylsl.StreamInfo(f"{name}-decisions", "Markers", 1,
                                                                 pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                                                 f"{source_id}-decisions"))
        self._pylsl = pylsl
        self.classes = tuple(classes)
        self._anchors: dict[tuple[str, int], tuple[int, float]] = {}
        self._decided: dict[tuple[str, int], str] = {}
        self.samples = 0

    def timestamp(self, update: SpikeUpdate) -> float:
        """The LSL time of the spike, from its sample time (see the module's text)."""
        key = (update.cell, update.acquisition)
        anchor = self._anchors.get(key)
        if anchor is None:
            anchor = self._anchors[key] = (update.sample_num, self._pylsl.local_clock())
        return anchor[1] + (update.sample_num - anchor[0]) / update.sample_rate

    def publish(self, update: SpikeUpdate) -> None:
        stamp = self.timestamp(update)
        decided = self.classes.index(update.decision) + 1 if update.decision in self.classes else 0
        uniform = [1.0 / len(self.classes)] * len(self.classes)
        values = [update.channel_num, update.n_spikes, float(update.novel), decided, *update.posterior,
                  *(update.waveform_posterior or uniform), *(update.firing_posterior or uniform)]
        self.posteriors.push_sample(values, stamp)
        self.samples += 1
        key = (update.cell, update.acquisition)
        if self._decided.get(key, "undecided") != update.decision:
            self._decided[key] = update.decision
            self.decisions.push_sample([json.dumps({
                "cell": update.cell, "acquisition": update.acquisition, "decision": update.decision,
                "spikes_to_decision": update.spikes_to_decision,
                "seconds_to_decision": update.seconds_to_decision})], stamp)

    def close(self) -> None:
        """Drop the outlets now (their streams vanish from the network), not when collected."""
        self.posteriors = self.decisions = None


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
        self.endpoint = f"lsl:{name}"
        self.stream = name
        with native_stderr_silenced():
            self.inlet = pylsl.StreamInlet(info, recover=True)
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
        self._last_stamp: float | None = None
        self._message_num = 0

    def wait(self, timeout_ms: int) -> bool:
        if self._pending:
            return True
        chunk, stamps = self.inlet.pull_chunk(timeout=timeout_ms / 1000.0)
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
        continuity = Continuity.START if self._last_stamp is None else Continuity.CONTINUOUS
        lost = 0
        if self._last_stamp is not None:
            lost = max(int(round((stamps[0] - self._last_stamp) * self.sample_rate)) - 1, 0)
            if lost / self.sample_rate <= self.GAP_S:
                lost = 0
            else:
                continuity = Continuity.GAP
        self._last_stamp = stamps[-1]
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

    def close(self) -> None:
        self.inlet.close_stream()
