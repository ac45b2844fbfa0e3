"""How each labelled cell ends when its windows go through the running cell, in recorded order,
exactly as at the rig: novel windows counted and kept out of the posterior, the decision rule of
the model's posterior configuration, and the seed's rule alongside."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.cells import Cell
from raphe.classifier.runtime.posterior import DISAGREE, NOT_CLASSIFIABLE, UNDECIDED, PosteriorConfig

from .calibration import expected_calibration_error
from .certificate import certify
from .metrics import wilson

# Evaluation replays each spike at its time on this clock (Hz): fine enough for any interval.
CLOCK_HZ = 1_000_000


@dataclass
class Outcomes:
    """One row per cell (``names``), and every prefix's confidence for calibration."""

    classes: tuple[str, ...]
    names: np.ndarray
    y: np.ndarray                  # true class index
    udi_ms: np.ndarray             # NaN where unknown
    mean_probs: np.ndarray         # (cells, C) the seed's rule: mean spike probability over all windows
    final: np.ndarray              # (cells, C) the running posterior after the last spike
    decision: np.ndarray           # str: a class, undecided, not classifiable
    spikes_to_decision: np.ndarray  # float, NaN where undecided
    seconds_to_decision: np.ndarray  # float, recorded s from the cell's start; NaN where undecided or unknown
    n_spikes: np.ndarray
    n_novel: np.ndarray
    prefix_confidence: np.ndarray  # every spike of every cell: the posterior's largest value
    prefix_correct: np.ndarray     # whether its class is the truth
    prefix_weight: np.ndarray      # 1 / spikes of its cell: cells weighted equally
    shown: np.ndarray              # (cells, C) bool: the class was the cell's decision after some spike
    disagree: np.ndarray           # bool: at the end, the shape and the firing disagree (undecided for it)

    @property
    def wrong(self) -> np.ndarray:
        return np.isin(self.decision, self.classes) & (self.decision != np.asarray(self.classes)[self.y])

    @property
    def decided(self) -> np.ndarray:
        return np.isin(self.decision, self.classes)

    @property
    def ever_wrong(self) -> np.ndarray:
        """Cells shown a class other than their own after some spike (withdrawn or not)."""
        return (self.shown & ~np.eye(len(self.classes), dtype=bool)[self.y]).any(axis=1)


def judged_config(data: ws.WindowSet, config: PosteriorConfig) -> PosteriorConfig:
    """The posterior a set can be judged with: without spike times on every window the firing
    model cannot speak, so its cells are judged by the waveform alone."""
    if config.firing is not None and not data.has_times:
        return replace(config, evidence="waveform", firing=None)
    return config


def cell_outcomes(data: ws.WindowSet, probs: np.ndarray, novel: np.ndarray, config: PosteriorConfig) -> Outcomes:
    """Replay every cell of ``data`` (labelled in the model's classes) through a :class:`Cell`, each
    spike at its time (on a microsecond clock). A set without spike times (the seed's CSV folders,
    older sets) cannot feed the firing model: its cells are judged by the waveform alone."""
    config = judged_config(data, config)
    rows = []
    confidence, correct, weights = [], [], []
    for name in np.unique(data.cell):
        index = np.flatnonzero(data.cell == name)
        label = int(data.y[index[0]])
        cell = Cell("evaluation", 0, str(name), CLOCK_HZ, data.classes, config)
        known = np.isfinite(data.time_s[index])
        ticks = np.where(known, np.round(data.time_s[index] * CLOCK_HZ), 0).astype(np.int64)
        shown = np.zeros(len(data.classes), dtype=bool)
        for i, tick in zip(index, ticks):
            post = cell.add_spike(int(tick), probs[i], data.X[i], bool(novel[i]))
            confidence.append(float(post.max()))
            correct.append(int(post.argmax()) == label)
            if cell.decision in data.classes:
                shown[data.classes.index(cell.decision)] = True
        weights += [1.0 / len(index)] * len(index)
        state = cell.state(final=True)
        spikes = state.spikes_to_decision
        seconds = state.seconds_to_decision if known.all() else None
        if state.decided:
            shown[data.classes.index(state.decision)] = True
        rows.append((name, label, data.udi_ms[index[0]], probs[index].mean(axis=0), state.posterior.copy(),
                     state.decision, np.nan if spikes is None else spikes, np.nan if seconds is None else seconds,
                     state.n_spikes, state.n_novel, shown, DISAGREE in state.hints))
    names, y, udi, mean, final, decision, to_decision, seconds, n_spikes, n_novel, shown, disagree = zip(*rows)
    return Outcomes(data.classes, np.array(names), np.array(y), np.array(udi, float), np.stack(mean), np.stack(final),
                    np.array(decision, dtype=object), np.array(to_decision, float), np.array(seconds, float),
                    np.array(n_spikes), np.array(n_novel), np.array(confidence), np.array(correct, float),
                    np.array(weights), np.stack(shown), np.array(disagree, dtype=bool))


def rate(successes: int, n: int) -> dict:
    """A proportion with its 95% Wilson interval."""
    return {"n": int(n), "k": int(successes), "rate": successes / n if n else float("nan"),
            "ci95": wilson(int(successes), int(n))}


def known_median(values: np.ndarray) -> float:
    """The median of the known values (NaN marks unknown), NaN if none is known."""
    return float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")


