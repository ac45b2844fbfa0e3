"""One cell's running posterior: the rule of :mod:`~raphe.classifier.runtime.posterior`, one spike at a time.

The live path pays this at every spike, and at a rig's pace every spike finds the process cold (a
cell fires every 50-500 ms): each of the dozen small numpy calls that the rule's array form takes
then costs tens of microseconds, walking numpy's dispatch afresh. So a spike's arithmetic is one
numba call over the cell's preallocated sums (:func:`_step`); calibration replays the same rule over
arrays of cells with the vectorised functions of ``posterior``, and the tests hold the two equal.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .posterior import FLOOR, UNDECIDED, PosteriorConfig

PARTS = ("waveform", "firing", "joint")  # the rows of a cell's posteriors, in the kernel's order


class CellPosterior:
    """One cell's running state: spikes seen, posterior, decision, and the seed's mean rule alongside.

    ``posterior`` is the one that decides (``config.evidence``); ``parts`` holds all three:
    ``waveform``, ``firing`` (uniform until the firing model speaks) and ``joint``. ``disagree``:
    whether, after the last spike, the waveform and the firing lean to different classes beyond the
    conflict level, which keeps the joint posterior from deciding. ``mean_spike_probability``: the
    seed's rule, the mean of the spikes' class probabilities (uniform before any spike).
    """

    def __init__(self, classes: tuple[str, ...], config: PosteriorConfig = PosteriorConfig()):
        self.classes = tuple(classes)
        self.config = config
        self._deciding_row = PARTS.index(self.deciding)
        self.reset()

    def reset(self) -> None:
        """Start afresh: a new acquisition, a restarted stream or a new sample rate."""
        k = len(self.classes)
        self.n_spikes = 0
        self._sums = np.zeros((5, k))  # see _step
        self.posterior = np.full(k, 1.0 / k)
        self.parts = dict.fromkeys(PARTS, self.posterior)
        self.mean_spike_probability = self.posterior
        c = self.config
        self._margins = np.array([c.margin, c.firing_margin, c.joint_margin])
        self._thresholds = c.class_thresholds(k)
        self._no_firing = np.zeros(k)
        self.disagree = False
        self.decision = UNDECIDED
        self.spikes_to_decision: int | None = None

    @property
    def deciding(self) -> str:
        """The name of the part that decides: ``joint`` for evidence ``both``."""
        return "joint" if self.config.evidence == "both" else self.config.evidence

    def update(self, probs: np.ndarray, firing_log_probs: np.ndarray | None = None) -> np.ndarray:
        """Add one spike's class probabilities, and the firing model's log-probabilities for the cell's
        intervals so far (None before it speaks); return the new posterior."""
        c = self.config
        self.n_spikes += 1
        speaks = firing_log_probs is not None
        # the factor of posterior.tempering, in plain floats
        factor = c.alpha / (1.0 + c.beta * max(self.n_spikes - 1, 0))
        rows, disagree, best, reached = _step(
            self._sums, probs, firing_log_probs if speaks else self._no_firing, speaks, factor, self.n_spikes,
            c.waveform_cap, c.firing_weight, self._margins, c.conflict, self._thresholds, self._deciding_row)
        self.parts = dict(zip(PARTS, rows))
        self.posterior = self.parts[self.deciding]
        self.mean_spike_probability = rows[len(PARTS)]
        self.disagree = c.evidence == "both" and disagree
        decided = self.n_spikes >= c.min_spikes and reached and not self.disagree
        decision = self.classes[best] if decided else UNDECIDED
        if decision != self.decision:
            self.spikes_to_decision = self.n_spikes if decided else None
            self.decision = decision
        return self.posterior


@njit(cache=True, nogil=True)
def _step(sums, probs, firing, speaks, factor, n, cap, weight, margins, conflict, thresholds, deciding):
    """One spike into a cell's running sums (the rows of ``sums``: log-evidence, probabilities,
    then the evidence z of the waveform, the weighted firing and the joint), and its posteriors:
    ``posterior``'s log_evidence, tempered_evidence, capped and with_margin over the rows of z.

    Returns fresh rows (the three posteriors, then the mean spike probability), whether the
    waveform and the firing disagree, the most probable class of row ``deciding``, and whether it
    reached its threshold."""
    k = sums.shape[1]
    evidence, prob_sum, z = sums[0], sums[1], sums[2:]
    rows = np.empty((4, k))
    top = -np.inf
    for c in range(k):
        prob_sum[c] += probs[c]
        rows[3, c] = prob_sum[c] / n
        evidence[c] += np.log(min(max(np.float64(probs[c]), FLOOR), 1.0))
        z[0, c] = evidence[c] * factor
        top = max(top, z[0, c])
    for c in range(k):
        z[0, c] = max(z[0, c], top - cap)
        if speaks:
            z[1, c] = firing[c] * weight
        z[2, c] = z[0, c] + z[1, c]
    for row in range(3):
        best = -np.inf
        for c in range(k):
            best = max(best, z[row, c])
        total = 0.0
        for c in range(k):
            rows[row, c] = np.exp(-max(best - z[row, c] - margins[row], 0.0))
            total += rows[row, c]
        for c in range(k):
            rows[row, c] /= total
    chosen = 0
    for c in range(1, k):
        if rows[deciding, c] > rows[deciding, chosen]:
            chosen = c
    reached = rows[deciding, chosen] >= thresholds[chosen]
    if not np.isfinite(conflict):
        return rows, False, chosen, reached
    way0, lead0 = _way_and_lead(z[0])
    way1, lead1 = _way_and_lead(z[1])
    return rows, way0 != way1 and lead0 > conflict and lead1 > conflict, chosen, reached


@njit(cache=True, nogil=True)
def _way_and_lead(z):
    """The best class of evidence ``z`` (the first of equals, as argmax) and how far it leads the next."""
    first, second, way = -np.inf, -np.inf, 0
    for c in range(z.shape[0]):
        if z[c] > first:
            first, second, way = z[c], first, c
        elif z[c] > second:
            second = z[c]
    return way, first - second
