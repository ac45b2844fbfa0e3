"""`raphe distill`: one student network trained on an ensemble's calibrated outputs.

The ensemble is what the seed shipped and what raphe trains, but it costs one forward pass per
member; at the rig that is most of the time a spike takes. A student of the seed's architecture
(one member) is trained to give the ensemble's probabilities (its soft outputs, never the labels),
and exported like the ensemble. What it learns from is the teacher's answer on every window it is
given: the teacher's training windows (split by the teacher's unit, so that validation is on cells
the student never saw), any further windows whose labels are not used (``transfer``: shapes the
teacher never trained on, so that the student imitates the teacher there too), and a jittered copy
of each (a shift of up to two points and a little noise: answers near the teacher's
boundaries, where a student and its teacher part ways). Whether it may stand in for the ensemble
is measured, not assumed: its agreement with the ensemble on held-out windows of each set named in
``checks`` is recorded in its metadata, and `raphe matrix` compares the two at the cell level.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from rich.console import Console

from raphe.classifier.evaluation.calibration import cell_sequences, finite_or_none, fit_posterior
from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.model import Model
from raphe.core.specs import STAND_IN_AGREEMENT, STUDENT_EPOCHS

from .train import TrainConfig, cap_per_cell, export_variants, split

STUDENT = TrainConfig(kernels=(20,), epochs=STUDENT_EPOCHS, patience=6, batch_size=128)
# A jittered copy of each training window, and how it is jittered (points of shift either way,
# noise as a share of the window's own standard deviation).
JITTERED_COPIES = 1
MAX_SHIFT = 2
NOISE = 0.05
# Adam's rate is cut by this factor after this many epochs without a better validation loss.
RATE_FACTOR = 0.3
RATE_PATIENCE = 2


def jittered(windows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``windows`` each shifted by up to ``MAX_SHIFT`` points (edges held) with a little noise."""
    out = np.empty_like(windows)
    shift = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=len(windows))
    for s in range(-MAX_SHIFT, MAX_SHIFT + 1):
        rows = shift == s
        out[rows] = np.roll(windows[rows], s, axis=1)
        if s > 0:
            out[rows, :s] = windows[rows, :1]
        elif s < 0:
            out[rows, s:] = windows[rows, -1:]
    noise = rng.normal(0.0, NOISE, size=windows.shape) * windows.std(axis=1, keepdims=True)
    return (out + noise).astype(np.float32)


def agreement(student: np.ndarray, teacher: np.ndarray) -> float:
    """Share of windows on which the two give the same most probable class."""
    return float((student.argmax(1) == teacher.argmax(1)).mean())


