"""The figures of an evaluation, as pure functions: intervals, ROC and AUC, per-class rates,
confusion matrices, and the cell table of the seed's rule (the running posterior's figures are in
``outcomes``).

Two kinds of rate are reported and named apart: per true class (TPR = recall of the class, TNR =
specificity) and per predicted class (precision; the seed's confusion matrices are normalized this
way). The first class of the model (SER for the default) is the positive class of AUC and ROC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from raphe.classifier.runtime import windows as ws

UDI_BINS_MS = (0.0, 0.6, 0.9, 1.2, 1.6, math.inf)


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (nan, nan) for n = 0."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def roc(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every threshold, from (0, 0) to (1, 1)."""
    order = np.argsort(-scores, kind="stable")
    s, pos = scores[order], positive[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = np.cumsum(pos)[distinct], np.cumsum(~pos)[distinct]
    n_pos, n_neg = max(pos.sum(), 1), max((~pos).sum(), 1)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney probability, ties counted half)."""
    if positive.all() or not positive.any():
        return math.nan
    fpr, tpr = roc(scores, positive)
    return float(np.trapezoid(tpr, fpr))


def sensitivity_at_specificity(scores: np.ndarray, positive: np.ndarray, specificity: float = 0.5) -> float:
    """The seed's figure: the highest TPR among thresholds whose TNR is at least ``specificity``."""
    fpr, tpr = roc(scores, positive)
    ok = (1.0 - fpr) >= specificity
    return float(tpr[ok].max()) if ok.any() else math.nan


def class_rates(y: np.ndarray, pred: np.ndarray, classes: tuple[str, ...]) -> dict[str, dict]:
    """Per class: TPR (recall, per true class), TNR (specificity), precision (per predicted class), F1, n."""
    rates = {}
    for k, name in enumerate(classes):
        tp = int(((pred == k) & (y == k)).sum())
        fn = int(((pred != k) & (y == k)).sum())
        fp = int(((pred == k) & (y != k)).sum())
        tn = int(((pred != k) & (y != k)).sum())
        tpr = tp / (tp + fn) if tp + fn else math.nan
        precision = tp / (tp + fp) if tp + fp else math.nan
        f1 = 2 * tpr * precision / (tpr + precision) if tpr + precision > 0 else math.nan
        rates[name] = {"n": tp + fn, "tpr_recall": tpr, "tpr_ci95": wilson(tp, tp + fn),
                       "tnr_specificity": tn / (tn + fp) if tn + fp else math.nan,
                       "precision": precision, "precision_ci95": wilson(tp, tp + fp), "f1": f1}
    return rates


def confusion(y: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    return np.bincount(y * n + pred, minlength=n * n).reshape(n, n)


@dataclass
class CellTable:
    """One row per cell: true class, mean spike probabilities (seed's rule), spikes, UDI."""

    names: np.ndarray
    y: np.ndarray
    mean_probs: np.ndarray
    n_spikes: np.ndarray
    udi_ms: np.ndarray


def cell_table(data: ws.WindowSet, probs: np.ndarray) -> CellTable:
    names, first, inverse = np.unique(data.cell, return_index=True, return_inverse=True)
    counts = np.bincount(inverse)
    mean = np.stack([np.bincount(inverse, weights=probs[:, k]) / counts for k in range(probs.shape[1])], axis=1)
    return CellTable(names, data.y[first], mean, counts, data.udi_ms[first])


def level_metrics(y: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    pred = probs.argmax(axis=1)
    correct = int((pred == y).sum())
    positive = y == 0
    return {"n": len(y), "accuracy": correct / len(y) if len(y) else math.nan,
            "accuracy_ci95": wilson(correct, len(y)),
            "auc": auc(probs[:, 0], positive) if len(classes) == 2 else
            float(np.nanmean([auc(probs[:, k], y == k) for k in range(len(classes))])),
            "sensitivity_at_specificity_0.5": sensitivity_at_specificity(probs[:, 0], positive),
            "classes": class_rates(y, pred, classes),
            "confusion_true_by_predicted": confusion(y, pred, len(classes)).tolist()}


def udi_bins(cells: CellTable, classes: tuple[str, ...]) -> list[dict]:
    rows = []
    known = np.isfinite(cells.udi_ms)
    pred = cells.mean_probs.argmax(axis=1)
    for k, name in enumerate(classes):
        for low, high in zip(UDI_BINS_MS[:-1], UDI_BINS_MS[1:]):
            mask = known & (cells.y == k) & (cells.udi_ms >= low) & (cells.udi_ms < high)
            n, correct = int(mask.sum()), int((pred[mask] == k).sum())
            if n:
                rows.append({"class": name, "udi_ms": [low, high], "cells": n, "accuracy": correct / n,
                             "accuracy_ci95": wilson(correct, n)})
    return rows
