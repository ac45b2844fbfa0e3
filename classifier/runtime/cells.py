"""One recorded cell, a (stream, channel): its running posterior, its spikes and its mean waveform.

`raphe serve` and `raphe classify` both keep one :class:`Cell` per channel and feed it the same
spike probabilities in the same order, so at the rig and at the desk a cell ends the same way.

A cell's verdict is its posterior's decision (a class, or undecided), unless the cell is not
classifiable: most of its windows look like nothing the model was trained on, or its channel
failed a signal check (its reasons are set by the pipeline). Novel windows are counted but kept out
of the posterior and of the spike train the firing model reads; no spike is ever dropped from the
counts.
"""

from __future__ import annotations

import numpy as np

from .firing import Train
from .posterior import NOT_CLASSIFIABLE, CellPosterior, PosteriorConfig

# A cell is not classifiable once more than this share of its windows are novel, after this many.
NOVEL_SHARE = 0.5
MIN_WINDOWS_FOR_NOVELTY = 5


def cell_id(stream: str, channel_num: int) -> str:
    return f"{stream}:{channel_num}"


class Cell:
    """The state of one cell.

    Parameters
    ----------
    stream, channel_num, channel_name, sample_rate : where its samples come from.
    classes, posterior_config : the model's classes and the posterior's combination and decision rule.
    keep_history : also keep (sample_num, posterior) after every spike (for figures; grows with spikes).
    """

    def __init__(self, stream: str, channel_num: int, channel_name: str, sample_rate: float,
                 classes: tuple[str, ...], posterior_config: PosteriorConfig, keep_history: bool = False):
        self.stream, self.channel_num, self.channel_name = stream, channel_num, channel_name
        self.id = cell_id(stream, channel_num)
        self.sample_rate = sample_rate
        self.classes = tuple(classes)
        self.posterior = CellPosterior(self.classes, posterior_config)
        firing = posterior_config.firing
        self._firing_columns = None if firing is None else firing.in_classes(self.classes)
        self.train = Train()
        self.keep_history = keep_history
        self.acquisition = 0
        self.restart(sample_rate)

    def restart(self, sample_rate: float) -> None:
        """A new acquisition, a restarted stream or a new sample rate: the cell starts afresh."""
        self.acquisition += 1
        self.sample_rate = sample_rate
        self.posterior.reset()
        self.train.reset()
        self.samples = 0
        self.origin = 0  # the sample_num of its first sample (set by the pipeline that feeds it)
        self.n_spikes = 0
        self.n_novel = 0
        self.signal_reasons: list[str] = []
        self.window_sum = None
        self.history: list[tuple[int, dict[str, np.ndarray]]] = []
        self.last_probabilities: np.ndarray | None = None
        self.decided_at_s: float | None = None

    @property
    def seconds(self) -> float:
        """Recorded time seen since the cell (re)started."""
        return self.samples / self.sample_rate

    @property
    def rate_hz(self) -> float:
        return self.n_spikes / self.seconds if self.samples else 0.0

    @property
    def seconds_to_decision(self) -> float | None:
        """When the cell's standing decision was reached, in recorded seconds from its first sample."""
        if self.decision != self.posterior.decision or self.decided_at_s is None:
            return None
        return round(self.decided_at_s, 6)

    @property
    def mean_window(self) -> np.ndarray | None:
        return None if self.window_sum is None else self.window_sum / max(self.n_spikes, 1)

    @property
    def reasons(self) -> list[str]:
        """Why the cell is not classifiable (empty when it is)."""
        found = list(self.signal_reasons)
        if self.n_spikes >= MIN_WINDOWS_FOR_NOVELTY and self.n_novel > NOVEL_SHARE * self.n_spikes:
            found.append(f"{self.n_novel} of {self.n_spikes} windows look like nothing the model was trained on")
        return found

    @property
    def decision(self) -> str:
        """A class, ``undecided``, or ``not classifiable``."""
        return NOT_CLASSIFIABLE if self.reasons else self.posterior.decision

    def add_spike(self, sample_num: int, probabilities: np.ndarray, window: np.ndarray,
                  novel: bool = False) -> np.ndarray:
        """One classified spike; a novel one is counted but does not move the posterior. Returns the posterior."""
        self.n_spikes += 1
        self.last_probabilities = probabilities
        self.window_sum = window.astype(np.float64) if self.window_sum is None else self.window_sum + window
        if novel:
            self.n_novel += 1
            posterior = self.posterior.posterior
        else:
            posterior = self.posterior.update(probabilities, self._firing_evidence(sample_num))
            p = self.posterior
            if p.spikes_to_decision is None:
                self.decided_at_s = None
            elif p.spikes_to_decision == p.n_spikes:
                self.decided_at_s = (sample_num - self.origin) / self.sample_rate
        if self.keep_history:
            self.history.append((sample_num, dict(self.posterior.parts)))
        return posterior

    def _firing_evidence(self, sample_num: int) -> np.ndarray | None:
        if self._firing_columns is None:
            return None
        return self.train.spike(sample_num / self.sample_rate, self.posterior.config.firing, self._firing_columns)

    def summary(self) -> dict:
        """What `raphe classify --json` prints for the cell."""
        p = self.posterior
        return {"stream": self.stream, "channel_num": self.channel_num, "channel_name": self.channel_name,
                "cell": self.id, "acquisition": self.acquisition, "recorded_s": round(self.seconds, 6),
                "n_spikes": self.n_spikes, "n_novel": self.n_novel, "rate_hz": round(self.rate_hz, 4),
                "posterior": dict(zip(self.classes, map(float, p.posterior))), "decision": self.decision,
                "evidence": p.config.evidence, "n_isi": self.train.n_isi,
                "parts": {name: dict(zip(self.classes, map(float, part))) for name, part in p.parts.items()},
                "spikes_to_decision": p.spikes_to_decision if self.decision == p.decision else None,
                "seconds_to_decision": self.seconds_to_decision,
                "reasons": self.reasons,
                "mean_spike_probability": dict(zip(self.classes, map(float, p.mean_spike_probability)))}
