"""The running posterior of one cell over the classes, and the fit that calibrates it.

The spikes of one cell are not independent evidence (they share the cell's shape, the rig's noise),
so the naive product of the per-spike probabilities is far too confident. raphe tempers it:

    z_n(c) = log prior(c) + alpha * sum_{i<=n} log p_i(c) / (1 + beta * (n - 1))
    posterior_n = softmax(z_n)

``alpha`` discounts each spike's evidence and ``beta`` lets the total saturate, so a long run of
confident spikes gives a confident but not infinitely certain posterior (cells are misclassified as
wholes). Both are fitted by minimizing the negative log-likelihood of the true class over every
prefix of held-out cells, each cell weighted equally, so the posterior is calibrated at every spike
count, not only at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raphe.errors import RapheError

UNDECIDED = "undecided"
FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class PosteriorConfig:
    """How spikes are combined and when a cell is decided.

    Parameters
    ----------
    alpha, beta : the tempering of the evidence (default 1 and 0: the naive product; a model's
        metadata carries the fitted values).
    threshold : a cell is decided once its largest posterior reaches this (default 0.99).
    min_spikes : and it has at least this many spikes (default 5).
    """

    alpha: float = 1.0
    beta: float = 0.0
    threshold: float = 0.99
    min_spikes: int = 5

    def __post_init__(self):
        if not (self.alpha > 0 and self.beta >= 0 and 0.5 <= self.threshold < 1 and self.min_spikes >= 1):
            raise RapheError("posterior needs alpha > 0, beta >= 0, 0.5 <= threshold < 1 and min_spikes >= 1")


def top_class(classes: tuple[str, ...], probabilities) -> str:
    """The most probable class and its probability, e.g. ``SER 0.998``."""
    best = int(np.argmax(probabilities))
    return f"{classes[best]} {float(probabilities[best]):.3f}"


def log_evidence(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, FLOOR, 1.0))


def combine(evidence_sum: np.ndarray, n: np.ndarray | int, alpha: float, beta: float,
            log_prior: np.ndarray | float = 0.0) -> np.ndarray:
    """Posterior(s) from summed log-probabilities after ``n`` spikes (rows of ``evidence_sum``)."""
    scale = alpha / (1.0 + beta * np.maximum(np.asarray(n, dtype=np.float64) - 1.0, 0.0))
    z = log_prior + np.asarray(evidence_sum) * np.expand_dims(scale, -1)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
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
        self.posterior = combine(self._evidence, self.n_spikes, self.config.alpha, self.config.beta)
        best = int(self.posterior.argmax())
        decided = self.n_spikes >= self.config.min_spikes and self.posterior[best] >= self.config.threshold
        decision = self.classes[best] if decided else UNDECIDED
        if decision != self.decision:
            self.spikes_to_decision = self.n_spikes if decided else None
            self.decision = decision
        return self.posterior


def cell_sequences(cells: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Per cell, its class index and its spikes' probabilities (n, C) in recorded order: what
    :func:`fit` takes. ``cells``, ``labels`` and ``probabilities`` are per spike."""
    return [(int(labels[cells == cell][0]), probabilities[cells == cell]) for cell in np.unique(cells)]


def prefixes(sequences: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every prefix of every cell: (summed log-probabilities, n, true class, weight 1/len per cell)."""
    sums, counts, labels, weights = [], [], [], []
    for label, probs in sequences:
        n = len(probs)
        if n == 0:
            continue
        sums.append(np.cumsum(log_evidence(probs), axis=0))
        counts.append(np.arange(1, n + 1))
        labels.append(np.full(n, label))
        weights.append(np.full(n, 1.0 / n))
    if not sums:
        raise RapheError("no cell with spikes to fit the posterior on")
    return np.concatenate(sums), np.concatenate(counts), np.concatenate(labels), np.concatenate(weights)


def fit(sequences: list[tuple[int, np.ndarray]]) -> tuple[float, float]:
    """(alpha, beta) minimizing the cell-weighted NLL over all prefixes of ``sequences``.

    ``sequences`` holds, per held-out cell, its true class index and its spikes' probabilities
    (n, C) in the order they were recorded.
    """
    sums, counts, labels, weights = prefixes(sequences)
    rows = np.arange(len(labels))
    best, best_nll = (1.0, 0.0), np.inf
    for beta in np.r_[0.0, np.logspace(-3, 1.0, 41)]:
        for alpha in np.logspace(-2.5, 1.0, 71):
            p = combine(sums, counts, alpha, beta)
            nll = -(weights * np.log(np.clip(p[rows, labels], 1e-12, 1.0))).sum() / weights.sum()
            if nll < best_nll:
                best, best_nll = (float(alpha), float(beta)), nll
    return best


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None,
                               bins: int = 10) -> float:
    """ECE: the weighted mean gap between confidence and accuracy over ``bins`` equal-width bins."""
    weights = np.ones(len(confidence)) if weights is None else weights
    edges = np.minimum((confidence * bins).astype(int), bins - 1)
    total, gap = weights.sum(), 0.0
    for b in range(bins):
        mask = edges == b
        if mask.any():
            w = weights[mask]
            gap += abs(np.average(correct[mask], weights=w) - np.average(confidence[mask], weights=w)) * w.sum()
    return float(gap / total) if total else float("nan")
