"""Calibrating the running cell posterior: its tempering fitted on held-out cells, and the
expected calibration error that judges it.

The tempering (``alpha``, ``beta``, ``margin``; see ``runtime.posterior``) is fitted by minimizing the negative
log-likelihood of the true class over every prefix of held-out cells, each cell weighted equally,
so the posterior is calibrated at every spike count, not only at the end; among the tempering that
decides wrongly at most 0.5% of the calibration cells (a tool sure and wrong is worse than one that
abstains). Calibration cells from other days and other sources than the training cells (e.g. both
generators) are what make the fit survive a change of data.

`raphe train` fits the posterior on the cells it held out, which are few (a day or two);
`raphe calibrate` refits it on a dedicated set of cells the weights never saw, from other days.
Only the model's ``.json`` changes: the checksum covers the ``.tflite``, which stays as it is.

With a firing model (``calibrate --firing``), the same held-out cells, replayed at their spike
times, fit how much the firing evidence weighs in the joint posterior (``firing_weight``, with
the waveform's tempering held as fitted) and the margins of the joint and the firing-alone
posteriors, under the same objective and the same bound on wrong decisions. A weight of 0 is
allowed: where firing misleads on held-out cells, the joint posterior is the waveform's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.firing import FiringModel, Train
from raphe.classifier.runtime.model import Model, model_files, sidecar
from raphe.classifier.runtime.posterior import combine, log_evidence, tempered_evidence, with_margin
from raphe.core.errors import RapheError
from raphe.core.specs import DECISION_THRESHOLD, MIN_SPIKES
from raphe.core.staged import staged

# The tempering may decide wrongly at most this share of the calibration cells.
MAX_WRONG_DECISIONS = 0.005
MARGINS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
FIRING_WEIGHTS = tuple(np.r_[0.0, np.logspace(-1.5, 0.7, 23)])


def cell_sequences(cells: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Per cell, its class index and its spikes' probabilities (n, C) in recorded order: what
    :func:`fit_posterior` takes. ``cells``, ``labels`` and ``probabilities`` are per spike."""
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


def fit_posterior(sequences: list[tuple[int, np.ndarray]], threshold: float = DECISION_THRESHOLD,
                  min_spikes: int = MIN_SPIKES, max_wrong: float = MAX_WRONG_DECISIONS) -> tuple[float, float, float]:
    """(alpha, beta, margin) minimizing the cell-weighted NLL over all prefixes of ``sequences``, among
    the tempering that decides wrongly (at ``threshold`` after ``min_spikes``) at most ``max_wrong`` of
    the cells at their end; where none does, the one that decides fewest cells wrongly.

    ``sequences`` holds, per held-out cell, its true class index and its spikes' probabilities
    (n, C) in the order they were recorded (windows kept out of the posterior left out).
    """
    sums, counts, judge = _judging(sequences, threshold, min_spikes, max_wrong)
    best, best_key = (1.0, 0.0, 0.0), (np.inf, np.inf)
    for margin in MARGINS:
        for beta in np.r_[0.0, np.logspace(-3, 1.0, 21)]:
            for alpha in np.logspace(-2.5, 1.0, 36):
                key = _decision_key(combine(sums, counts, alpha, beta, margin), **judge)
                if key < best_key:
                    best, best_key = (float(alpha), float(beta), float(margin)), key
    return best


def firing_sequences(cells: np.ndarray, times_s: np.ndarray, firing: FiringModel,
                     classes: tuple[str, ...]) -> list[np.ndarray]:
    """Per cell (in the order of :func:`cell_sequences`), the firing model's log-probabilities (n, C)
    after each of its spikes, as the runtime computes them from the spike times; zeros before the
    model speaks."""
    columns = firing.in_classes(classes)
    out = []
    for cell in np.unique(cells):
        train, rows = Train(), []
        for t in times_s[cells == cell]:
            f = train.spike(float(t), firing, columns)
            rows.append(np.zeros(len(classes)) if f is None else f)
        out.append(np.array(rows).reshape(-1, len(classes)))
    return out


