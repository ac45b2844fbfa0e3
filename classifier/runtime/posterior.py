"""The running posterior of one cell over the classes.

The spikes of one cell are not independent evidence (they share the cell's shape, the rig's noise),
so the naive product of the per-spike probabilities is far too confident. raphe tempers it:

    z_n(c) = log prior(c) + alpha * sum_{i<=n} log p_i(c) / (1 + beta * (n - 1))
    posterior_n(c) = softmax(-max(max_k z_n(k) - z_n(c) - margin, 0))

``alpha`` discounts each spike's evidence and ``beta`` lets the total saturate, so a long run of
confident spikes gives a confident but not infinitely certain posterior (cells are misclassified as
wholes). ``margin`` is the evidence a class must gain over another before it counts at all: cells
the model gets wrong as wholes tend to be those whose evidence is weak but consistent, so a margin
keeps them near even odds while clearly decided cells still reach a decision. All three are fitted
on held-out cells (``raphe.classifier.evaluation.calibration``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raphe.core.errors import RapheError
from raphe.core.specs import DECISION_THRESHOLD, MIN_SPIKES

UNDECIDED = "undecided"
# A cell whose windows look like nothing the model knows, or whose channel is not cell-attached current.
NOT_CLASSIFIABLE = "not classifiable"
FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class PosteriorConfig:
    """How spikes are combined and when a cell is decided.

    Parameters
    ----------
    alpha, beta, margin : the tempering of the evidence (default 1, 0 and 0: the naive product; a
        model's metadata carries the fitted values).
    threshold : a cell is decided once its largest posterior reaches this (default 0.99).
    min_spikes : and it has at least this many spikes (default 5).
    """

    alpha: float = 1.0
    beta: float = 0.0
    margin: float = 0.0
    threshold: float = DECISION_THRESHOLD
    min_spikes: int = MIN_SPIKES

    def __post_init__(self):
        if not (self.alpha > 0 and self.beta >= 0 and self.margin >= 0 and 0.5 <= self.threshold < 1
                and self.min_spikes >= 1):
            raise RapheError("posterior needs alpha > 0, beta >= 0, margin >= 0, 0.5 <= threshold < 1 "
                             "and min_spikes >= 1")


def top_class(classes: tuple[str, ...], probabilities) -> str:
    """The most probable class and its probability, e.g. ``SER 0.998``."""
    best = int(np.argmax(probabilities))
    return f"{classes[best]} {float(probabilities[best]):.3f}"


def log_evidence(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, FLOOR, 1.0))


def combine(evidence_sum: np.ndarray, n: np.ndarray | int, alpha: float, beta: float, margin: float = 0.0,
            log_prior: np.ndarray | float = 0.0) -> np.ndarray:
    """Posterior(s) from summed log-probabilities after ``n`` spikes (rows of ``evidence_sum``)."""
    scale = alpha / (1.0 + beta * np.maximum(np.asarray(n, dtype=np.float64) - 1.0, 0.0))
    z = log_prior + np.asarray(evidence_sum) * np.expand_dims(scale, -1)
    gap = np.maximum(z.max(axis=-1, keepdims=True) - z - margin, 0.0)
    p = np.exp(-gap)
    return p / p.sum(axis=-1, keepdims=True)


class CellPosterior:
    """One cell's running state: spikes seen, posterior, decision, and the seed's mean rule alongside."""

    def __init__(self, classes: tuple[str, ...], config: PosteriorConfig = PosteriorConfig()):
        self.classes = tuple(classes)
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Start afresh: a new acquisition, a restarted stream or a new sample rate."""
        k = len(self.classes)
        self.n_spikes = 0
        self._evidence = np.zeros(k)
        self._prob_sum = np.zeros(k)
        self.posterior = np.full(k, 1.0 / k)
        self.decision = UNDECIDED
        self.spikes_to_decision: int | None = None

    @property
    def mean_spike_probability(self) -> np.ndarray:
        """The seed's rule: the mean of the spikes' class probabilities (uniform before any spike)."""
        if self.n_spikes == 0:
            return np.full(len(self.classes), 1.0 / len(self.classes))
        return self._prob_sum / self.n_spikes

    def update(self, probs: np.ndarray) -> np.ndarray:
        """Add one spike's class probabilities; return the new posterior."""
        self.n_spikes += 1
        self._prob_sum += probs
        self._evidence += log_evidence(probs)
        self.posterior = combine(self._evidence, self.n_spikes, self.config.alpha, self.config.beta, self.config.margin)
        best = int(self.posterior.argmax())
        decided = self.n_spikes >= self.config.min_spikes and self.posterior[best] >= self.config.threshold
        decision = self.classes[best] if decided else UNDECIDED
        if decision != self.decision:
            self.spikes_to_decision = self.n_spikes if decided else None
            self.decision = decision
        return self.posterior
