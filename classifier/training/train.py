"""`raphe train`: the seed's CNN for each kernel of the ensemble, calibrated, fused, exported.

Splits are by recording day where there are enough days (at least 4), otherwise by cell; never by
spike. One held-out part stops each member's training early (validation), the other fits the
temperature of the fused output (calibration), so neither is seen by the weights it judges. The
cell posterior's tempering is fitted on the cells of both held-out parts.
"""

from __future__ import annotations

import datetime
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from raphe.core.errors import RapheError
from raphe.core.native import native_stderr_silenced
from raphe.core.specs import MAX_WINDOWS_PER_CELL, MODEL_FORMAT, SEED_WINDOW
from raphe.detector.config import DetectorConfig

from raphe.classifier.evaluation.calibration import cell_sequences, finite_or_none, fit_posterior
from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.novelty import fit_novelty

MIN_DAYS_FOR_DAY_SPLIT = 4


@dataclass(frozen=True)
class TrainConfig:
    """The recipe.

    Parameters
    ----------
    kernels : kernel sizes of the ensemble's members (default 20 ... 30, the seed's consensus).
    epochs : at most this many epochs per member (default 25, the seed's); patience : early stopping
        on validation loss after this many epochs without improvement (default 3), best weights kept.
    batch_size : 64 (the seed's); learning_rate : Adam's (default 1e-3); fine_tune_learning_rate :
        Adam's when fine-tuning (``start_from``; default 1e-4: the members already know the shapes).
    max_per_cell : at most this many windows per cell, drawn at random (default 700, the seed's cap).
    held_out : share of windows held out for validation and again for calibration (default 0.15 each).
    seed : makes splits, subsampling and initial weights reproducible (default 0).
    representative_windows : training windows that calibrate the int8 model's activations (default 500).
    novelty_windows : training windows the novelty summary is fitted on (default 20,000); its
        threshold is set on the held-out (validation and calibration) windows.
    start_from : fine-tune the members of this trained model (a path, or ``default``) instead of
        starting from random weights (see ``warm_start``); ``kernels`` must be among its members',
        and the data's classes among its classes.
    """

    kernels: tuple[int, ...] = tuple(range(20, 31))
    epochs: int = 25
    patience: int = 3
    batch_size: int = 64
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    max_per_cell: int = MAX_WINDOWS_PER_CELL
    held_out: float = 0.15
    seed: int = 0
    representative_windows: int = 500
    novelty_windows: int = 20_000
    start_from: str | None = None

    @property
    def rate(self) -> float:
        """Adam's learning rate for this run: from scratch, or fine-tuning."""
        return self.fine_tune_learning_rate if self.start_from else self.learning_rate


@dataclass
class TrainResult:
    models: dict[str, Path]
    temperature: float
    ensemble: object  # the fused Keras model the .tflite files were converted from
    members: list[dict] = field(default_factory=list)
    split: dict = field(default_factory=dict)


def cap_per_cell(windows: ws.WindowSet, limit: int, rng: np.random.Generator) -> ws.WindowSet:
    keep = np.zeros(len(windows), dtype=bool)
    for cell in np.unique(windows.cell):
        idx = np.flatnonzero(windows.cell == cell)
        keep[rng.permutation(idx)[:limit] if len(idx) > limit else idx] = True
    return windows.subset(keep)


