"""One recorded cell, a (stream, channel): its running posterior, its spikes and its mean waveform,
and :class:`CellState`, the one record of it that every output renders.

`raphe serve` and `raphe classify` both keep one :class:`Cell` per channel and feed it the same
samples, signal verdicts and spike probabilities in the same order, so at the rig and at the desk a
cell ends the same way.

A cell's decision follows these rules, and only these:

- It is its posterior's decision (a class, or undecided) while the cell is classifiable.
- It is "not classifiable" once a veto holds. A signal check's veto (the channel is not
  cell-attached current of a firing cell) holds for the rest of the acquisition: a channel the
  checks reject once is never published as a class later, even if a statistic drifts back. The
  novelty veto (most of its windows look like nothing the model was trained on, judged from
  ``MIN_WINDOWS_FOR_NOVELTY`` windows on) holds until the share of novel windows falls to
  ``NOVEL_RELEASE``.
- No class is published before the signal checks have seen enough to veto (``judge(ready=False)``):
  a stimulus-locked channel is caught before it is ever called SER.
- Where the shape and the firing disagree (``CellPosterior.disagree``), the joint posterior does
  not decide, and the cell's hints say so.
- A class that the cell stops holding is *withdrawn*: the update that drops it says which
  (:attr:`CellState.withdrawn`), so a rig acting on decisions hears of it.

Verdicts of the signal checks are stamped with the sample at which they were reached and take
effect for the spikes from that sample on, so however the samples were cut into blocks (a rig's
10 ms messages, a file's 1 s reads) every spike meets the same verdict.

Novel windows are counted but kept out of the posterior and of the spike train the firing model
reads; no spike is ever dropped from the counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .firing import Train
from .posterior import DISAGREE, NOT_CLASSIFIABLE, UNDECIDED, PosteriorConfig, leanings
from .running_posterior import CellPosterior

# A cell is not classifiable once more than NOVEL_SHARE of its windows are novel, from
# MIN_WINDOWS_FOR_NOVELTY windows on, and is again only when the share falls to NOVEL_RELEASE: a
# cell hovering at the line does not flap, and a burst of artefact windows early in a good cell's
# recording (a bumped pipette) does not throw it away for good.
NOVEL_SHARE = 0.5
NOVEL_RELEASE = 1 / 3
MIN_WINDOWS_FOR_NOVELTY = 10


def cell_id(stream: str, channel_num: int) -> str:
    return f"{stream}:{channel_num}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the signal checks say of a channel from ``sample_num`` on."""

    sample_num: int
    reasons: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()
    ready: bool = True


