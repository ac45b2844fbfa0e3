"""From a lab's labelled cells to a model it can trust, and how much: `raphe crossval`.

The training recipe is cross-validated by recording day (by cell where there are fewer than 3
days): each fold's model is trained on the other folds and judged on the cells it never saw. The
running posterior's tempering is *cross-fitted*: each fold is judged with α, β and the margin fitted
on the held-out predictions of the other folds, so no figure is judged by parameters fitted on its
own cells; the final model, trained on all cells, gets the tempering fitted on every held-out
prediction. Where the windows carry spike times (labelled recordings, `synth` sets), each fold
also fits a firing model on its training cells, and the joint posterior's weight and margins are
cross-fitted the same way: each fold is judged by the joint posterior (and, beside it, by the
waveform alone), and the final model gets a firing model of every cell and the joint fit of every
held-out cell. That is many more calibration cells than the slice one training run can spare, which is
what lets a lab's model decide its cells at all. One report gives the per-fold and pooled figures
with intervals and a plain verdict of how much the data supports.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
from rich.console import Console

from raphe.classifier.evaluation.calibration import (Fit, Group, class_means, fit_joint, fit_posterior, groups_of,
                                                     joint_part, risk_controlled, write_posterior)
from raphe.classifier.evaluation.outcomes import Outcomes, cell_outcomes, figures, shown
from raphe.classifier.evaluation.report import json_safe
from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.posterior import PosteriorConfig
from raphe.classifier.runtime.running_posterior import CellPosterior
from raphe.core.errors import RapheError
from raphe.core.specs import ATYPICAL_UDI_MS, DECISION_THRESHOLD
from raphe.core.staged import staged

from .firing import train_firing_model
from .train import TrainConfig, train

# How far the waveform alone can go is told as the posterior after this many confident spikes
# (about 10 s of a slow cell: where a rig wants its answer).
CONFIDENT_SPIKES = 20
MIN_DAYS_FOR_DAY_FOLDS = 3
MIN_TRAINING_CELLS = 3
FEW_CELLS = 10
# A fold whose members validate below this on their own training data's held-out part learnt
# nothing that carries over (seen: 0.45-0.50 when one training day was validated on the other).
WEAK_VALIDATION = 0.8


@dataclass
class Fold:
    """One fold's held-out cells as the fold's model saw them."""

    number: int
    days: list[str]
    data: ws.WindowSet
    probabilities: np.ndarray
    novel: np.ndarray
    model: Model
    validation: list = field(default_factory=list)  # its members' validation accuracies
    firing: object = None  # the fold's firing model (a FiringModel), where the windows carry spike times


def assign_folds(data: ws.WindowSet, k: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The fold of every window: whole days to a fold where there are at least 3 known days, else
    whole cells, each class's cells spread over the folds; as many folds as asked for where every
    fold's training part still holds 3 cells of each class (what one training run needs), fewer
    otherwise, and an error before any training where not even 2 folds do."""
    if k < 2:
        raise RapheError("cross-validation needs at least 2 folds")
    days = np.unique(data.day[data.day != ws.UNKNOWN_DAY])
    by_day = len(days) >= MIN_DAYS_FOR_DAY_FOLDS and not (data.day == ws.UNKNOWN_DAY).any()
    order = rng.permutation(days) if by_day else None
    cells_per_class = [rng.permutation(np.unique(data.cell[data.y == c])) for c in range(len(data.classes))]
    for folds in range(min(k, len(days) if by_day else max(map(len, cells_per_class))), 1, -1):
        if by_day:
            fold_of = {d: i % folds for i, d in enumerate(order)}
            fold = np.array([fold_of[d] for d in data.day])
        else:
            fold_of = {cell: i % folds for cells in cells_per_class for i, cell in enumerate(cells)}
            fold = np.array([fold_of[c] for c in data.cell])
        if all(len(np.unique(data.cell[(fold != f) & (data.y == c)])) >= MIN_TRAINING_CELLS
               for f in range(folds) for c in range(len(data.classes))):
            return fold, "day" if by_day else "cell"
    counts = {name: len(cells) for name, cells in zip(data.classes, cells_per_class)}
    raise RapheError(f"cross-validation needs every fold's training part to hold {MIN_TRAINING_CELLS} cells of each "
                     f"class, so at least {MIN_TRAINING_CELLS + 1} cells of each (cells per class: {counts})")


def pool(parts: list[Outcomes]) -> Outcomes:
    """The outcomes of several folds as one (their cells are disjoint)."""
    arrays = {f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Outcomes)
              if f.name != "classes"}
    return Outcomes(parts[0].classes, **arrays)


