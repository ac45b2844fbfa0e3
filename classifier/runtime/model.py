"""Loading and running a raphe model with the LiteRT interpreter (never TensorFlow).

A raphe model is ``NAME.tflite`` plus ``NAME.json`` beside it: classes, window spec, sample rate,
training data and recipe, metrics and the sha256 of the ``.tflite``, which is checked on load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from raphe.core.errors import RapheError
from raphe.core.native import native_stderr_silenced
from raphe.core.specs import CASCADE_FORMAT, DECISION_THRESHOLD, MIN_SPIKES, MODEL_FORMAT, WindowSpec

from .firing import FiringModel
from .novelty import Novelty
from .posterior import PosteriorConfig

DEFAULT_DIR = Path(__file__).parents[1] / "default"
# The shipped models by name: the ensemble, the student distilled from it (about ten times cheaper
# per window), the cascade of the two (runtime.cascade: the student, and the ensemble for the
# windows the student is unsure of; its file says whether it was measured to stand in for the
# ensemble), and the one raphe uses unless told otherwise.
SHIPPED = {"ensemble": DEFAULT_DIR / "raphe-default-dynamic.tflite",
           "student": DEFAULT_DIR / "raphe-student-dynamic.tflite",
           "cascade": DEFAULT_DIR / "raphe-cascade.json"}
SHIPPED["default"] = SHIPPED["ensemble"]
DEFAULT_MODEL = SHIPPED["default"]
BATCH = 64


@dataclass(frozen=True, slots=True)
class BatchInterpreter:
    """An interpreter for batches of ``size`` windows, with its tensors' indices and its input
    buffer found once: asking an interpreter for its tensors' details costs 4 µs back to back but
    about 100 µs when the host has not run it for 10 ms (measured here), as at a slow cell's spike."""

    interpreter: Interpreter
    input_index: int
    output_index: int
    batch: np.ndarray


def sidecar(path: Path) -> tuple[Path, Path]:
    """(tflite, json) paths of a model named by either file."""
    return path.with_suffix(".tflite"), path.with_suffix(".json")


def read_metadata(path: str | Path) -> tuple[dict, bytes]:
    """The metadata and the verified flatbuffer of a model; one clear error for anything else (a
    cascade's file among them: it holds no network of its own)."""
    tflite, meta_path = sidecar(Path(path))

    def missing(p: Path) -> RapheError:
        return RapheError(f"{path}: not a raphe model ({p.name} is missing; a model is NAME.tflite + NAME.json)")

    if not meta_path.is_file():
        raise missing(meta_path if tflite.is_file() else tflite)
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise RapheError(f"{meta_path}: not a raphe model (metadata is not readable JSON)") from None
    if isinstance(metadata, dict) and metadata.get("format") == CASCADE_FORMAT:
        raise RapheError(f"{meta_path}: a cascade, not a model: serve, classify and the Python API take it, this "
                         "takes a model's .tflite or .json")
    if not tflite.is_file():
        raise missing(tflite)
    if not isinstance(metadata, dict) or metadata.get("format") != MODEL_FORMAT:
        raise RapheError(f"{meta_path}: not a raphe model (format is not {MODEL_FORMAT!r})")
    content = tflite.read_bytes()
    if hashlib.sha256(content).hexdigest() != metadata.get("sha256"):
        raise RapheError(f"{tflite}: checksum does not match its metadata (file altered or corrupt)")
    return metadata, content


def model_files(path: str | Path) -> list[Path]:
    """A model file (or a shipped model's name), or every model (.tflite with its .json) in a folder."""
    path = SHIPPED.get(str(path), Path(path))
    if path.is_dir():
        found = sorted(p for p in path.glob("*.tflite") if p.with_suffix(".json").is_file())
        if not found:
            raise RapheError(f"{path}: no raphe model (NAME.tflite + NAME.json) in this folder")
        return found
    return [path]


