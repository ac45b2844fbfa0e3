"""`raphe calibrate`: fit a model's cell posterior on labelled held-out cells, into its metadata.

`raphe train` fits the posterior on the cells it held out, which are few (a day or two); a
dedicated set of cells the weights never saw, from other days, makes the fit sturdier. Only the
``.json`` changes: the checksum covers the ``.tflite``, which stays as it is.
"""

from __future__ import annotations

import json

from raphe.staged import staged

from . import posterior
from . import windows as ws
from .evaluate import align, model_files
from .runtime import Model, sidecar


def calibrate(model_path, data: ws.WindowSet, data_name: str = "") -> dict[str, tuple[float, float]]:
    """Refit (alpha, beta) for every model at ``model_path`` on the cells of ``data``; return them."""
    fitted = {}
    for path in model_files(model_path):
        model = Model(path)
        aligned = align(model, data)
        probabilities = model.predict(aligned.X)
        sequences = posterior.cell_sequences(aligned.cell, aligned.y, probabilities)
        alpha, beta = posterior.fit(sequences)
        _, meta_path = sidecar(model.path)
        metadata = {**model.metadata, "posterior": {
            **model.metadata.get("posterior", {}), "alpha": alpha, "beta": beta,
            "fitted_on_cells": len(sequences), "fitted_on": data_name or repr(data)}}
        with staged(meta_path) as partial:
            partial.write_text(json.dumps(metadata, indent=2) + "\n")
        fitted[model.path.name] = (alpha, beta)
    return fitted