def groups_of_folds(folds: list[Fold]) -> list[Group]:
    """Each fold's held-out cells as its own model saw them, a group each (with their conflict cells
    where there is a firing model)."""
    groups = []
    for f in folds:
        kept = ~f.novel
        groups += groups_of(f"fold {f.number}", f.data.subset(kept), f.probabilities[kept], f.firing, f.model.classes)
    return groups


def fitted_posteriors(fold: Fold, others: list[Fold]) -> tuple[dict, Fit]:
    """The posteriors ``fold`` is judged by, fitted on ``others``' held-out cells (thresholds by risk
    control on them too): the waveform's alone, and the joint one where there is a firing model;
    with what was fitted for the deciding one."""
    groups = groups_of_folds(others)
    waveform_fit = fit_posterior(groups)
    classes = fold.model.classes
    waveform = replace(fold.model.posterior_config(), alpha=waveform_fit.alpha, beta=waveform_fit.beta,
                       margin=waveform_fit.margin, waveform_cap=waveform_fit.waveform_cap, evidence="waveform",
                       firing=None, thresholds=thresholds_of(groups, waveform_fit, classes))
    posteriors, fit = {"waveform": waveform}, waveform_fit
    if fold.firing is not None:
        fit = fit_joint(groups, waveform_fit)
        posteriors["joint"] = replace(waveform, evidence="both", firing=fold.firing, firing_weight=fit.firing_weight,
                                      joint_margin=fit.joint_margin, firing_margin=fit.firing_margin,
                                      conflict=fit.conflict, thresholds=thresholds_of(groups, fit, classes))
    return posteriors, fit


def thresholds_of(groups: list[Group], fit: Fit, classes: tuple[str, ...]) -> tuple[float, ...]:
    chosen = risk_controlled(groups, fit, classes)["thresholds"]
    return tuple(chosen[c] for c in classes)


def crossval(data: ws.WindowSet, out: str | Path, config: TrainConfig = TrainConfig(), n_folds: int = 5,
             name: str = "model", data_description: str = "", recipe: str = "",
             console: Console | None = None) -> dict:
    """Cross-validate, train the final model, write ``out/report.md``, ``out/crossval.json``,
    ``out/final/NAME-*.tflite`` (with the cross-fitted posterior) and each fold's models."""
    console = console or Console(stderr=True)
    out = Path(out)
    data.require_classes(2)
    with_firing = data.has_times
    fold_index, unit = assign_folds(data, n_folds, np.random.default_rng(config.seed))
    folds: list[Fold] = []
    for k in range(fold_index.max() + 1):
        held = fold_index == k
        console.print(f"fold {k + 1} of {fold_index.max() + 1}: {len(np.unique(data.cell[held]))} cells held out")
        result = train(data.subset(~held), out / "folds" / f"fold-{k + 1}", config, name=f"fold-{k + 1}",
                       data_description=f"{data_description}, all but fold {k + 1}", recipe=recipe, console=console)
        model = Model(result.models["dynamic"])
        test = data.subset(held).in_classes(model.classes)
        fold = Fold(k + 1, sorted(np.unique(test.day).tolist()), test, model.predict(test.X), model.novel(test.X),
                    model, [r["val_accuracy"] for r in result.members])
        if with_firing:
            fold.firing = train_firing_model(data.subset(~held), out / "folds" / f"fold-{k + 1}" / "firing.json",
                                             f"{data_description}, all but fold {k + 1}", seed=config.seed)
        folds.append(fold)
    per_fold, parts = [], {"waveform": [], "joint": []}
    for fold in folds:
        posteriors, fitted = fitted_posteriors(fold, [f for f in folds if f is not fold])
        judged = {}
        for kind, posterior in posteriors.items():
            outcomes = cell_outcomes(fold.data, fold.probabilities, fold.novel, posterior)
            parts[kind].append(outcomes)
            judged[kind] = figures(outcomes, ATYPICAL_UDI_MS)
        per_fold.append({"fold": fold.number, "days": fold.days, "posterior": asdict(fitted),
                         "member_validation_accuracy": fold.validation,
                         "figures": judged["joint" if with_firing else "waveform"], "waveform_figures": judged["waveform"]})
    deciding = "joint" if with_firing else "waveform"
    pooled = figures(pool(parts[deciding]), ATYPICAL_UDI_MS)
    console.print("final model on every cell")
    final = train(data, out / "final", config, name=name, data_description=data_description, recipe=recipe,
                  console=console)
    groups = groups_of_folds(folds)
    fit = fit_posterior(groups)
    fitted_on = f"cross-fitted: the held-out predictions of {len(folds)} folds by {unit}"
    joint = None
    if with_firing:
        firing = train_firing_model(data, out / "final" / f"{name}-firing.json", data_description, seed=config.seed)
        fit = fit_joint(groups, fit)
        joint = joint_part(firing.path.name, fit)
    certificate = risk_controlled(groups, fit, folds[0].model.classes)
    cells = sum(len(g.sequences) for g in groups if not g.conflict)
    for path in final.models.values():
        write_posterior(path, fit, cells, fitted_on, joint, class_means(data), certificate)
    result = {"data": data_description or repr(data), "unit": unit, "evidence": "both" if with_firing else "waveform",
              "folds": per_fold, "pooled": pooled, "pooled_waveform": figures(pool(parts["waveform"]), ATYPICAL_UDI_MS),
              "classes": counts(data), "final": {k: str(p) for k, p in final.models.items()},
              "final_posterior": asdict(fit), "thresholds": certificate, "config": asdict(config), "recipe": recipe}
    result["verdict"] = verdict(result)
    out.mkdir(parents=True, exist_ok=True)
    with staged(out / "crossval.json") as partial:
        partial.write_text(json.dumps(json_safe(result), indent=2) + "\n")
    with staged(out / "report.md") as partial:
        partial.write_text(markdown(result))
    return result