def shown(r: dict) -> str:
    """A :func:`rate` as a report shows it: ``96.0% [92, 98]``, or ``n/a`` for none."""
    if r["n"] == 0:
        return "n/a"
    low, high = r["ci95"]
    return f"{100 * r['rate']:.1f}% [{100 * low:.0f}, {100 * high:.0f}]"


def figures(outcomes: Outcomes, atypical_udi_ms: float) -> dict:
    """The cell-level figures of one model on one data set, each with its interval."""
    o = outcomes
    n = len(o.y)
    seed_pred = o.mean_probs.argmax(axis=1)
    post_pred = o.final.argmax(axis=1)
    result = {"cells": n,
              "cell_accuracy_seed_rule": rate(int((seed_pred == o.y).sum()), n),
              "cell_accuracy_posterior": rate(int((post_pred == o.y).sum()), n),
              "decided": rate(int(o.decided.sum()), n),
              "decided_wrongly": rate(int(o.wrong.sum()), n),
              "decided_rightly_of_decided": rate(int((o.decided & ~o.wrong).sum()), int(o.decided.sum())),
              "undecided": rate(int((o.decision == UNDECIDED).sum()), n),
              "not_classifiable": rate(int((o.decision == NOT_CLASSIFIABLE).sum()), n),
              "novel_windows": rate(int(o.n_novel.sum()), int(o.n_spikes.sum())),
              "ece_every_spike": expected_calibration_error(o.prefix_confidence, o.prefix_correct, o.prefix_weight),
              "median_spikes_to_decision": known_median(o.spikes_to_decision),
              "median_seconds_to_decision": known_median(o.seconds_to_decision),
              "decided_within_30_s": rate(int((o.seconds_to_decision <= 30.0).sum()),
                                          n if np.isfinite(o.seconds_to_decision).any() or not o.decided.any() else 0),
              "ever_decided_wrongly": rate(int(o.ever_wrong.sum()), n),
              "shape_and_firing_disagree": rate(int(o.disagree.sum()), n),
              "certificate": certify(o.shown, o.y, o.classes)}
    for k, name in enumerate(o.classes):
        mask = o.y == k
        result[f"recall_{name}_seed_rule"] = rate(int((seed_pred[mask] == k).sum()), int(mask.sum()))
    if "SER" in o.classes:
        ser = o.classes.index("SER")
        atypical = (o.y == ser) & np.isfinite(o.udi_ms) & (o.udi_ms < atypical_udi_ms)
        result["atypical_ser_seed_rule"] = rate(int((seed_pred[atypical] == ser).sum()), int(atypical.sum()))
        result["atypical_ser_decided_rightly"] = rate(int((o.decision[atypical] == "SER").sum()), int(atypical.sum()))
        result["atypical_ser_ever_decided_wrongly"] = rate(int(o.ever_wrong[atypical].sum()), int(atypical.sum()))
    return result


def tradeoff(outcomes: Outcomes, thresholds: np.ndarray, min_spikes: int) -> list[dict]:
    """Cells decided and cells decided wrongly (shares of all cells) at each decision threshold.

    A cell's decision at the end depends only on its final posterior (a decision is withdrawn when
    the posterior falls back), so the curve needs no second pass over the spikes."""
    o = outcomes
    usable = (o.n_spikes - o.n_novel >= min_spikes) & (o.decision != NOT_CLASSIFIABLE)
    best = o.final.max(axis=1)
    right = o.final.argmax(axis=1) == o.y
    rows = []
    for t in thresholds:
        decided = usable & (best >= t)
        rows.append({"threshold": float(t), "decided": float(decided.mean()),
                     "decided_wrongly": float((decided & ~right).mean())})
    return rows


def posterior_summary(outcomes: Outcomes, config: PosteriorConfig) -> dict:
    """The running posterior's decisions and calibration, as `raphe evaluate` reports them."""
    o = outcomes
    n = len(o.y)
    decided = int(o.decided.sum())
    right = int((o.decided & ~o.wrong).sum())
    final_correct = (o.final.argmax(axis=1) == o.y).astype(float)
    return {"alpha": config.alpha, "beta": config.beta, "evidence": config.evidence,
            "firing_weight": config.firing_weight if config.firing is not None else None, "threshold": config.threshold,
            "thresholds": dict(zip(o.classes, map(float, config.class_thresholds(len(o.classes))))),
            "waveform_cap": config.waveform_cap, "conflict": config.conflict,
            "shape_and_firing_disagree": int(o.disagree.sum()), "ever_decided_wrongly": int(o.ever_wrong.sum()),
            "certificate": certify(o.shown, o.y, o.classes),
            "min_spikes": config.min_spikes, "cells": n, "decided": decided,
            "undecided": int((o.decision == UNDECIDED).sum()),
            "not_classifiable": int((o.decision == NOT_CLASSIFIABLE).sum()),
            "novel_windows": int(o.n_novel.sum()), "windows": int(o.n_spikes.sum()),
            "decided_accuracy": right / decided if decided else float("nan"),
            "decided_accuracy_ci95": wilson(right, decided),
            "final_argmax_accuracy": float(final_correct.mean()),
            "median_spikes_to_decision": known_median(o.spikes_to_decision),
            "median_seconds_to_decision": known_median(o.seconds_to_decision),
            "ece_every_spike": expected_calibration_error(o.prefix_confidence, o.prefix_correct, o.prefix_weight),
            "ece_final": expected_calibration_error(o.final.max(axis=1), final_correct)}
