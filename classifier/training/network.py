"""The seed's CNN in one dimension, and the ensemble fused into one graph (training side: imports Keras)."""

from __future__ import annotations

import keras
from keras import layers

from raphe.core.specs import SEED_WINDOW

N_POINTS = SEED_WINDOW.n_points


def seed_model(kernel: int, n_classes: int, name: str | None = None) -> keras.Model:
    """Per-window LayerNormalization over time (shape only), Conv(32,k)-Pool-Conv(64,k)-Pool-Dropout-Dense.

    ``valid`` convolutions, as the seed's ~45 k parameters at k = 20 imply. Outputs logits.
    """
    inputs = keras.Input((N_POINTS, 1))
    x = layers.LayerNormalization(axis=1)(inputs)
    x = layers.Conv1D(32, kernel, activation="relu")(x)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(64, kernel, activation="relu")(x)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    return keras.Model(inputs, layers.Dense(n_classes)(x), name=name or f"k{kernel}")


def fused_ensemble(members: list[keras.Model], temperature: float) -> keras.Model:
    """One graph: (batch, 160) window in, calibrated class probabilities out.

    The members' log-probabilities are averaged (a geometric mean of their outputs), divided by the
    temperature fitted on held-out cells, and turned back into probabilities.
    """
    window = keras.Input((N_POINTS,), name="window")
    x = layers.Reshape((N_POINTS, 1))(window)
    logs = [layers.Activation("log_softmax")(member(x)) for member in members]
    mean = layers.Average()(logs) if len(logs) > 1 else logs[0]
    scaled = layers.Rescaling(1.0 / temperature)(mean)
    return keras.Model(window, layers.Softmax(name="probabilities")(scaled), name="raphe_ensemble")