def counts(data: ws.WindowSet) -> dict[str, dict]:
    return {c: {"cells": int(len(np.unique(data.cell[data.y == k]))), "days": int(len(np.unique(data.day[data.y == k]))),
                "windows": int((data.y == k).sum())} for k, c in enumerate(data.classes)}


def verdict(result: dict) -> list[str]:
    """What the data supports, in plain words."""
    lines = []
    for name, c in result["classes"].items():
        worth = 100.0 / c["cells"]
        line = f"{c['cells']} {name} cells over {c['days']} day(s): one cell is worth {worth:.1f} points of {name} recall"
        if c["cells"] < FEW_CELLS or c["days"] < 2:
            line += "; too few to trust a figure for this class (record more cells, on more days)"
        lines.append(line)
    for fold in result["folds"]:
        worst = min(fold["member_validation_accuracy"], default=1.0)
        if worst < WEAK_VALIDATION:
            lines.append(f"fold {fold['fold']} (held out: {', '.join(fold['days'])}): its members validated at "
                         f"{worst:.2f}-{max(fold['member_validation_accuracy']):.2f} within their own training data, "
                         "so what they learnt did not carry from one training day to another; its figures, and the "
                         "pooled ones, rest on too few days: record more days before trusting them")
    lines += [f"warning: {w}" for w in posterior_warnings(result["final_posterior"], result["evidence"] == "both")]
    p = result["pooled"]
    acc, decided, wrong = p["cell_accuracy_posterior"], p["decided"], p["decided_wrongly"]
    lines.append(f"on cells it never saw, the recipe is right about {100 * acc['rate']:.0f}% of cells "
                 f"[{100 * acc['ci95'][0]:.0f}, {100 * acc['ci95'][1]:.0f}], decides {100 * decided['rate']:.0f}% of "
                 f"them and decides {100 * wrong['rate']:.1f}% wrongly [{100 * wrong['ci95'][0]:.1f}, "
                 f"{100 * wrong['ci95'][1]:.1f}]")
    lines.append(f"over the whole stopping rule (every spike), {p['certificate']['text']}")
    return lines


def waveform_reach(fit: dict, spikes: int = CONFIDENT_SPIKES, p: float = 0.99) -> float:
    """The waveform posterior alone after ``spikes`` spikes each of probability ``p`` for one class:
    how far the fitted tempering lets the shape evidence go."""
    config = PosteriorConfig(alpha=fit["alpha"], beta=fit["beta"], margin=fit["margin"],
                             waveform_cap=fit["waveform_cap"])
    cell = CellPosterior(("a", "b"), config)
    for _ in range(spikes):
        cell.update(np.array([p, 1.0 - p]))
    return float(cell.parts["waveform"][0])


def posterior_warnings(fit: dict, joint: bool) -> list[str]:
    """Where one evidence stream is effectively off in the final model's posterior."""
    warnings, reach = [], waveform_reach(fit)
    if reach < DECISION_THRESHOLD:
        warnings.append(f"the waveform evidence is effectively off: {CONFIDENT_SPIKES} confident spikes of one shape "
                        f"reach only {reach:.2f}; on these cells the shapes did not carry from one fold "
                        "to another, so " + ("decisions rest on the firing" if joint else "cells are left undecided"))
    if joint and not fit["firing_weight"]:
        warnings.append("the firing evidence is off (weight 0): on these cells the firing misled from one fold to "
                        "another, so decisions rest on the waveform")
    return warnings