def distill(teacher_path: str | Path, windows: ws.WindowSet, out: str | Path, config: TrainConfig = STUDENT,
            name: str = "student", data_description: str = "", recipe: str = "",
            transfer: ws.WindowSet | None = None, checks: dict[str, ws.WindowSet] | None = None,
            console: Console | None = None) -> dict[str, Path]:
    """Train the student on ``windows`` (and the ``transfer`` windows, their labels unused, at most
    ``max_per_cell`` per cell too) against the teacher at ``teacher_path``; write ``out/NAME-{float32,dynamic,int8}.tflite`` (+ .json). Returns the
    paths by variant.

    ``config`` is a training recipe whose one kernel is the student's (default k = 20, the smallest
    of the seed's consensus); use the teacher's ``max_per_cell`` and ``seed``, so that the student's
    validation cells are the teacher's held-out ones. ``checks``: held-out window sets (by name)
    on which the agreement is measured and recorded."""
    kernel = config.kernels[0]
    import keras
    import tensorflow as tf

    from .network import fused_ensemble, seed_model

    console = console or Console(stderr=True)
    teacher = Model(teacher_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    aligned = windows.in_classes(teacher.classes)
    rng = np.random.default_rng(config.seed)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    data = cap_per_cell(aligned, config.max_per_cell, rng)
    part, unit = split(data, config.held_out, rng)
    train_mask, validation, held_out = part == 0, part == 1, part > 0
    if transfer is not None:
        transfer = cap_per_cell(transfer, config.max_per_cell, rng).X
    learn = data.X[train_mask] if transfer is None else np.concatenate([data.X[train_mask], transfer])
    learn = np.concatenate([learn] + [jittered(learn, rng) for _ in range(JITTERED_COPIES)])
    console.print(f"distilling {teacher.path.name} into one member (k={kernel}): the teacher's answers on "
                  f"{int(train_mask.sum())} training windows (split by {unit})"
                  + ("" if transfer is None else f" and {len(transfer)} unlabelled ones")
                  + f", and {JITTERED_COPIES} jittered cop{'y' if JITTERED_COPIES == 1 else 'ies'} of each: "
                  f"{len(learn)} windows")
    soft = teacher.predict(data.X)
    targets = teacher.predict(learn)
    started = time.perf_counter()
    student = seed_model(kernel, len(teacher.classes), name=f"student_k{kernel}")
    student.compile(keras.optimizers.Adam(config.learning_rate), keras.losses.CategoricalCrossentropy(from_logits=True))
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True),
                 keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=RATE_FACTOR, patience=RATE_PATIENCE)]
    history = student.fit(learn[..., np.newaxis], targets, batch_size=config.batch_size, epochs=config.epochs,
                          validation_data=(data.X[validation][..., np.newaxis], soft[validation]),
                          callbacks=callbacks, verbose=0, shuffle=True)
    fused = fused_ensemble([student], 1.0)
    probs = fused.predict(data.X[held_out], batch_size=256, verbose=0)
    held = agreement(probs, soft[held_out])
    best = int(np.argmin(history.history["val_loss"]))
    console.print(f"  {len(history.history['val_loss'])} epochs (best {best + 1}), {time.perf_counter() - started:.0f} s; "
                  f"agrees with the ensemble on {100 * held:.2f}% of {int(held_out.sum())} held-out windows")
    checked = {}
    for set_name, check in (checks or {}).items():
        share = agreement(fused.predict(check.X, batch_size=256, verbose=0), teacher.predict(check.X))
        checked[set_name] = {"windows": len(check), "agreement": round(share, 5)}
        console.print(f"  {set_name}: agrees on {100 * share:.2f}% of {len(check)} windows")
    kept = held_out & ~teacher.novel(data.X)
    sequences = cell_sequences(data.cell[kept], data.y[kept], fused.predict(data.X[kept], batch_size=256, verbose=0))
    fit = fit_posterior(sequences)
    stands_in = bool(checked) and all(c["agreement"] >= STAND_IN_AGREEMENT for c in checked.values())
    metadata = {**{k: v for k, v in teacher.metadata.items() if k not in ("sha256", "tflite", "variant", "metrics")},
                "name": name,
                "ensemble": {"kernels": [kernel], "temperature": 1.0,
                             "members": [{"kernel": kernel, "epochs": len(history.history["val_loss"]),
                                          "best_epoch": best + 1,
                                          "val_loss": round(float(history.history["val_loss"][best]), 5)}],
                             "fusion": "one member, trained on the teacher's probabilities",
                             "distilled_from": {"model": teacher.path.name, "sha256": teacher.checksum,
                                                "agreement_held_out": round(held, 5),
                                                "held_out_windows": int(held_out.sum()),
                                                "agreement_on": checked,
                                                "stands_in": stands_in}},
                # the teacher's certificate does not hold for the student: `raphe calibrate` gives it its own
                "posterior": {**{k: v for k, v in teacher.metadata.get("posterior", {}).items() if k != "certificate"},
                              "alpha": fit.alpha, "beta": fit.beta, "margin": fit.margin,
                              "waveform_cap": finite_or_none(fit.waveform_cap), "fitted_on_cells": len(sequences),
                              "fitted_on": "the student's held-out cells"},
                "training": {"data": data_description, "recipe": recipe, "config": asdict(config),
                             "teacher": teacher.path.name, "windows": len(data), "learned_from": len(learn),
                             "unlabelled": 0 if transfer is None else len(transfer),
                             "jittered_copies": JITTERED_COPIES,
                             "cells": int(len(np.unique(data.cell))), "days": int(len(np.unique(data.day)))},
                "metrics": {"agreement_with_teacher": round(held, 5)},
                "created": datetime.date.today().isoformat(), "tensorflow": tf.__version__}
    representative = data.X[train_mask][rng.permutation(int(train_mask.sum()))[:config.representative_windows]]
    return export_variants(fused, out, name, metadata, representative, data.X[held_out], probs, console)


def student_config(kernel: int, epochs: int, max_per_cell: int, seed: int) -> TrainConfig:
    """The student's recipe with the command's choices."""
    return replace(STUDENT, kernels=(kernel,), epochs=epochs, max_per_cell=max_per_cell, seed=seed)