def split(windows: ws.WindowSet, held_out: float, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Part per window: 0 train, 1 validation, 2 calibration; and the unit split on ("day" or "cell")."""
    days = np.unique(windows.day)
    if len(days) >= MIN_DAYS_FOR_DAY_SPLIT:
        part = _assign(windows.day, rng.permutation(days), held_out)
        if all(_has_all_classes(windows, part == p) for p in (0, 1, 2)):
            return part, "day"
    part = np.zeros(len(windows), dtype=np.int8)
    for k, name in enumerate(windows.classes):
        mask = windows.y == k
        cells = np.unique(windows.cell[mask])
        if len(cells) < 3:
            raise RapheError(f"class {name} has {len(cells)} cell(s); splitting by cell needs at least 3 per class")
        part[mask] = _assign(windows.cell[mask], rng.permutation(cells), held_out)
    return part, "cell"


def _assign(groups: np.ndarray, order: np.ndarray, held_out: float) -> np.ndarray:
    """Whole groups, in ``order``, go to validation until it holds ``held_out`` of the windows, then
    to calibration likewise; each part gets at least one group and the rest train."""
    part = np.zeros(len(groups), dtype=np.int8)
    target, index = held_out * len(groups), 0
    for current in (1, 2):
        filled = 0
        while index < len(order) - (3 - current) and (filled == 0 or filled < target):
            mask = groups == order[index]
            part[mask] = current
            filled += int(mask.sum())
            index += 1
    return part


def _has_all_classes(windows: ws.WindowSet, mask: np.ndarray) -> bool:
    return len(np.unique(windows.y[mask])) == len(windows.classes)


def balanced_class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Each present class weighted by the inverse of its frequency (Keras ``class_weight``)."""
    counts = np.bincount(y, minlength=n_classes)
    return {k: float(len(y) / (n_classes * c)) for k, c in enumerate(counts) if c}


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def fit_temperature(mean_log_probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimizing the negative log-likelihood of softmax(mean_log_probs / T)."""
    best, best_nll = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.05), np.log(20.0), 400)):
        nll = -log_softmax(mean_log_probs / t)[np.arange(len(y)), y].mean()
        if nll < best_nll:
            best, best_nll = float(t), nll
    return best


def quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ and Python chatter turned down; a clear error if it is missing.
    Call it before the first import of TensorFlow: its log level is read when it loads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", module="tensorflow")
    try:
        with native_stderr_silenced():  # its C++ logging speaks on loading whatever the level
            import keras  # noqa: F401  (loads its own backend once, as chatty)
            import tensorflow as tf
    except ImportError:
        raise RapheError("training needs TensorFlow: pip install 'raphe[train]' (make test installs it)") from None
    tf.get_logger().setLevel("ERROR")


def train(windows: ws.WindowSet, out: str | Path, config: TrainConfig = TrainConfig(), name: str = "model",
          data_description: str = "", recipe: str = "", console: Console | None = None) -> TrainResult:
    """Train the ensemble on ``windows`` and write ``out/NAME-{float32,dynamic,int8}.tflite`` (+ .json)."""
    import keras
    import tensorflow as tf

    from .network import fused_ensemble, seed_model

    console = console or Console(stderr=True)
    out = Path(out)
    windows.require_classes(2)
    start = None
    if config.start_from:
        from .warm_start import rebuilt_members

        start, classes, source = rebuilt_members(config.start_from, config.kernels)
        windows = windows.in_classes(classes)
        console.print(f"fine-tuning the members of {source.name} (learning rate {config.rate:g})")
    rng = np.random.default_rng(config.seed)
    keras.utils.set_random_seed(config.seed)
    # multi-threaded CPU kernels otherwise sum in an order that depends on the machine's load, and
    # the same recipe gives a slightly different model from run to run
    tf.config.experimental.enable_op_determinism()
    data = cap_per_cell(windows, config.max_per_cell, rng)
    part, unit = split(data, config.held_out, rng)
    out.mkdir(parents=True, exist_ok=True)  # only once the data can be split: a refusal leaves no folder
    X = data.X[..., np.newaxis]
    n_classes = len(data.classes)
    train_mask = part == 0
    class_weight = balanced_class_weights(data.y[train_mask], n_classes)
    split_info = {"unit": unit, **{name_: _describe(data, part == p) for p, name_ in
                                   enumerate(("train", "validation", "calibration"))}}
    console.print(f"training on {split_info['train']['windows']} windows, split by {unit}; "
                  f"validation {split_info['validation']['windows']}, calibration {split_info['calibration']['windows']}")

    members, reports = [], []
    for kernel in config.kernels:
        started = time.perf_counter()
        member = start[kernel] if start is not None else seed_model(kernel, n_classes)
        member.compile(keras.optimizers.Adam(config.rate),
                       keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
        history = member.fit(X[train_mask], data.y[train_mask], batch_size=config.batch_size, epochs=config.epochs,
                             validation_data=(X[part == 1], data.y[part == 1]), class_weight=class_weight,
                             callbacks=[stop], verbose=0, shuffle=True)
        best = int(np.argmin(history.history["val_loss"]))
        report = {"kernel": kernel, "epochs": len(history.history["val_loss"]), "best_epoch": best + 1,
                  "val_loss": round(float(history.history["val_loss"][best]), 5),
                  "val_accuracy": round(float(history.history["val_accuracy"][best]), 5),
                  "seconds": round(time.perf_counter() - started, 1)}
        console.print(f"  k={kernel}: {report['epochs']} epochs (best {report['best_epoch']}), "
                      f"validation accuracy {report['val_accuracy']:.4f}, {report['seconds']} s")
        members.append(member)
        reports.append(report)

    calibration = part == 2
    logits = np.stack([m.predict(X[calibration], batch_size=256, verbose=0) for m in members])
    temperature = fit_temperature(log_softmax(logits).mean(axis=0), data.y[calibration])
    fused = fused_ensemble(members, temperature)
    # its own generator, so that the novelty summary leaves the draws of the recipe unchanged
    novelty_rng = np.random.default_rng(config.seed + 1)
    pick = novelty_rng.permutation(np.flatnonzero(train_mask))[:config.novelty_windows]
    novelty = fit_novelty(data.X[pick], data.X[part > 0], novelty_rng)
    console.print(f"novelty: {novelty.components.shape[0]} components, threshold {novelty.threshold:.2f} "
                  f"(exceeded by 1% of the held-out windows)")
    held_out = (part > 0) & ~novelty.is_novel(data.X)
    held_out_probs = fused.predict(data.X[held_out], batch_size=256, verbose=0)
    sequences = cell_sequences(data.cell[held_out], data.y[held_out], held_out_probs)
    fit = fit_posterior(sequences)
    console.print(f"calibrated: temperature {temperature:.3f}; cell posterior alpha {fit.alpha:.4f}, "
                  f"beta {fit.beta:.4f}, margin {fit.margin:g}, waveform cap {fit.waveform_cap:g} "
                  f"(on {len(sequences)} held-out cells); exporting float32, dynamic-range and int8")

    reference = fused.predict(data.X[calibration], batch_size=256, verbose=0)
    accuracy = round(float((reference.argmax(1) == data.y[calibration]).mean()), 5)
    detector = DetectorConfig()
    representative = data.X[train_mask][rng.permutation(int(train_mask.sum()))[:config.representative_windows]]
    metadata = {
        "format": MODEL_FORMAT, "format_version": 1, "name": name,
        "classes": list(data.classes),
        "window": SEED_WINDOW.to_json(),
        "detector": {"rule": "threshold crossing", "threshold": detector.threshold, "polarity": detector.polarity,
                     "relative": detector.relative, "units": "pA"},
        "ensemble": {"kernels": list(config.kernels), "members": reports, "temperature": temperature,
                     "fusion": "mean of the members' log-softmax, divided by the temperature, softmax"},
        "novelty": novelty.to_json(),
        "posterior": {"alpha": fit.alpha, "beta": fit.beta, "margin": fit.margin,
                      "waveform_cap": finite_or_none(fit.waveform_cap), "fitted_on_cells": len(sequences),
                      "rule": "z = alpha * sum of log spike probabilities / (1 + beta * (n - 1)), no class more "
                              "than waveform_cap below the best; softmax(-max(max(z) - z - margin, 0))"},
        "training": {"data": data_description, "recipe": recipe, "config": asdict(config), "split": split_info,
                     "windows": len(data), "cells": int(len(np.unique(data.cell))),
                     "days": int(len(np.unique(data.day)))},
        "metrics": {"calibration_spike_accuracy": accuracy},
        "created": datetime.date.today().isoformat(),
        "tensorflow": tf.__version__,
    }
    models = export_variants(fused, out, name, metadata, representative, data.X[calibration], reference, console)
    return TrainResult(models, temperature, fused, reports, split_info)


def export_variants(fused, out: Path, name: str, metadata: dict, representative: np.ndarray, check: np.ndarray,
                    reference: np.ndarray, console: Console) -> dict[str, Path]:
    """Write ``out/NAME-{float32,dynamic,int8}.tflite`` with their metadata, each checked on the
    windows ``check`` against ``reference`` (the Keras model's probabilities on them)."""
    from raphe.classifier.runtime.model import Model

    from . import export

    models: dict[str, Path] = {}
    for variant in export.VARIANTS:
        flatbuffer = export.convert(fused, variant, representative)
        path = export.write_model(out / f"{name}-{variant}.tflite", flatbuffer, {**metadata, "variant": variant})
        try:
            probs = Model(path).predict(check)
        except RuntimeError as exc:
            # a layer whose calibration windows all gave one value has no int8 scale (NaN), and
            # LiteRT refuses the model; the float32 and dynamic-range ones are unaffected
            if variant != "int8":
                raise RapheError(f"{path.name}: LiteRT cannot run the exported model ({str(exc)[:120]})") from None
            for written in (path, path.with_suffix(".json")):
                written.unlink()
            console.print(f"  {path.name}: skipped, LiteRT cannot run its int8 quantization ({str(exc)[:80]})")
            continue
        metrics = {"agreement_with_keras": round(float((probs.argmax(1) == reference.argmax(1)).mean()), 5),
                   "max_abs_difference_from_keras": round(float(np.abs(probs - reference).max()), 6),
                   **metadata.get("metrics", {})}
        export.write_model(path, flatbuffer, {**metadata, "variant": variant, "metrics": metrics})
        console.print(f"  {path.name}: {len(flatbuffer) / 1024:.0f} KiB, agreement with Keras "
                      f"{metrics['agreement_with_keras']:.4f}")
        models[variant] = path
    return models


def _describe(windows: ws.WindowSet, mask: np.ndarray) -> dict:
    return {"windows": int(mask.sum()), "cells": int(len(np.unique(windows.cell[mask]))),
            "days": sorted(np.unique(windows.day[mask]).tolist()),
            "per_class": {c: int((windows.y[mask] == k).sum()) for k, c in enumerate(windows.classes)}}
