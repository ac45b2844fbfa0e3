"""Export of a fused Keras ensemble to .tflite: float32, dynamic-range (int8 weights), full int8.

Conversion goes through ``from_keras_model``: converting a concrete function of a Keras 3 model
leaves the weights unfrozen and the interpreter outputs NaN.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from raphe.core.staged import staged

VARIANTS = ("float32", "dynamic", "int8")


def convert(model, variant: str, representative: np.ndarray) -> bytes:
    """The model as a .tflite flatbuffer; ``representative`` windows calibrate full-int8 activations.

    Inputs and outputs stay float32 in every variant, so the runtime feeds all of them alike.
    """
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if variant in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "int8":
        def samples():
            for window in representative:
                yield [window[np.newaxis, :].astype(np.float32)]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    # the converter prints the whole saved-model signature to stdout and warns that float inputs
    # carry no quantization statistics (they are meant to stay float); keep the terminal readable
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return converter.convert()


def write_model(path: Path, flatbuffer: bytes, metadata: dict) -> Path:
    """Write ``path`` (.tflite) and its .json metadata, with the flatbuffer's sha256; atomically."""
    metadata = {**metadata, "tflite": path.name, "sha256": hashlib.sha256(flatbuffer).hexdigest()}
    for target, data in ((path, flatbuffer), (path.with_suffix(".json"),
                                             (json.dumps(metadata, indent=2) + "\n").encode())):
        with staged(target) as partial:
            partial.write_bytes(data)
    return path
