"""A trained ensemble's members back in Keras, from its float32 `.tflite`: where fine-tuning starts
(`raphe train --start-from default`, `raphe crossval --start-from default`).

raphe ships its models as LiteRT flatbuffers only; their float32 variant keeps every weight as
it was trained. Each member ``kK`` of the fused graph holds, as constant tensors named after its
Keras layers: the LayerNormalization's gamma (``.../Reshape``) and beta (``.../Reshape_1``), both
(1, 160, 1); each Conv1D's kernel as a Conv2D one (out, 1, K, in) and its bias; the Dense layer's
kernel transposed (classes, features) and its bias. They are put back into the seed's network and
the rebuilt ensemble must give the flatbuffer's probabilities (to 1e-4) before anything trains on it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from raphe.classifier.runtime.model import SHIPPED, Model, sidecar
from raphe.core.errors import RapheError
from raphe.core.native import native_stderr_silenced

MATCH_TOLERANCE = 1e-4
CHECK_WINDOWS = 64


def float32_of(model: str | Path) -> Path:
    """The float32 variant beside a model (or a shipped one by name: ``default``, ``ensemble``,
    ``student``); RapheError if there is none."""
    path = SHIPPED.get(str(model), Path(model))
    if path.suffix == ".json":
        path = path.with_suffix(".tflite")
    candidate = path.with_name(re.sub(r"-(dynamic|int8|float32)\.tflite$", "-float32.tflite", path.name))
    if not candidate.exists():
        raise RapheError(f"--start-from {model}: no float32 variant ({candidate.name}) beside it; fine-tuning "
                         "needs the unquantized weights")
    return candidate


def check_start(model: str | Path, kernels: tuple[int, ...]) -> tuple[Path, dict]:
    """The float32 file and metadata to fine-tune from, refused in one line (before TensorFlow loads)
    where it has none or lacks a member of ``kernels``."""
    path = float32_of(model)
    metadata = json.loads(sidecar(path)[1].read_text())
    ensemble = metadata.get("ensemble", {})
    have = sorted(int(k) for k in (ensemble.get("kernels") or [ensemble.get("kernel")]))
    missing = [k for k in kernels if k not in have]
    if missing:
        raise RapheError(f"--start-from {model} has members of kernels {have}; --kernels {missing} are not among them")
    return path, metadata


def constants(path: Path) -> dict[str, np.ndarray]:
    """Every constant tensor of the flatbuffer, by name (the interpreter holds no data for the others)."""
    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_silenced():
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
    found = {}
    for detail in interpreter.get_tensor_details():
        try:
            found[detail["name"]] = np.array(interpreter.get_tensor(detail["index"]))
        except ValueError:  # an intermediate: no data until the graph runs
            continue
    return found


def member_weights(tensors: dict[str, np.ndarray], kernel: int, n_classes: int) -> list[np.ndarray]:
    """The Keras weights of member ``k{kernel}`` in ``seed_model``'s order."""
    mine = {name: value for name, value in tensors.items() if re.search(rf"/k{kernel}_\d+/", name.split(";")[0])}

    def one(what: str, test) -> np.ndarray:
        hits = [v for n, v in mine.items() if test(n.split(";")[0], v)]
        if len(hits) != 1:
            raise RapheError(f"member k{kernel}: found {len(hits)} tensors for its {what}, not 1; "
                             "this flatbuffer was not written by raphe train")
        return hits[0]

    gamma = one("normalization scale", lambda n, v: n.endswith("/Reshape") and "layer_normalization" in n)
    beta = one("normalization offset", lambda n, v: n.endswith("/Reshape_1") and "layer_normalization" in n)
    conv1 = one("first convolution", lambda n, v: v.ndim == 4 and v.shape[2] == kernel and v.shape[3] == 1)
    conv2 = one("second convolution", lambda n, v: v.ndim == 4 and v.shape[2] == kernel and v.shape[3] > 1)
    bias1 = one("first bias", lambda n, v: v.ndim == 1 and "conv1d" in n and len(v) == conv1.shape[0])
    bias2 = one("second bias", lambda n, v: v.ndim == 1 and "conv1d" in n and len(v) == conv2.shape[0])
    dense = one("dense kernel", lambda n, v: v.ndim == 2 and "dense" in n and v.shape[0] == n_classes)
    dense_bias = one("dense bias", lambda n, v: v.ndim == 1 and "dense" in n and len(v) == n_classes)
    # Conv2D (out, 1, K, in) -> Conv1D (K, in, out); Dense (classes, features) -> (features, classes)
    return [gamma.reshape(-1), beta.reshape(-1), conv1[:, 0].transpose(1, 2, 0), bias1,
            conv2[:, 0].transpose(1, 2, 0), bias2, dense.T, dense_bias]


def rebuilt_members(model: str | Path, kernels: tuple[int, ...] = ()) -> tuple[dict[int, object], tuple[str, ...], Path]:
    """The members of ``model`` as Keras models, by kernel size, with the model's classes and the
    float32 file they came from; checked against that file's own probabilities."""
    from .network import fused_ensemble, seed_model

    path, metadata = check_start(model, kernels)
    classes = tuple(metadata["classes"])
    ensemble = metadata.get("ensemble", {})
    kernels = ensemble.get("kernels") or [ensemble.get("kernel")]
    tensors = constants(path)
    members = {}
    for kernel in kernels:
        member = seed_model(int(kernel), len(classes))
        member.set_weights(member_weights(tensors, int(kernel), len(classes)))
        members[int(kernel)] = member
    reference = Model(path)
    check = np.random.default_rng(0).normal(0.0, 50.0, (CHECK_WINDOWS, reference.n_points)).astype(np.float32)
    rebuilt = fused_ensemble(list(members.values()), float(ensemble.get("temperature", 1.0)))
    difference = float(np.abs(rebuilt.predict(check, verbose=0) - reference.predict(check)).max())
    if difference > MATCH_TOLERANCE:
        raise RapheError(f"--start-from {model}: the rebuilt members differ from {path.name} by {difference:.2g}; "
                         "this flatbuffer cannot be fine-tuned")
    return members, classes, path
