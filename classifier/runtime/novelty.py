"""How unlike the training data a window is: a per-window novelty score, cheap enough for the live path.

A window is first normalised as the network's first layer normalises it (zero mean, unit variance
over time: shape only). In that space the training windows span, mostly, a subspace of ``k``
principal directions. A window's score is its squared distance to the training data there: the
mean squared distance to its ``nearest`` closest reference windows (a sample of the training
windows) inside the subspace, plus the energy it holds outside the subspace. Ordinary windows lie
close to many training windows; a window of a kind the model never saw (a capacitive transient, a
current-clamp action potential, a synaptic current) lies far from all of them.

The threshold is fitted so that a chosen share (1%) of held-out windows of the training
distribution exceed it. Everything is stored in the model's metadata; scoring one window is one
(k x references) product and a partial sort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from raphe.core.errors import RapheError

COMPONENTS = 16
REFERENCES = 2048
NEAREST = 5
HELD_OUT_EXCEEDING = 0.01
# Keras LayerNormalization's epsilon, so that the shape scored is the shape the network sees.
EPSILON = 1e-3


def normalise(windows: np.ndarray) -> np.ndarray:
    """Each window at zero mean and unit variance over its points (float64)."""
    x = np.asarray(windows, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.sqrt((x * x).mean(axis=1, keepdims=True) + EPSILON)


@dataclass(frozen=True)
class Novelty:
    """The summary of the training windows that novelty is scored against (see the module's text)."""

    mean: np.ndarray        # (P,) mean normalised training window
    components: np.ndarray  # (k, P) principal directions, orthonormal rows
    references: np.ndarray  # (R, k) coordinates of a sample of training windows
    nearest: int            # how many nearest references a score averages over
    threshold: float        # scores above this are novel

    def __post_init__(self):
        object.__setattr__(self, "_reference_norms", (self.references * self.references).sum(axis=1))

    def score(self, windows: np.ndarray) -> np.ndarray:
        """Novelty scores (N,) of windows (N, P)."""
        windows = np.ascontiguousarray(windows, dtype=np.float64)
        if windows.ndim != 2 or windows.shape[1] != len(self.mean):
            raise RapheError(f"windows must be (N, {len(self.mean)}) (got {windows.shape})")
        return _scores(windows, self.mean, self.components, self.references, self._reference_norms, self.nearest,
                       EPSILON)

    def is_novel(self, windows: np.ndarray) -> np.ndarray:
        return self.score(windows) > self.threshold

    def to_json(self) -> dict:
        return {"rule": f"mean squared distance to the {self.nearest} nearest of {len(self.references)} training "
                        f"windows in their top-{len(self.components)} principal subspace (layer-normalised), "
                        "plus the energy outside it",
                "mean": self.mean.tolist(), "components": self.components.tolist(),
                "references": self.references.tolist(), "nearest": self.nearest,
                "threshold": self.threshold}

    @classmethod
    def from_json(cls, data: dict) -> Novelty:
        try:
            novelty = cls(np.asarray(data["mean"], np.float64), np.asarray(data["components"], np.float64),
                          np.asarray(data["references"], np.float64), int(data["nearest"]), float(data["threshold"]))
        except (KeyError, TypeError, ValueError):
            raise RapheError("the model's novelty summary is incomplete") from None
        k, points = novelty.components.shape
        if novelty.mean.shape != (points,) or novelty.references.ndim != 2 or novelty.references.shape[1] != k \
                or not 1 <= novelty.nearest <= len(novelty.references):
            raise RapheError("the model's novelty summary has inconsistent shapes")
        return novelty


def fit_novelty(train_windows: np.ndarray, held_out: np.ndarray, rng: np.random.Generator,
                components: int = COMPONENTS, references: int = REFERENCES, nearest: int = NEAREST,
                exceeding: float = HELD_OUT_EXCEEDING) -> Novelty:
    """The summary of ``train_windows``, its threshold set so that a share ``exceeding`` of the
    ``held_out`` windows (of the same distribution, from cells and days never trained on) score above it."""
    if len(train_windows) < max(components, nearest) + 1 or len(held_out) == 0:
        raise RapheError("too few windows to fit the novelty score")
    d = normalise(train_windows)
    mean = d.mean(axis=0)
    d -= mean
    _, _, vt = np.linalg.svd(d, full_matrices=False)
    basis = vt[:components]
    coords = d @ basis.T
    # rounded as stored in the metadata, so that the threshold is that of the stored summary
    mean, basis = np.round(mean, 6), np.round(basis, 6)
    sample = np.round(coords[rng.permutation(len(coords))[:references]], 4)
    unfitted = Novelty(mean, basis, sample, nearest, np.inf)
    threshold = float(np.quantile(unfitted.score(held_out), 1.0 - exceeding))
    return Novelty(mean, basis, sample, nearest, threshold)


@njit(cache=True, nogil=True)
def _scores(windows, mean, components, references, reference_norms, nearest, epsilon):
    """The score of each window (see the module's text), without temporaries: for one window at the
    rig this is a tenth of the cost of the same arithmetic in numpy calls."""
    n, points = windows.shape
    k = components.shape[0]
    out = np.empty(n)
    d = np.empty(points)
    coords = np.empty(k)
    best = np.empty(nearest)
    for i in range(n):
        m = 0.0
        for j in range(points):
            m += windows[i, j]
        m /= points
        var = 0.0
        for j in range(points):
            var += (windows[i, j] - m) ** 2
        scale = 1.0 / np.sqrt(var / points + epsilon)
        energy = 0.0
        for j in range(points):
            d[j] = (windows[i, j] - m) * scale - mean[j]
            energy += d[j] * d[j]
        inside = 0.0
        for c in range(k):
            acc = 0.0
            for j in range(points):
                acc += d[j] * components[c, j]
            coords[c] = acc
            inside += acc * acc
        best[:] = np.inf
        for r in range(references.shape[0]):
            dot = 0.0
            for c in range(k):
                dot += coords[c] * references[r, c]
            squared = inside - 2.0 * dot + reference_norms[r]
            if squared < best[nearest - 1]:
                # insert in the sorted list of the nearest found so far
                q = nearest - 1
                while q > 0 and best[q - 1] > squared:
                    best[q] = best[q - 1]
                    q -= 1
                best[q] = squared
        near = 0.0
        for q in range(nearest):
            near += best[q]
        out[i] = max(near / nearest, 0.0) + max(energy - inside, 0.0)
    return out
