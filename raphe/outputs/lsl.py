"""raphe's outputs on Lab Streaming Layer (`raphe serve --lsl NAME`), for LabRecorder and LSL clients.
(LSL as an input, `--lsl-source`, is ``raphe.streamer.lsl``.)

Two outlets, made when the service starts so that inlets can connect before the first spike:

- ``NAME-posteriors`` (type ``Classification``, irregular rate, float64): one sample per classified
  spike, its channels ``cell_index`` (which cell: see the markers), ``channel_num``, ``n_spikes``,
  ``novel`` (0/1), ``decided`` (0 while undecided or not classifiable, else 1 + the decided class's
  index), then the deciding posterior, the waveform's and the firing's, one value per class each
  (named in the stream's description).
- ``NAME-decisions`` (type ``Markers``, irregular rate, string): JSON objects. ``"kind": "cell"``
  when a cell (an acquisition of a stream's channel) first appears, naming its ``cell_index``,
  ``cell``, ``stream``, ``channel_num`` and ``acquisition``, so that two rig streams never collide;
  ``"kind": "decision"`` whenever a cell's decision, or what explains it, changes: ``cell_index``,
  ``cell``, ``stream``, ``channel_num``, ``acquisition``, ``decision``, ``withdrawn`` (a class the
  cell no longer holds), ``spikes_to_decision``, ``seconds_to_decision``, ``reasons``, ``hints``
  (e.g. "shape and firing disagree").

Timestamps come from the spike's sample time, not from when raphe finished with it: when a
stream's first block is received (and whenever its samples restart) the service anchors the
stream's sample clock to LSL's clock (``anchor``: the block's last sample at that moment), and
every spike of any of its cells is stamped ``anchor + (sample_num - anchor's sample_num) /
sample_rate``. The cells of one stream keep the rig's relative timing exactly; against other LSL
streams the whole stream is late by the transport of one block, and however slow a publish is,
no later stamp moves.
"""

from __future__ import annotations

import json

from raphe.core.native import native_stderr_silenced

from .update import SpikeUpdate

PARTS = ("posterior", "waveform", "firing")


class LslOutputs:
    """The two LSL outlets for a model's ``classes``; ``publish`` each spike's update."""

    def __init__(self, name: str, classes: tuple[str, ...], source_id: str = "raphe"):
        with native_stderr_silenced():
            import pylsl

            labels = ["cell_index", "channel_num", "n_spikes", "novel", "decided"] + [
                f"{part}_{c}" for part in PARTS for c in classes]
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
        self._anchors: dict[str, tuple[int, float]] = {}
        self._cells: dict[tuple[str, int], int] = {}
        self._count = 0
        self._decided: dict[tuple[str, int], str] = {}
        self.samples = 0

    def anchor(self, stream: str, sample_num: int, restarted: bool) -> None:
        """A block of ``stream`` ending at ``sample_num`` has just been received: the stream's anchor,
        unless it has one and its samples go on (a restart, or an earlier sample, replaces it)."""
        anchor = self._anchors.get(stream)
        if anchor is None or restarted or sample_num < anchor[0]:
            self._anchors[stream] = (sample_num, self._pylsl.local_clock())

    def timestamp(self, update: SpikeUpdate) -> float:
        """The LSL time of the spike, from its sample time (see the module's text; a stream never
        anchored is anchored at its first spike)."""
        stream = update.state.stream
        anchor = self._anchors.get(stream)
        if anchor is None:
            anchor = self._anchors[stream] = (update.sample_num, self._pylsl.local_clock())
        return anchor[1] + (update.sample_num - anchor[0]) / update.sample_rate

    def forget(self, cell: str) -> None:
        """A cell the service forgot: a later cell of that name is a new cell, with no decision."""
        self._decided = {key: d for key, d in self._decided.items() if key[0] != cell}
        self._cells = {key: k for key, k in self._cells.items() if key[0] != cell}

    def _marker(self, fields: dict, stamp: float) -> None:
        self.decisions.push_sample([json.dumps(fields)], stamp)

    def publish(self, update: SpikeUpdate) -> None:
        s = update.state
        stamp = self.timestamp(update)
        key = (s.cell, s.acquisition)
        index = self._cells.get(key)
        named = {"cell": s.cell, "stream": s.stream, "channel_num": s.channel_num, "acquisition": s.acquisition}
        if index is None:
            self._count += 1
            index = self._cells[key] = self._count
            self._marker({"kind": "cell", "cell_index": index, **named}, stamp)
        values = [index, s.channel_num, s.n_spikes, float(update.novel), s.decided_index, *s.posterior,
                  *s.parts["waveform"], *s.parts["firing"]]
        self.posteriors.push_sample(values, stamp)
        self.samples += 1
        # a marker when the decision changes, or why it is what it is ("shape and firing disagree")
        if self._decided.get(key, ("undecided", ())) != (s.decision, s.reasons + s.hints):
            self._decided[key] = (s.decision, s.reasons + s.hints)
            self._marker({"kind": "decision", "cell_index": index, **named, "decision": s.decision,
                          "withdrawn": s.withdrawn, "spikes_to_decision": s.spikes_to_decision,
                          "seconds_to_decision": s.seconds_to_decision, "reasons": list(s.reasons),
                          "hints": list(s.hints)}, stamp)

    def close(self) -> None:
        """Drop the outlets now (their streams vanish from the network), not when collected."""
        self.posteriors = self.decisions = None
