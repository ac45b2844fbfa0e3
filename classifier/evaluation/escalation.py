"""`raphe cascade`: the margin below which a student hands a window to its ensemble, chosen on one
group of held-out sets and measured on another (``runtime.cascade``).

The margin is the smallest on a grid of ``MARGIN_STEP`` (from 0: the student alone) at which the
cascade gives the ensemble's most probable class on at least ``target`` of the windows of every set
it is chosen on. On every set it is checked on, its file records the share of windows on which it
agrees with the ensemble, the share it hands on, and how its cells end: each cell's spikes through
the running cell, in recorded order, with the ensemble's posterior (``evaluation.outcomes``), once
with the ensemble's answers and once with the cascade's. It stands in for the ensemble where every
checked set agrees on at least ``STAND_IN_AGREEMENT`` of its windows, no checked cell is decided as
another class than the ensemble decides it, and no more are decided wrongly. (A cell the ensemble
decides with a posterior at its threshold's edge may stay undecided: the file counts them.)
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.cascade import check_pair, is_cascade, unsure
from raphe.classifier.runtime.model import Model
from raphe.core.errors import RapheError
from raphe.core.specs import CASCADE_FORMAT, CASCADE_TARGET, STAND_IN_AGREEMENT

from .outcomes import cell_outcomes

MARGIN_STEP = 0.01


def answers(student: np.ndarray, ensemble: np.ndarray, margin: float) -> np.ndarray:
    """The cascade's probabilities from both models' on the same windows: the ensemble's where the
    student is unsure (as ``Cascade.predict`` gives them, without running the ensemble on the rest)."""
    return np.where(unsure(student, margin)[:, None], ensemble, student)


def agreement(probabilities: np.ndarray, ensemble: np.ndarray) -> float:
    """Share of windows on which ``probabilities`` give the ensemble's most probable class."""
    return float(np.mean(probabilities.argmax(axis=1) == ensemble.argmax(axis=1)))


def choose_margin(pairs: dict[str, tuple[np.ndarray, np.ndarray]], target: float = CASCADE_TARGET) -> float:
    """The smallest margin of the grid at which the cascade agrees with the ensemble on at least
    ``target`` of every set's windows (``pairs``: per set, the student's and the ensemble's
    probabilities). At 1, the last, every window goes to the ensemble: the target always holds."""
    for margin in np.round(np.arange(0.0, 1.0, MARGIN_STEP), 6):
        if all(agreement(answers(s, e, margin), e) >= target for s, e in pairs.values()):
            return float(margin)
    return 1.0