@dataclass(frozen=True, slots=True)
class CellState:
    """One cell's state at one moment (after a spike, or at the end): what every output shows.

    The rules of how a state is shown live here, once: which class is decided (``decided_index``),
    when a posterior is evidence at all (``has_evidence``), the most probable class as text.
    ``posterior`` is the deciding one (``evidence``); ``parts`` holds ``waveform``, ``firing`` and
    ``joint``. ``reasons`` say why the cell is not classifiable; ``hints`` explain a cell with no
    evidence without vetoing it ("no spikes", "events are positive: try --polarity pos").
    ``withdrawn`` names a class this state no longer holds, where the previous spike's did.
    """

    stream: str
    channel_num: int
    channel_name: str
    cell: str
    acquisition: int
    classes: tuple[str, ...]
    recorded_s: float
    n_spikes: int
    n_novel: int
    rate_hz: float
    n_isi: int
    evidence: str
    posterior: np.ndarray
    parts: dict[str, np.ndarray]
    mean_spike_probability: np.ndarray
    decision: str
    spikes_to_decision: int | None
    seconds_to_decision: float | None
    reasons: tuple[str, ...]
    hints: tuple[str, ...]
    withdrawn: str | None = None

    @property
    def decided(self) -> bool:
        return self.decision in self.classes

    @property
    def decided_index(self) -> int:
        """0 while no class is decided, else 1 + the decided class's index (Event Broadcaster's
        ``sorted_id``, LSL's ``decided``)."""
        return self.classes.index(self.decision) + 1 if self.decided else 0

    @property
    def has_evidence(self) -> bool:
        """Whether any spike has moved the posterior: before that its even odds are no class."""
        return self.n_spikes > self.n_novel

    @property
    def top(self) -> str:
        """The most probable class and its probability (``SER 0.998``), or ``-`` without evidence."""
        if not self.has_evidence:
            return "-"
        best = int(np.argmax(self.posterior))
        return f"{self.classes[best]} {float(self.posterior[best]):.3f}"

    @property
    def leanings(self) -> str:
        """Where the waveform and the firing evidence point (``S/N``; ``-`` where a part is even)."""
        return leanings(self.classes, self.parts)

    @property
    def explanation(self) -> str:
        """The reasons, else the hints, as one line (empty when there is nothing to explain)."""
        return "; ".join(self.reasons or self.hints)

    def by_class(self, values) -> dict[str, float]:
        return dict(zip(self.classes, map(float, values)))

    def as_dict(self) -> dict:
        """Plain values, as `raphe classify --json` prints a cell and `serve` logs its summary."""
        return {"stream": self.stream, "channel_num": self.channel_num, "channel_name": self.channel_name,
                "cell": self.cell, "acquisition": self.acquisition, "recorded_s": round(self.recorded_s, 6),
                "n_spikes": self.n_spikes, "n_novel": self.n_novel, "rate_hz": round(self.rate_hz, 4),
                "posterior": self.by_class(self.posterior), "has_evidence": self.has_evidence,
                "decision": self.decision, "evidence": self.evidence, "n_isi": self.n_isi,
                "parts": {name: self.by_class(part) for name, part in self.parts.items()},
                "spikes_to_decision": self.spikes_to_decision, "seconds_to_decision": self.seconds_to_decision,
                "reasons": list(self.reasons), "hints": list(self.hints),
                "mean_spike_probability": self.by_class(self.mean_spike_probability)}

    @classmethod
    def from_dict(cls, row: dict) -> CellState:
        """The state of :meth:`as_dict` (a worker's cells, sent to the coordinator as JSON)."""
        classes = tuple(row["posterior"])

        def values(d: dict) -> np.ndarray:
            return np.array([d[c] for c in classes])

        return cls(row["stream"], row["channel_num"], row["channel_name"], row["cell"], row["acquisition"], classes,
                   row["recorded_s"], row["n_spikes"], row["n_novel"], row["rate_hz"], row["n_isi"], row["evidence"],
                   values(row["posterior"]), {k: values(v) for k, v in row["parts"].items()},
                   values(row["mean_spike_probability"]), row["decision"], row["spikes_to_decision"],
                   row["seconds_to_decision"], tuple(row["reasons"]), tuple(row["hints"]))