def _judging(sequences: list[tuple[int, np.ndarray]], threshold: float, min_spikes: int,
             max_wrong: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Every prefix's summed evidence and spike count, and what :func:`_decision_key` judges by."""
    sums, counts, labels, weights = prefixes(sequences)
    last = np.cumsum([len(probs) for _, probs in sequences if len(probs)]) - 1
    return sums, counts, dict(rows=np.arange(len(labels)), labels=labels, weights=weights, last=last, counts=counts,
                              threshold=threshold, min_spikes=min_spikes, max_wrong=max_wrong)


def _decision_key(p: np.ndarray, rows, labels, weights, last, counts, threshold, min_spikes, max_wrong):
    """(wrong decisions beyond the bound, cell-weighted NLL over every prefix): smaller is better."""
    nll = -(weights * np.log(np.clip(p[rows, labels], 1e-12, 1.0))).sum() / weights.sum()
    final = p[last]
    decided = (counts[last] >= min_spikes) & (final.max(axis=1) >= threshold)
    wrong = float((decided & (final.argmax(axis=1) != labels[last])).mean())
    return max(wrong - max_wrong, 0.0), nll


def fit_joint(sequences: list[tuple[int, np.ndarray]], firing: list[np.ndarray], alpha: float, beta: float,
              threshold: float = DECISION_THRESHOLD, min_spikes: int = MIN_SPIKES,
              max_wrong: float = MAX_WRONG_DECISIONS) -> tuple[float, float, float]:
    """(firing_weight, joint_margin, firing_margin) by the objective of :func:`fit_posterior`, the
    waveform's tempering (``alpha``, ``beta``) held; ``firing`` from :func:`firing_sequences`."""
    sums, counts, judge = _judging(sequences, threshold, min_spikes, max_wrong)
    f = np.concatenate([part for part, (_, probs) in zip(firing, sequences) if len(probs)])
    z = tempered_evidence(sums, counts, alpha, beta)
    joint = min(((w, m) for w in FIRING_WEIGHTS for m in MARGINS),
                key=lambda wm: _decision_key(with_margin(z + wm[0] * f, wm[1]), **judge))
    weight = float(joint[0])
    alone = min(MARGINS, key=lambda m: _decision_key(with_margin(weight * f, m), **judge)) if weight else 0.0
    return weight, float(joint[1]), float(alone)


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


def calibrate(model_path, data: ws.WindowSet, data_name: str = "",
              firing_path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """Refit (alpha, beta, margin) for every model at ``model_path`` on the cells of ``data``, and,
    with ``firing_path``, the joint posterior with that firing model (copied beside each model);
    return what was fitted, per model file."""
    firing = FiringModel(firing_path) if firing_path is not None else None
    if firing is not None and not data.has_times:
        raise RapheError("calibrating a firing model needs spike times (time_s) on every window; "
                         "use `raphe synth` sets or labelled recordings")
    fitted = {}
    for path in model_files(model_path):
        model = Model(path)
        aligned = data.in_classes(model.classes)
        probabilities = model.predict(aligned.X)
        kept = ~model.novel(aligned.X)
        sequences = cell_sequences(aligned.cell[kept], aligned.y[kept], probabilities[kept])
        alpha, beta, margin = fit_posterior(sequences)
        result = {"alpha": alpha, "beta": beta, "margin": margin}
        joint = None
        if firing is not None:
            spikes = firing_sequences(aligned.cell[kept], aligned.time_s[kept], firing, model.classes)
            weight, joint_margin, firing_margin = fit_joint(sequences, spikes, alpha, beta)
            beside = model.path.parent / firing.path.name
            if beside.resolve() != firing.path.resolve():
                shutil.copyfile(firing.path, beside)
            joint = joint_part(firing.path.name, weight, joint_margin, firing_margin)
            result.update(firing_weight=weight, joint_margin=joint_margin, firing_margin=firing_margin)
        write_posterior(model.path, alpha, beta, margin, len(sequences), data_name or repr(data), joint,
                        class_means(aligned.subset(kept)))
        fitted[model.path.name] = result
    return fitted


def joint_part(firing_name: str, weight: float, joint_margin: float, firing_margin: float) -> dict:
    """The ``firing`` entry of a model's fitted posterior: which firing model, and how it is weighed."""
    return {"model": firing_name, "weight": weight, "joint_margin": joint_margin, "margin": firing_margin,
            "rule": "f = weight * log p_firing; firing: softmax(-max(max(f) - f - margin, 0)); "
                    "joint: softmax(-max(max(z + f) - z - f - joint_margin, 0))"}


def class_means(data: ws.WindowSet) -> dict[str, list[float]]:
    """Each class's average window, every window first brought to zero mean and unit spread (the
    network sees shape, not size): what `classify --report` draws a cell against."""
    X = data.X.astype(np.float64)
    shapes = (X - X.mean(axis=1, keepdims=True)) / (X.std(axis=1, keepdims=True) + 1e-9)
    return {c: np.round(shapes[data.y == k].mean(axis=0), 5).tolist() for k, c in enumerate(data.classes)
            if (data.y == k).any()}


def write_posterior(model_path, alpha: float, beta: float, margin: float, cells: int, fitted_on: str,
                    firing: dict | None = None, means: dict[str, list[float]] | None = None) -> None:
    """Put a fitted tempering (and, if given, the joint posterior's ``firing`` part and the class
    averages of :func:`class_means`) into a model's ``.json``, saying what they were fitted on; a
    refit without a firing model keeps none."""
    _, meta_path = sidecar(Path(model_path))
    metadata = json.loads(meta_path.read_text())
    previous = {k: v for k, v in metadata.get("posterior", {}).items() if k != "firing"}
    metadata["posterior"] = {**previous, "alpha": alpha, "beta": beta, "margin": margin,
                             "fitted_on_cells": cells, "fitted_on": fitted_on, "max_wrong_decisions": MAX_WRONG_DECISIONS}
    if firing is not None:
        metadata["posterior"]["firing"] = firing
    if means is not None:
        metadata["class_means"] = {"windows": means, "normalised": "each window to zero mean and unit SD",
                                   "fitted_on": fitted_on}
    with staged(meta_path) as partial:
        partial.write_text(json.dumps(metadata, indent=2) + "\n")