def posterior_words(fit: dict, thresholds: dict, joint: bool) -> list[str]:
    """The final model's fitted posterior, named and explained (its warnings are the verdict's)."""
    cap = fit["waveform_cap"]
    lines = [f"waveform evidence: each spike's log-probabilities weighted α = {fit['alpha']:.3g}, discounted by "
             f"β = {fit['beta']:.3g} as spikes add up (1 + β(n - 1)), "
             + ("uncapped" if not np.isfinite(cap) else f"capped at {cap:g} log-odds between classes")
             + f", margin {fit['margin']:g}: {CONFIDENT_SPIKES} confident spikes (0.99 each) of one shape reach "
             f"{waveform_reach(fit):.3f} on their own"]
    if joint:
        weight = fit["firing_weight"]
        lines.append(f"firing evidence: weighted {weight:.3g} (joint margin {fit['joint_margin']:g}, firing alone "
                     f"margin {fit['firing_margin']:g})" + (": on these cells the firing did not carry from one fold "
                                                              "to another" if not weight else ""))
        conflict = fit["conflict"]
        lines.append("shape and firing: no disagreement needed to hold a cell back on these cells" if not np.isfinite(
            conflict) else f"shape and firing: where they lean to different classes by more than {conflict:g} "
                           "log-odds each, the cell stays undecided (\"shape and firing disagree\")")
    lines.append("decision thresholds by risk control: " + "; ".join(
        f"{name} {part['threshold']:g} ({part['text']})" for name, part in thresholds["per_class"].items()))
    return lines


ROWS = (("cells", "cells"), ("cell accuracy (posterior)", "cell_accuracy_posterior"),
        ("cell accuracy (seed's rule)", "cell_accuracy_seed_rule"), ("decided", "decided"),
        ("decided wrongly", "decided_wrongly"), ("atypical SER recognised", "atypical_ser_seed_rule"),
        ("ever decided wrongly (at any spike)", "ever_decided_wrongly"),
        ("shape and firing disagree (at the end)", "shape_and_firing_disagree"),
        ("not classifiable", "not_classifiable"), ("ECE", "ece_every_spike"),
        ("median spikes to a decision", "median_spikes_to_decision"))


def markdown(result: dict) -> str:
    columns = [f"fold {f['fold']}" for f in result["folds"]] + ["pooled"]
    tables = [f["figures"] for f in result["folds"]] + [result["pooled"]]
    joint = result.get("evidence") == "both"
    judged_by = ("the joint posterior of waveform and firing evidence" if joint
                 else "the waveform posterior (the windows carry no spike times: no firing model)")
    lines = [f"# Cross-validation by {result['unit']}", "", f"Data: {result['data']}.", "",
             "## Verdict", "", *[f"- {line}" for line in result["verdict"]], "",
             f"## Figures on held-out cells, by {judged_by} (95% Wilson intervals)", "",
             "| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for label, key in ROWS:
        cells = []
        for t in tables:
            value = t.get(key)
            cells.append("n/a" if value is None else shown(value) if isinstance(value, dict)
                         else f"{value:.3f}" if isinstance(value, float) else str(value))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if joint:
        w = result["pooled_waveform"]
        lines += ["", "The waveform posterior alone, pooled: " + "; ".join(
            f"{label} {shown(w[key])}" for label, key in (("cell accuracy", "cell_accuracy_posterior"),
                                                          ("decided", "decided"), ("decided wrongly", "decided_wrongly")))
                  + "."]
    lines += ["", "## Certificate", "", f"Over the whole stopping rule (a running posterior checked at every spike), "
              f"pooled over the folds: {result['pooled']['certificate']['text']}.", ""]
    lines += [f"- {part['text']}" for part in result["pooled"]["certificate"]["per_class"].values()]
    lines += ["", "## The final model's posterior", "",
              "Fitted on every fold's held-out cells (each fold judged above by the posterior fitted on the other "
              "folds" + (", and a firing model trained on its own training cells" if joint else "") + "):", ""]
    lines += [f"- {line}" for line in posterior_words(result["final_posterior"], result["thresholds"], joint)]
    lines += ["", "Held-out days per fold: " + "; ".join(f"fold {f['fold']}: {', '.join(f['days'])}"
                                                         for f in result["folds"]),
              "", f"Final model: {result['final'].get('dynamic', '')}", ""]
    return "\n".join(lines)