class Cell:
    """The state of one cell.

    Parameters
    ----------
    stream, channel_num, channel_name, sample_rate : where its samples come from.
    classes, posterior_config : the model's classes and the posterior's combination and decision rule.
    keep_history : also keep (sample_num, posterior parts) after every spike (for figures; grows
        with spikes).
    """

    def __init__(self, stream: str, channel_num: int, channel_name: str, sample_rate: float,
                 classes: tuple[str, ...], posterior_config: PosteriorConfig, keep_history: bool = False):
        self.stream, self.channel_num, self.channel_name = stream, channel_num, channel_name
        self.id = cell_id(stream, channel_num)
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
        self.origin = 0  # the sample_num of its first sample
        self._next_sample_num: int | None = None
        self.n_spikes = 0
        self.n_novel = 0
        self.window_sum: np.ndarray | None = None
        self.history: list[tuple[int, dict[str, np.ndarray]]] = []
        self._verdict = Verdict(0)
        self._pending: list[Verdict] = []
        self._check_vetoes: tuple[str, ...] = ()  # the checks' latest reasons, once they gave any
        self._novelty_veto: tuple[str, ...] = ()
        self._shown = UNDECIDED  # the decision as the last spike's update showed it
        self._decided_at: tuple[int, float] | None = None
        self._last_spike_s = 0.0
        self._withdrawn: str | None = None

    def see_block(self, sample_num: int, length: int) -> None:
        """``length`` samples from ``sample_num`` on reached the detector. A block that does not go on
        from the last one follows lost samples or a sweep's end: no interval spans it."""
        if self._next_sample_num is None:
            self.origin = sample_num
        elif sample_num != self._next_sample_num:
            self.train.gap(sample_num / self.sample_rate)
        self._next_sample_num = sample_num + length
        self.samples += length

    def judge(self, verdict: Verdict) -> None:
        """The signal checks' verdict, for the spikes from ``verdict.sample_num`` on."""
        self._pending.append(verdict)

    def _apply_verdicts(self, sample_num: int | None) -> None:
        """The verdicts reached by ``sample_num`` (all of them for None) come into force."""
        while self._pending and (sample_num is None or self._pending[0].sample_num <= sample_num):
            self._verdict = self._pending.pop(0)
            # a veto holds for the rest of the acquisition: a later verdict without reasons does
            # not lift it, a later one with reasons tells it anew
            self._check_vetoes = self._verdict.reasons or self._check_vetoes

    @property
    def channel_key(self) -> tuple[str, int]:
        return self.stream, self.channel_num

    @property
    def end(self) -> int | None:
        """One past the last sample seen (None before any)."""
        return self._next_sample_num

    @property
    def seconds(self) -> float:
        """Recorded time seen since the cell (re)started."""
        return self.samples / self.sample_rate

    @property
    def rate_hz(self) -> float:
        return self.n_spikes / self.seconds if self.samples else 0.0

    @property
    def mean_window(self) -> np.ndarray | None:
        """The mean of the windows the posterior took (novel ones are kept apart: ``novel_mean_window``)."""
        taken = self.n_spikes - self.n_novel
        return None if self.window_sum is None or taken == 0 else self.window_sum[0] / taken

    @property
    def novel_mean_window(self) -> np.ndarray | None:
        """The mean of the windows rejected as novel (None without any)."""
        return None if self.window_sum is None or self.n_novel == 0 else self.window_sum[1] / self.n_novel

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the cell is not classifiable (empty when it is): the vetoes it has met, latched."""
        return self._check_vetoes + self._novelty_veto

    @property
    def decision(self) -> str:
        """A class, ``undecided``, or ``not classifiable`` (see the module's rules), by the verdicts
        in force at the last spike."""
        return self._decide(self.reasons, self._verdict.ready)

    def _decide(self, vetoes: tuple[str, ...], ready: bool) -> str:
        if vetoes:
            return NOT_CLASSIFIABLE
        if not ready:
            return UNDECIDED
        return self.posterior.decision

    def add_spike(self, sample_num: int, probabilities: np.ndarray, window: np.ndarray,
                  novel: bool = False) -> np.ndarray:
        """One classified spike; a novel one is counted but does not move the posterior. Returns the posterior."""
        self._apply_verdicts(sample_num)
        self.n_spikes += 1
        if self.window_sum is None:
            self.window_sum = np.zeros((2, len(window)))
        self.window_sum[1 if novel else 0] += window
        if novel:
            self.n_novel += 1
            posterior = self.posterior.posterior
        else:
            posterior = self.posterior.update(probabilities, self._firing_evidence(sample_num))
        share = self.n_novel / self.n_spikes
        if (self._novelty_veto and share > NOVEL_RELEASE) or (self.n_spikes >= MIN_WINDOWS_FOR_NOVELTY
                                                             and share > NOVEL_SHARE):
            self._novelty_veto = (f"{self.n_novel} of {self.n_spikes} windows look like nothing the model was "
                                  "trained on",)
        else:
            self._novelty_veto = ()
        self._last_spike_s = (sample_num - self.origin) / self.sample_rate
        decision = self.decision
        self._withdrawn = self._shown if self._shown in self.classes and decision != self._shown else None
        if decision != self._shown:
            self._decided_at = (self.n_spikes, self._last_spike_s) if decision in self.classes else None
            self._shown = decision
        if self.keep_history:
            self.history.append((sample_num, dict(self.posterior.parts)))
        return posterior

    def _firing_evidence(self, sample_num: int) -> np.ndarray | None:
        if self._firing_columns is None:
            return None
        return self.train.spike(sample_num / self.sample_rate, self.posterior.config.firing, self._firing_columns)

    def state(self, final: bool = False, reached: bool = True) -> CellState:
        """The cell's record now. ``reached``: with every verdict the checks have reached on the
        samples it has seen, shown though not yet in force (spikes still to come meet each verdict at
        its own sample); False: as its last spike's update says it, with the verdicts in force then
        (the same however the samples were cut into blocks). ``final``: at the end of its samples,
        every verdict put in force. A decision that verdicts change after the last spike is
        withdrawn, or reached at the last spike."""
        if final:
            self._apply_verdicts(None)
        checks, verdict = self._check_vetoes, self._verdict
        for pending in self._pending if reached else ():
            checks, verdict = pending.reasons or checks, pending
        vetoes = checks + self._novelty_veto
        decision = self._decide(vetoes, verdict.ready)
        withdrawn, decided_at = self._withdrawn, self._decided_at
        if decision != self._shown:
            withdrawn = self._shown if self._shown in self.classes else None
            decided_at = (self.n_spikes, self._last_spike_s) if decision in self.classes else None
        p = self.posterior
        hints = verdict.hints + ((DISAGREE,) if p.disagree else ())
        return CellState(
            self.stream, self.channel_num, self.channel_name, self.id, self.acquisition, self.classes, self.seconds,
            self.n_spikes, self.n_novel, self.rate_hz, self.train.n_isi, p.config.evidence, p.posterior, p.parts,
            p.mean_spike_probability, decision, None if decided_at is None else decided_at[0],
            None if decided_at is None else round(decided_at[1], 6), vetoes, hints, withdrawn)
