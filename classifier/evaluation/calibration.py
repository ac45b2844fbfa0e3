"""Calibrating the running cell posterior: its tempering fitted on held-out cells, so that it holds
on cells of a source the model was not trained on, and the expected calibration error that judges it.

The tempering (``alpha``, ``beta``, ``margin`` and the ``waveform_cap``; see ``runtime.posterior``) is
fitted by minimizing the negative log-likelihood of the true class over every prefix of held-out
cells, each cell weighted equally, so the posterior is calibrated at every spike count, not only at
the end; among the tempering that, over the whole stopping rule (the running posterior checked at
every spike), shows a wrong class for at most 1% of the cells of *every group* of calibration cells
(a tool sure and wrong is worse than one that abstains).

A group is one set of cells as one model saw them. `raphe calibrate` makes one per (model, data
set); with ``--across`` it judges other models too, typically those trained with one generator left
out, each on cells of the generator it never saw, and gives all of them one shared posterior: the
waveform evidence then saturates (``waveform_cap``) where shape evidence stops carrying from one
simulator to another, since a long run of one ambiguous shape is one shape.

With a firing model (``calibrate --firing``), the same held-out cells, replayed at their spike
times, fit how much the firing evidence weighs in the joint posterior (``firing_weight``, the
waveform's tempering held), the margins of the joint and the firing-alone posteriors, and the
``conflict`` level beyond which a shape and a firing that lean to different classes keep the cell
undecided: conflict cells (``evaluation.conflict``: each cell's spikes re-timed with the other
class's firing) are groups of their own, which may decide wrongly at most 5% of their cells. A weight
of 0 is allowed: where firing misleads on held-out cells, the joint posterior is the waveform's.

Last, each class's decision threshold is chosen by risk control (``evaluation.certificate``), and
the certificate goes into the model's ``.json`` with the fit. Only the ``.json`` changes: the
checksum covers the ``.tflite``, which stays as it is.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.firing import FiringModel, Train
from raphe.classifier.runtime.model import Model, model_files, sidecar
from raphe.classifier.runtime.posterior import (capped, disagreement, log_evidence, tempered_evidence,
                                                with_margin)
from raphe.core.errors import RapheError
from raphe.core.specs import DECISION_THRESHOLD, MIN_SPIKES
from raphe.core.staged import staged

from .certificate import choose_thresholds
from .conflict import conflict_cells

# The tempering may show a wrong class for at most this share of every group's cells; conflict
# cells (whose firing misleads by construction) for at most CONFLICT_MAX_WRONG. Across generators
# these are the targets themselves: at 0.5% and 2% (no error at all in a group of 100 cells) the fit
# over three generators decided 1% of the unseen generator's cells and a quarter of all.
MAX_WRONG_DECISIONS = 0.01
CONFLICT_MAX_WRONG = 0.05
MARGINS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
ALPHAS = np.logspace(-2.5, 1.0, 36)
BETAS = np.r_[0.0, np.logspace(-3, 1.0, 21)]
NO_CAP = float("inf")
WAVEFORM_CAPS = (NO_CAP, 12.0, 8.0, 6.0, 5.0, 4.0, 3.0, 2.0)
FIRING_WEIGHTS = tuple(np.r_[0.0, np.logspace(-1.5, 0.7, 23)])
# From no conflict rule down to "any disagreement at all": the first (least abstaining) level that
# keeps every group within its bound wins.
CONFLICTS = (float("inf"), 8.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.0)


@dataclass(frozen=True)
class Group:
    """Held-out cells as one model saw them: per cell, its class index and its kept spikes'
    probabilities (n, C) in recorded order; with a firing model, its firing log-probabilities after
    each of them (:func:`firing_sequences`). ``conflict``: conflict cells, whose firing belongs to
    another class."""

    name: str
    sequences: list[tuple[int, np.ndarray]]
    firing: list[np.ndarray] | None = None
    conflict: bool = False


@dataclass(frozen=True)
class Fit:
    """A fitted cell posterior (``runtime.posterior`` says what each number does)."""

    alpha: float
    beta: float
    margin: float
    waveform_cap: float = NO_CAP
    firing_weight: float | None = None
    joint_margin: float = 0.0
    firing_margin: float = 0.0
    conflict: float = float("inf")


def cell_sequences(cells: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Per cell, its class index and its spikes' probabilities (n, C) in recorded order: what a
    :class:`Group` holds. ``cells``, ``labels`` and ``probabilities`` are per spike."""
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


