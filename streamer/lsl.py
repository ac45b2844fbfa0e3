"""raphe's outputs on Lab Streaming Layer (`raphe serve --lsl NAME`), for LabRecorder and LSL clients.

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

from .outputs import SpikeUpdate

PARTS = ("posterior", "waveform", "firing")


class LslOutputs:
    """The two LSL outlets for a model's ``classes``; ``publish`` each spike's update."""

    def __init__(self, name: str, classes: tuple[str, ...], source_id: str = "raphe"):
        import pylsl

        self._pylsl = pylsl
        self.classes = tuple(classes)
        labels = ["channel_num", "n_spikes", "novel", "decided"] + [f"{part}_{c}" for part in PARTS for c in classes]
        info = pylsl.StreamInfo(f"{name}-posteriors", "Classification", len(labels), pylsl.IRREGULAR_RATE,
                                pylsl.cf_double64, f"{source_id}-posteriors")
        channels = info.desc().append_child("channels")
        for label in labels:
            channels.append_child("channel").append_child_value("label", label)
        self.posteriors = pylsl.StreamOutlet(info)
        self.decisions = pylsl.StreamOutlet(pylsl.StreamInfo(f"{name}-decisions", "Markers", 1, pylsl.IRREGULAR_RATE,
                                                             pylsl.cf_string, f"{source_id}-decisions"))
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