def build_cascade(student_path: str | Path, ensemble_path: str | Path, choose: dict[str, ws.WindowSet],
                  check: dict[str, ws.WindowSet], out: str | Path, target: float = CASCADE_TARGET,
                  recipe: str = "") -> dict:
    """Choose the margin on ``choose``, measure the cascade on ``check``, and write its file at
    ``out`` (beside both models, whose files it names). Returns what it wrote."""
    out = Path(out)
    if out.suffix != ".json" or (out.exists() and not is_cascade(out)):
        raise RapheError(f"{out}: a cascade's file is a new .json (or a cascade's, to measure again); this would "
                         "overwrite something else")
    student, ensemble = Model(student_path), Model(ensemble_path)
    for model in (student, ensemble):
        if model.path.parent.resolve() != out.parent.resolve():
            raise RapheError(f"{model.path}: a cascade's file must sit beside its two models (write it in "
                             f"{model.path.parent})")
    check_pair(student, ensemble)
    if not choose or not check:
        raise RapheError("a cascade needs held-out sets to choose its margin on (--choose) and others to check it on (--check)")
    if not 0.5 < target <= 1.0:
        raise RapheError(f"--target must be in (0.5, 1] (got {target:g})")

    def both(data: ws.WindowSet) -> tuple[np.ndarray, np.ndarray]:
        return student.predict(data.X), ensemble.predict(data.X)

    chosen_pairs = {name: both(data.in_classes(student.classes)) for name, data in choose.items()}
    margin = choose_margin(chosen_pairs, target)
    config = ensemble.posterior_config()
    chosen_on, checked_on, agreements = {}, {}, []
    for name, (s, e) in chosen_pairs.items():
        chosen_on[name] = {"windows": len(s), "agreement": round(agreement(answers(s, e, margin), e), 5),
                           "escalated": round(float(unsure(s, margin).mean()), 5)}
    for name, data in check.items():
        data = data.in_classes(student.classes)
        s, e = both(data)
        cascade = answers(s, e, margin)
        agreements.append(agreement(cascade, e))
        novel = ensemble.novel(data.X)
        ends = {who: cell_outcomes(data, probs, novel, config) for who, probs in (("ensemble", e), ("cascade", cascade))}
        checked_on[name] = {"windows": len(s), "agreement": round(agreements[-1], 5),
                            "student_alone": round(agreement(s, e), 5),
                            "escalated": round(float(unsure(s, margin).mean()), 5),
                            "cells": len(ends["ensemble"].names),
                            "same_decision": int(np.sum(ends["ensemble"].decision == ends["cascade"].decision)),
                            "other_class": other_class(ends["ensemble"], ends["cascade"]),
                            **{f"decided_{who}": decided(o) for who, o in ends.items()},
                            **{f"wrong_{who}": wrong(o) for who, o in ends.items()}}
    stands_in = (min(agreements) >= STAND_IN_AGREEMENT
                 and all(c["other_class"] == 0 and c["wrong_cascade"] <= c["wrong_ensemble"] for c in checked_on.values()))
    written = {"format": CASCADE_FORMAT,
               "student": member(student), "ensemble": member(ensemble), "margin": margin, "target": target,
               "chosen_on": chosen_on, "checked_on": checked_on, "stand_in_agreement": STAND_IN_AGREEMENT,
               "stands_in": stands_in, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
               "recipe": recipe}
    try:
        out.write_text(json.dumps(written, indent=2) + "\n")
    except OSError as exc:
        raise RapheError(f"{out}: cannot write the cascade ({exc.strerror or exc})") from None
    return written


def member(model: Model) -> dict:
    return {"file": model.path.with_suffix(".tflite").name, **model.identity}


def other_class(ensemble, cascade) -> int:
    """Cells that the two decide as different classes."""
    both = np.isin(ensemble.decision, ensemble.classes) & np.isin(cascade.decision, cascade.classes)
    return int(np.sum(both & (ensemble.decision != cascade.decision)))


def decided(outcomes) -> int:
    return int(np.isin(outcomes.decision, outcomes.classes).sum())


def wrong(outcomes) -> int:
    truth = np.array([outcomes.classes[y] for y in outcomes.y], dtype=object)
    shown = np.isin(outcomes.decision, outcomes.classes)
    return int(np.sum(shown & (outcomes.decision != truth)))


def summary(written: dict) -> list[str]:
    """What the cascade's file says, as lines for the terminal."""
    chosen = ", ".join(f"{n} {100 * c['agreement']:.2f}%" for n, c in written["chosen_on"].items())
    lines = [f"margin {written['margin']:g} (the smallest at which it agrees with the ensemble on "
             f">= {100 * written['target']:g}% of every set it was chosen on: {chosen})" if written["margin"] < 1 else
             f"margin 1: every window goes to the ensemble (no smaller margin reached {100 * written['target']:g}% "
             f"on every set it was chosen on)"]
    for name, c in written["checked_on"].items():
        lines.append(f"{name}: agrees on {100 * c['agreement']:.2f}% of {c['windows']} windows (student alone "
                     f"{100 * c['student_alone']:.2f}%), hands on {100 * c['escalated']:.1f}%; cells: "
                     f"{c['same_decision']}/{c['cells']} end the same, {c['other_class']} as another class, "
                     f"decided {c['decided_cascade']} "
                     f"(ensemble {c['decided_ensemble']}), wrongly {c['wrong_cascade']} (ensemble {c['wrong_ensemble']})")
    lines.append("stands in for the ensemble" if written["stands_in"] else
                 f"does not stand in for the ensemble (needs >= {100 * STAND_IN_AGREEMENT:g}% on every checked set, no "
                 "cell decided as another class, and no more decided wrongly)")
    return lines