class Judge:
    """Every prefix of every cell of every group in one set of arrays, and how a posterior over them
    is judged: (the shares of cells shown a wrong class beyond each group's bound, summed; the
    cell-weighted NLL of the true class over every prefix, each ordinary group weighing alike)."""

    def __init__(self, groups: list[Group], threshold: float = DECISION_THRESHOLD, min_spikes: int = MIN_SPIKES,
                 max_wrong: float = MAX_WRONG_DECISIONS):
        groups = [g for g in groups if any(len(p) for _, p in g.sequences)]
        if not groups:
            raise RapheError("no cell with spikes to fit the posterior on")
        sums, counts, labels, weights, starts, cell_group, firing = [], [], [], [], [], [], []
        offset, ordinary = 0, sum(not g.conflict for g in groups)
        for k, group in enumerate(groups):
            kept = [(s, f) for s, f in zip(group.sequences, group.firing or [None] * len(group.sequences)) if len(s[1])]
            g_sums, g_counts, g_labels, g_weights = prefixes([s for s, _ in kept])
            sums.append(g_sums)
            counts.append(g_counts)
            labels.append(g_labels)
            weights.append(np.zeros_like(g_weights) if group.conflict else g_weights / len(kept) / ordinary)
            lengths = [len(s[1]) for s, _ in kept]
            starts.append(offset + np.r_[0, np.cumsum(lengths)[:-1]])
            offset += len(g_labels)
            cell_group.append(np.full(len(kept), k))
            if group.firing is not None:
                firing.append(np.concatenate([f for _, f in kept]))
        self.sums, self.counts = np.concatenate(sums), np.concatenate(counts)
        self.labels, self.weights = np.concatenate(labels), np.concatenate(weights)
        self.starts, self.cell_group = np.concatenate(starts), np.concatenate(cell_group)
        self.firing = np.concatenate(firing) if len(firing) == len(groups) else None
        self.groups = groups
        self.cells = np.bincount(self.cell_group, minlength=len(groups))
        self.bounds = np.array([CONFLICT_MAX_WRONG if g.conflict else max_wrong for g in groups])
        self.eligible = self.counts >= min_spikes
        self.threshold = threshold
        self.truth = np.eye(sums[0].shape[1], dtype=bool)[self.labels]

    def key(self, p: np.ndarray, blocked: np.ndarray | None = None) -> tuple[float, float]:
        decided = self.eligible & (p.max(axis=1) >= self.threshold)
        if blocked is not None:
            decided &= ~blocked
        wrong = decided & (p.argmax(axis=1) != self.labels)
        shown_wrong = np.add.reduceat(wrong, self.starts) > 0
        shares = np.bincount(self.cell_group, shown_wrong, minlength=len(self.groups)) / self.cells
        nll = -(self.weights * np.log(np.clip(p[self.truth], 1e-12, 1.0))).sum()
        return float(np.maximum(shares - self.bounds, 0.0).sum()), float(nll)

    def peaks(self, p: np.ndarray, blocked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per cell of the ordinary groups, the highest posterior of each class at a spike where the
        cell could be decided, and its true class: what risk control chooses thresholds by."""
        open_ = self.eligible if blocked is None else self.eligible & ~blocked
        peak = np.maximum.reduceat(np.where(open_[:, None], p, 0.0), self.starts, axis=0)
        ordinary = ~np.array([g.conflict for g in self.groups])[self.cell_group]
        return peak[ordinary], self.labels[self.starts][ordinary]


def fit_posterior(groups: list[Group] | list[tuple[int, np.ndarray]], threshold: float = DECISION_THRESHOLD,
                  min_spikes: int = MIN_SPIKES, max_wrong: float = MAX_WRONG_DECISIONS,
                  caps: tuple[float, ...] = WAVEFORM_CAPS) -> Fit:
    """The waveform's tempering (alpha, beta, margin, waveform cap) minimizing the cell-weighted NLL
    over all prefixes, among those that show a wrong class (at ``threshold`` after ``min_spikes``)
    for at most ``max_wrong`` of the cells of every group; where none does, the one that exceeds the
    bounds least. ``groups``: :class:`Group`s, or one group's sequences (conflict groups are left
    out: their waveforms are their cells')."""
    if groups and not isinstance(groups[0], Group):
        groups = [Group("held-out cells", groups)]
    judge = Judge([g for g in groups if not g.conflict], threshold, min_spikes, max_wrong)

    def search(alphas, betas, start: tuple[Fit, tuple]) -> tuple[Fit, tuple]:
        best, best_key = start
        for beta in betas:
            for alpha in alphas:
                z = tempered_evidence(judge.sums, judge.counts, alpha, beta)
                for cap in caps:
                    zc = capped(z, cap)
                    for margin in MARGINS:
                        key = judge.key(with_margin(zc, margin))
                        if key < best_key:
                            best, best_key = Fit(float(alpha), float(beta), float(margin), float(cap)), key
        return best, best_key

    # every third alpha and beta first, then every one around the best of those: the objective is
    # smooth in both, and the whole grid over many calibration cells would take an hour
    coarse = search(ALPHAS[::3], BETAS[::3], (Fit(1.0, 0.0, 0.0), (np.inf, np.inf)))
    i, j = int(np.abs(ALPHAS - coarse[0].alpha).argmin()), int(np.abs(BETAS - coarse[0].beta).argmin())
    return search(ALPHAS[max(i - 2, 0):i + 3], BETAS[max(j - 2, 0):j + 3], coarse)[0]


def fit_joint(groups: list[Group], waveform: Fit, threshold: float = DECISION_THRESHOLD,
              min_spikes: int = MIN_SPIKES, max_wrong: float = MAX_WRONG_DECISIONS) -> Fit:
    """``waveform`` with the joint posterior fitted by the objective of :func:`fit_posterior`: the
    firing weight and the joint margin, then the conflict level (the least abstaining that keeps
    every group, conflict cells included, within its bound), then the firing-alone margin. Every
    group needs its ``firing``."""
    judge = Judge(groups, threshold, min_spikes, max_wrong)
    if judge.firing is None:
        raise RapheError("fitting the joint posterior needs the firing evidence of every group")
    z = capped(tempered_evidence(judge.sums, judge.counts, waveform.alpha, waveform.beta), waveform.waveform_cap)
    best, best_key = (0.0, 0.0, float("inf")), (np.inf, np.inf)
    for weight in FIRING_WEIGHTS:
        f = weight * judge.firing
        joint = z + f
        for conflict in CONFLICTS:
            blocked = disagreement(z, f, conflict)
            for margin in MARGINS:
                key = judge.key(with_margin(joint, margin), blocked)
                if key < best_key:
                    best, best_key = (float(weight), float(margin), float(conflict)), key
    weight, joint_margin, conflict = best
    ordinary = Judge([g for g in groups if not g.conflict], threshold, min_spikes, max_wrong)
    alone = min(MARGINS, key=lambda m: ordinary.key(with_margin(weight * ordinary.firing, m))) if weight else 0.0
    return Fit(waveform.alpha, waveform.beta, waveform.margin, waveform.waveform_cap, weight, joint_margin,
               float(alone), conflict)


def deciding_peaks(groups: list[Group], fit: Fit, min_spikes: int = MIN_SPIKES) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of the ordinary groups, the highest posterior of each class it reaches where it could
    be decided (the joint's with a firing fit, else the waveform's), and its true class."""
    judge = Judge(groups, min_spikes=min_spikes)
    z = capped(tempered_evidence(judge.sums, judge.counts, fit.alpha, fit.beta), fit.waveform_cap)
    if fit.firing_weight is None or judge.firing is None:
        return judge.peaks(with_margin(z, fit.margin))
    f = fit.firing_weight * judge.firing
    return judge.peaks(with_margin(z + f, fit.joint_margin), disagreement(z, f, fit.conflict))


def risk_controlled(groups: list[Group], fit: Fit, classes: tuple[str, ...]) -> dict:
    """Each class's decision threshold chosen by risk control on the cells of ``groups`` under
    ``fit``, with its certificate (``certificate.choose_thresholds``)."""
    return choose_thresholds(*deciding_peaks(groups, fit), classes)


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


def calibrate(model_path, data: dict[str, ws.WindowSet], firing_path: str | Path | None = None,
              across: tuple = ()) -> dict[str, dict]:
    """Refit the cell posterior of every model at ``model_path`` on the cells of each set of ``data``
    (name -> window set), with ``firing_path`` the joint posterior with that firing model too (copied
    beside each model), then choose each class's threshold by risk control. Each model gets its own
    fit; with ``across`` (more models, or folders of them) one posterior is fitted for all of them
    together, every (model, set) a group that must hold, and written to each. Returns what was
    fitted and certified, per model file."""
    firing = FiringModel(firing_path) if firing_path is not None else None
    if firing is not None and not all(s.has_times for s in data.values()):
        raise RapheError("calibrating a firing model needs spike times (time_s) on every window; "
                         "use `raphe synth` sets or labelled recordings")
    paths = model_files(model_path)
    shared = [p for extra in across for p in model_files(extra)]
    fitted_on = ", ".join(data)
    results = {}
    for paths_fitted_together in ([paths + shared] if shared else [[p] for p in paths]):
        models = [Model(p) for p in paths_fitted_together]
        groups, kept_windows = [], {}
        for model in models:
            for name, windows in data.items():
                aligned = windows.in_classes(model.classes)
                kept = ~model.novel(aligned.X)
                seen = aligned.subset(kept)
                groups += groups_of(f"{model.path.name} on {name}", seen, model.predict(seen.X), firing, model.classes)
                kept_windows.setdefault(model.path, []).append(seen)
        fit = fit_posterior(groups)
        if firing is not None:
            fit = fit_joint(groups, fit)
        certificate = risk_controlled(groups, fit, models[0].classes)
        cells = sum(len(g.sequences) for g in groups if not g.conflict)
        how = (f"{fitted_on}, judged by {len(models)} models together ({', '.join(m.path.name for m in models)})"
               if shared else fitted_on)
        for model in models:
            joint = None
            if firing is not None:
                beside = model.path.parent / firing.path.name
                if beside.resolve() != firing.path.resolve():
                    shutil.copyfile(firing.path, beside)
                joint = joint_part(firing.path.name, fit)
            write_posterior(model.path, fit, cells, how, joint, class_means(ws.concatenate(kept_windows[model.path])),
                            certificate)
            results[model.path.name] = {**asdict(fit), "cells": cells, "certificate": certificate}
    return results


def groups_of(label: str, seen: ws.WindowSet, probabilities: np.ndarray, firing: FiringModel | None,
              classes: tuple[str, ...]) -> list[Group]:
    """The calibration groups of held-out cells as one model saw them: ``seen`` (the windows the
    posterior takes, novel ones left out) and their ``probabilities``; with a firing model, their
    firing evidence and their conflict cells as a group of their own."""
    sequences = cell_sequences(seen.cell, seen.y, probabilities)
    if firing is None:
        return [Group(label, sequences)]
    groups = [Group(label, sequences, firing_sequences(seen.cell, seen.time_s, firing, classes))]
    conflict, rows = conflict_cells(seen)
    if len(conflict):
        groups.append(Group(f"{label}, conflict cells", cell_sequences(conflict.cell, conflict.y, probabilities[rows]),
                            firing_sequences(conflict.cell, conflict.time_s, firing, classes), conflict=True))
    return groups


def joint_part(firing_name: str, fit: Fit) -> dict:
    """The ``firing`` entry of a model's fitted posterior: which firing model, how it is weighed, and
    when a disagreement with the shape keeps a cell undecided."""
    return {"model": firing_name, "weight": fit.firing_weight, "joint_margin": fit.joint_margin,
            "margin": fit.firing_margin, "conflict": finite_or_none(fit.conflict),
            "rule": "f = weight * log p_firing; firing: softmax(-max(max(f) - f - margin, 0)); "
                    "joint: softmax(-max(max(z + f) - z - f - joint_margin, 0)), undecided where z and f lean "
                    "to different classes each by more than conflict"}


def class_means(data: ws.WindowSet) -> dict[str, list[float]]:
    """Each class's average window, every window first brought to zero mean and unit spread (the
    network sees shape, not size): what `classify --report` draws a cell against."""
    X = data.X.astype(np.float64)
    shapes = (X - X.mean(axis=1, keepdims=True)) / (X.std(axis=1, keepdims=True) + 1e-9)
    return {c: np.round(shapes[data.y == k].mean(axis=0), 5).tolist() for k, c in enumerate(data.classes)
            if (data.y == k).any()}


def write_posterior(model_path, fit: Fit, cells: int, fitted_on: str, firing: dict | None = None,
                    means: dict[str, list[float]] | None = None, certificate: dict | None = None) -> None:
    """Put a fitted posterior (and, if given, the joint posterior's ``firing`` part, the class
    averages of :func:`class_means` and the risk control's thresholds and certificate) into a
    model's ``.json``, saying what they were fitted on; a refit without a firing model keeps none,
    one without a certificate keeps none."""
    _, meta_path = sidecar(Path(model_path))
    metadata = json.loads(meta_path.read_text())
    previous = {k: v for k, v in metadata.get("posterior", {}).items() if k not in ("firing", "certificate")}
    metadata["posterior"] = {**previous, "alpha": fit.alpha, "beta": fit.beta, "margin": fit.margin,
                             "waveform_cap": finite_or_none(fit.waveform_cap), "fitted_on_cells": cells, "fitted_on": fitted_on,
                             "max_wrong_decisions": MAX_WRONG_DECISIONS}
    if firing is not None:
        metadata["posterior"]["firing"] = firing
    if certificate is not None:
        metadata["posterior"]["certificate"] = certificate
    if means is not None:
        metadata["class_means"] = {"windows": means, "normalised": "each window to zero mean and unit SD",
                                   "fitted_on": fitted_on}
    with staged(meta_path) as partial:
        partial.write_text(json.dumps(metadata, indent=2) + "\n")


def finite_or_none(value: float) -> float | None:
    """A level as strict JSON holds it: null for none (no cap, no conflict rule)."""
    return float(value) if np.isfinite(value) else None