class Model:
    """A classifier ready to run: ``predict(windows)`` gives class probabilities.

    Parameters
    ----------
    path : a model's ``.tflite`` or ``.json``, or the name of a shipped one: ``default`` (the
        default), ``ensemble`` or ``student``.
    num_threads : interpreter threads (default 1: at the rig, latency of one window matters most).
    """

    def __init__(self, path: str | Path | None = None, num_threads: int = 1):
        self.path = DEFAULT_MODEL if path is None else SHIPPED.get(str(path), Path(path))
        self.metadata, self._content = read_metadata(self.path)
        try:
            self.classes = tuple(str(c) for c in self.metadata["classes"])
            self.window = WindowSpec.from_json(self.metadata["window"])
        except (KeyError, TypeError, ValueError, RapheError):
            raise RapheError(f"{self.path}: not a raphe model (metadata lacks classes or window)") from None
        try:
            self.novelty = Novelty.from_json(self.metadata["novelty"]) if "novelty" in self.metadata else None
        except RapheError as exc:
            raise RapheError(f"{self.path}: {exc}") from None
        self.num_threads = num_threads
        try:
            single = self._interpreter(1)
        except (ValueError, RuntimeError) as exc:
            raise RapheError(f"{self.path}: LiteRT cannot load this model ({exc})") from None
        shape = list(single.interpreter.get_input_details()[0]["shape"])
        if shape != [1, self.n_points]:
            raise RapheError(f"{self.path}: model input is {shape}, metadata says {self.n_points} points")
        self._sized: dict[int, BatchInterpreter] = {1: single}

    def __repr__(self) -> str:
        return (f"Model({self.path.name}: {'/'.join(self.classes)}, {self.metadata.get('variant', '?')}, "
                f"{self.n_points} points over {self.window.span_ms:g} ms)")

    @property
    def n_points(self) -> int:
        return self.window.n_points

    @property
    def firing(self) -> FiringModel | None:
        """The firing model calibrated with this one (a file beside it), or None."""
        joint = self.metadata.get("posterior", {}).get("firing")
        if not joint:
            return None
        if not isinstance(joint, dict):
            raise RapheError(f"{self.path}: its posterior's firing part is not an object")
        return FiringModel(self.path.parent / Path(str(joint.get("model", ""))).name)

    def posterior_config(self, threshold: float | None = None, min_spikes: int = MIN_SPIKES,
                         evidence: str | None = None) -> PosteriorConfig:
        """The cell posterior fitted with this model (the naive product if the metadata has none).
        ``evidence`` (which posterior decides) defaults to ``both`` where the model has a firing model,
        else ``waveform``; the firing part is computed and shown whenever there is one. ``threshold``
        (one for every class) overrides the per-class thresholds the model's risk control chose;
        without either, 0.99."""
        fitted = self.metadata.get("posterior", {})
        joint = fitted.get("firing") or {}
        firing = self.firing
        if firing is not None:
            firing.in_classes(self.classes)  # a mismatch is one line now, not at the first cell
        certified = (fitted.get("certificate") or {}).get("thresholds")
        thresholds = None
        if threshold is None and certified:
            thresholds = tuple(float(certified[c]) for c in self.classes)
        return PosteriorConfig(alpha=float(fitted.get("alpha", 1.0)), beta=float(fitted.get("beta", 0.0)),
                               margin=float(fitted.get("margin", 0.0)),
                               threshold=DECISION_THRESHOLD if threshold is None else threshold, min_spikes=min_spikes,
                               evidence=evidence or ("both" if firing else "waveform"), firing=firing,
                               firing_weight=float(joint.get("weight", 1.0)),
                               firing_margin=float(joint.get("margin", 0.0)),
                               joint_margin=float(joint.get("joint_margin", fitted.get("margin", 0.0))),
                               waveform_cap=level(fitted.get("waveform_cap")), conflict=level(joint.get("conflict")),
                               thresholds=thresholds)

    @property
    def posterior_note(self) -> str | None:
        """One line where this model's posterior was fitted before the rules across generators (no
        waveform cap, no conflict rule, no certified thresholds): it decides by the old rule."""
        fitted = self.metadata.get("posterior", {})
        if "waveform_cap" in fitted:
            return None
        return (f"note: {self.path.name} was calibrated before the rules across generators (no waveform cap, no "
                "shape-firing conflict rule, no certified thresholds); it decides by the old rule "
                "(recalibrate it with `raphe calibrate`)")

    @property
    def checksum(self) -> str:
        return str(self.metadata["sha256"])

    @property
    def variant(self) -> str:
        return str(self.metadata.get("variant", ""))

    @property
    def identity(self) -> dict:
        """What names this model in every output: its name (the file's stem where the metadata has
        none), variant and sha256."""
        return {"name": self.metadata.get("name", self.path.stem), "variant": self.variant, "sha256": self.checksum}

    def _interpreter(self, batch: int) -> BatchInterpreter:
        with native_stderr_silenced():
            interpreter = Interpreter(model_content=self._content, num_threads=self.num_threads)
            input_index = interpreter.get_input_details()[0]["index"]
            if batch != 1:
                interpreter.resize_tensor_input(input_index, [batch, self.n_points])
            interpreter.allocate_tensors()
        return BatchInterpreter(interpreter, input_index, interpreter.get_output_details()[0]["index"],
                                np.zeros((batch, self.n_points), np.float32))

    def novel(self, windows: np.ndarray) -> np.ndarray:
        """Per window (N, n_points), whether it looks like nothing the model was trained on; all False
        for a model that carries no novelty summary."""
        if self.novelty is None or len(windows) == 0:
            return np.zeros(len(windows), dtype=bool)
        return self.novelty.is_novel(windows)

    def warm(self, windows: np.ndarray) -> None:
        """Run ``windows`` through the interpreter, to keep its memory close (see ``Service._keep_warm``)."""
        self.predict(windows)

    def predict_one(self, window: np.ndarray) -> np.ndarray:
        """Probabilities (C,) for one window of ``n_points`` values."""
        single = self._sized[1]
        single.interpreter.set_tensor(single.input_index,
                                      np.ascontiguousarray(window, dtype=np.float32).reshape(1, self.n_points))
        single.interpreter.invoke()
        return single.interpreter.get_tensor(single.output_index)[0]

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities (N, C) for windows (N, n_points): one interpreter call per 64 windows, each
        call on an interpreter sized to the next power of two (padded), so that a handful of windows
        costs one call, not one each."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != self.n_points:
            raise RapheError(f"windows must be (N, {self.n_points}) (got {windows.shape})")
        if len(windows) == 1:  # a slow cell's spike: the fewest calls, each touching little memory
            return self.predict_one(windows[0])[None]
        out = np.empty((len(windows), len(self.classes)), dtype=np.float32)
        for start in range(0, len(windows), BATCH):
            part = windows[start:start + BATCH]
            count = len(part)
            size = 1 << (count - 1).bit_length()
            sized = self._sized.get(size)
            if sized is None:
                sized = self._sized[size] = self._interpreter(size)
            sized.batch[:count] = part
            sized.batch[count:] = 0  # each row is answered alone, but padding the same way costs the same
            sized.interpreter.set_tensor(sized.input_index, sized.batch)
            sized.interpreter.invoke()
            out[start:start + count] = sized.interpreter.get_tensor(sized.output_index)[:count]
        return out


def level(value) -> float:
    """A posterior's level from a model's metadata: null (or absent) is none, i.e. infinite."""
    return float("inf") if value is None else float(value)
