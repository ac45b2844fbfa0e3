"""`raphe distill`: one student network trained on an ensemble's calibrated outputs.

The ensemble is what the seed shipped and what raphe trains, but it costs one forward pass per
member; at the rig that is most of the time a spike takes. A student of the seed's architecture
(one member) is trained to give the ensemble's probabilities (its soft outputs, not the labels),
on the same windows and the same split, and exported like the ensemble. Whether it may stand in
for the ensemble is measured, not assumed: its agreement with the ensemble on held-out windows is
recorded in its metadata, and `raphe matrix` compares the two at the cell level.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rich.console import Console

from raphe.classifier.evaluation.calibration import cell_sequences, finite_or_none, fit_posterior
from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.model import Model

from .train import TrainConfig, cap_per_cell, export_variants, split

STUDENT = TrainConfig(kernels=(20,))


def distill(teacher_path: str | Path, windows: ws.WindowSet, out: str | Path, config: TrainConfig = STUDENT,
            name: str = "student", data_description: str = "", recipe: str = "",
            console: Console | None = None) -> dict[str, Path]:
    """Train the student on ``windows`` against the teacher at ``teacher_path``; write
    ``out/NAME-{float32,dynamic,int8}.tflite`` (+ .json). Returns the paths by variant.

    ``config`` is a training recipe whose one kernel is the student's (default k = 20, the smallest
    of the seed's consensus); use the teacher's ``max_per_cell`` and ``seed``, so that the student
    is trained and judged on the teacher's split."""
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
    soft = teacher.predict(data.X)
    train_mask, validation = part == 0, part == 1
    X = data.X[..., np.newaxis]
    console.print(f"distilling {teacher.path.name} into one member (k={kernel}) on "
                  f"{int(train_mask.sum())} windows, split by {unit}")
    started = time.perf_counter()
    student = seed_model(kernel, len(teacher.classes), name=f"student_k{kernel}")
    student.compile(keras.optimizers.Adam(config.learning_rate), keras.losses.CategoricalCrossentropy(from_logits=True))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    history = student.fit(X[train_mask], soft[train_mask], batch_size=config.batch_size, epochs=config.epochs,
                          validation_data=(X[validation], soft[validation]), callbacks=[stop], verbose=0, shuffle=True)
    fused = fused_ensemble([student], 1.0)
    held_out = part > 0
    probs = fused.predict(data.X[held_out], batch_size=256, verbose=0)
    agreement = float((probs.argmax(1) == soft[held_out].argmax(1)).mean())
    best = int(np.argmin(history.history["val_loss"]))
    console.print(f"  {len(history.history['val_loss'])} epochs (best {best + 1}), {time.perf_counter() - started:.0f} s; "
                  f"agrees with the ensemble on {100 * agreement:.2f}% of {int(held_out.sum())} held-out windows")
    kept = held_out & ~teacher.novel(data.X)
    sequences = cell_sequences(data.cell[kept], data.y[kept], fused.predict(data.X[kept], batch_size=256, verbose=0))
    fit = fit_posterior(sequences)
    metadata = {**{k: v for k, v in teacher.metadata.items() if k not in ("sha256", "tflite", "variant", "metrics")},
                "name": name,
                "ensemble": {"kernels": [kernel], "temperature": 1.0,
                             "members": [{"kernel": kernel, "epochs": len(history.history["val_loss"]),
                                          "best_epoch": best + 1,
                                          "val_loss": round(float(history.history["val_loss"][best]), 5)}],
                             "fusion": "one member, trained on the teacher's probabilities",
                             "distilled_from": {"model": teacher.path.name, "sha256": teacher.checksum,
                                                "agreement_held_out": round(agreement, 5),
                                                "held_out_windows": int(held_out.sum())}},
                # the teacher's certificate does not hold for the student: `raphe calibrate` gives it its own
                "posterior": {**{k: v for k, v in teacher.metadata.get("posterior", {}).items() if k != "certificate"},
                              "alpha": fit.alpha, "beta": fit.beta, "margin": fit.margin,
                              "waveform_cap": finite_or_none(fit.waveform_cap), "fitted_on_cells": len(sequences),
                              "fitted_on": "the student's held-out cells"},
                "training": {"data": data_description, "recipe": recipe, "config": asdict(config),
                             "teacher": teacher.path.name, "windows": len(data),
                             "cells": int(len(np.unique(data.cell))), "days": int(len(np.unique(data.day)))},
                "metrics": {"agreement_with_teacher": round(agreement, 5)},
                "created": datetime.date.today().isoformat(), "tensorflow": tf.__version__}
    representative = data.X[train_mask][rng.permutation(int(train_mask.sum()))[:config.representative_windows]]
    reference = fused.predict(data.X[held_out], batch_size=256, verbose=0)
    return export_variants(fused, out, name, metadata, representative, data.X[held_out], reference, console)
