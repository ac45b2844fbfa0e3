"""Decisions with a certificate: each class's decision threshold chosen by risk control on held-out
cells, and the bound on wrong decisions that a set of judged cells supports.

A cell is *shown* a class when, at some spike, its running posterior for that class reaches the
class's threshold (after the minimum spikes, with no veto and no shape-firing conflict): the risk
is that of the whole stopping rule, checked at every spike, not only of the end.

- Choosing (``raphe calibrate``, the final model of ``raphe crossval``): for each class, the share
  of cells shown that class that are of another class is controlled by Learn-then-Test (MAPIE's
  ``BinaryClassificationController``: precision, Bonferroni-Holm over the candidate thresholds),
  which picks the least strict of ``CANDIDATES`` whose share is at most ``TARGET`` at
  ``CONFIDENCE``. Thresholds never fall below 0.99; where no candidate is certified the class keeps
  0.99 and its certificate says so.
- Judging (``evaluate``, ``matrix``, ``crossval``): with k cells shown a wrong class among n shown a
  class, the share decided wrongly is at most the one-sided Clopper-Pearson bound at ``CONFIDENCE``;
  where that bound is above ``TARGET``, the certificate says how many decided cells it would take.

scipy and MAPIE come with the ``train`` extra (the runtime needs neither): they are imported where
they are used.
"""

from __future__ import annotations

import warnings

import numpy as np

from raphe.core.errors import RapheError

TARGET = 0.02
CONFIDENCE = 0.95
CANDIDATES = (0.99, 0.995, 0.999, 0.9999)
UNCERTIFIED_THRESHOLD = 0.99
NEEDS_TRAIN_EXTRA = "certificates need scipy and MAPIE: pip install 'raphe[train]' (make test installs them)"


def upper_bound(wrong: int, decided: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided Clopper-Pearson upper bound on a share, from ``wrong`` of ``decided``."""
    try:
        from scipy.stats import beta
    except ImportError:
        raise RapheError(NEEDS_TRAIN_EXTRA) from None
    if decided == 0 or wrong >= decided:
        return 1.0
    return float(beta.ppf(confidence, wrong + 1, decided - wrong))


def cells_needed(wrong: int, target: float = TARGET, confidence: float = CONFIDENCE) -> int:
    """The fewest decided cells, ``wrong`` of them wrong, whose bound is at most ``target``."""
    low, high = wrong + 1, max(2 * (wrong + 1), 16)
    while upper_bound(wrong, high, confidence) > target:
        low, high = high, 2 * high
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if upper_bound(wrong, middle, confidence) <= target else (middle + 1, high)
    return low


def bound(wrong: int, decided: int, target: float = TARGET, confidence: float = CONFIDENCE) -> dict:
    """The certificate of ``wrong`` of ``decided``: the bound, whether it certifies ``target``, and
    otherwise how many decided cells (with as few errors) would."""
    upper = upper_bound(wrong, decided, confidence)
    return {"decided": int(decided), "wrong": int(wrong), "upper_bound": upper, "target": target,
            "confidence": confidence, "certified": upper <= target,
            "cells_needed": None if upper <= target else cells_needed(wrong, target, confidence)}


def words(b: dict, what: str = "decided wrongly") -> str:
    """A certificate in one line: ``decided wrongly ≤ 2.0% at 95% confidence from 412 decided cells``,
    or what the data cannot certify and what it would take."""
    confidence = f"{100 * b['confidence']:.0f}% confidence"
    if b["certified"]:
        return (f"{what} ≤ {100 * b['upper_bound']:.1f}% at {confidence} from {b['decided']} decided cells "
                f"({b['wrong']} wrong)")
    errors = "without an error" if b["wrong"] == 0 else f"with at most {b['wrong']} wrong"
    observed = "no cell decided" if b["decided"] == 0 else (
        f"{b['wrong']} wrong of {b['decided']} decided, bound {100 * b['upper_bound']:.1f}%")
    return (f"{what}: cannot certify ≤ {100 * b['target']:.1f}% at {confidence} ({observed}): needs ≥ "
            f"{b['cells_needed']} decided cells {errors}")


def in_full(certificate: dict) -> str:
    """A judged set's certificate as one line: overall, then per class."""
    return "; ".join([certificate["text"], *(part["text"] for part in certificate["per_class"].values())])


def certify(shown: np.ndarray, truth: np.ndarray, classes: tuple[str, ...], target: float = TARGET,
            confidence: float = CONFIDENCE) -> dict:
    """The certificate of judged cells: ``shown`` (cells, C) says which classes each cell was shown
    at some spike, ``truth`` its class index. Overall (a cell shown any wrong class is wrong) and per
    class (of the cells shown a class, those of another)."""
    shown = np.asarray(shown, dtype=bool)
    own = np.eye(len(classes), dtype=bool)[truth]
    decided = shown.any(axis=1)
    wrong = (shown & ~own).any(axis=1)
    result = bound(int(wrong.sum()), int(decided.sum()), target, confidence)
    result["text"] = words(result)
    result["per_class"] = {}
    for k, name in enumerate(classes):
        part = bound(int((shown[:, k] & ~own[:, k]).sum()), int(shown[:, k].sum()), target, confidence)
        part["text"] = words(part, f"decided {name} wrongly")
        result["per_class"][name] = part
    return result


def choose_thresholds(peaks: np.ndarray, truth: np.ndarray, classes: tuple[str, ...], target: float = TARGET,
                      confidence: float = CONFIDENCE) -> dict:
    """Each class's decision threshold by risk control on held-out cells: ``peaks`` (cells, C) is the
    highest posterior of each class a cell reached where it could be decided, ``truth`` its class.
    Returns the thresholds and, per class, the certificate of the chosen one on these cells."""
    try:
        from mapie.risk_control import BinaryClassificationController
    except ImportError:
        raise RapheError(NEEDS_TRAIN_EXTRA) from None
    thresholds, per_class = {}, {}
    for k, name in enumerate(classes):
        scores = np.asarray(peaks[:, k], dtype=float)
        positive = (np.asarray(truth) == k).astype(int)
        # a threshold no cell reaches decides nothing (its precision is undefined, and one undefined
        # p-value voids the whole Bonferroni-Holm family): only thresholds some cell reaches compete
        reached = np.array([t for t in CANDIDATES if (scores >= t).any()])
        chosen = None
        if len(reached):
            controller = BinaryClassificationController(
                predict_function=lambda s: np.column_stack([1.0 - s, s]), risk="precision", target_level=1.0 - target,
                confidence_level=confidence, list_predict_params=reached)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no threshold controls the risk" is reported below, in words
                controller.calibrate(scores, positive)
            chosen = controller.best_predict_param
        threshold = UNCERTIFIED_THRESHOLD if chosen is None else float(chosen)
        shown = scores >= threshold
        part = bound(int((shown & (positive == 0)).sum()), int(shown.sum()), target, confidence)
        part.update(threshold=threshold, risk_controlled=chosen is not None,
                    text=words(part, f"decided {name} wrongly") + ("" if chosen is not None else
                                                                  " (risk control certified no threshold: 0.99 kept)"))
        thresholds[name], per_class[name] = threshold, part
    return {"thresholds": thresholds, "per_class": per_class, "target": target, "confidence": confidence,
            "cells": int(len(truth)), "procedure": "Learn-then-Test (MAPIE BinaryClassificationController, "
                                                    "precision, Bonferroni-Holm) over the whole stopping rule"}
