"""Which model answers: a name or a file opened as a model or a cascade, and the one that stands in
for the ensemble on wide streams.

The rule for wide streams (docs/commands.md, "raphe serve"): where the choice of model was left to
raphe, a stream (or a file) of more than ``ENSEMBLE_MAX_CHANNELS`` channels is served by the shipped
cascade if its file says it stands in for the ensemble, else by the ensemble like every other stream.
"""

from __future__ import annotations

from pathlib import Path

from raphe.core.specs import ENSEMBLE_MAX_CHANNELS

from .cascade import Cascade, is_cascade, read_cascade
from .model import SHIPPED, Model


def load(path: str | Path | None = None, num_threads: int = 1, loaded=None) -> Model | Cascade:
    """The model at ``path`` (a ``.tflite`` or its ``.json``, or a shipped name: ``default``,
    ``ensemble``, ``student``, ``cascade``), or the cascade where the file is one; the default
    model for None. ``loaded``: a model already loaded, which a cascade shares where it is its
    ensemble (rather than loading that file a second time)."""
    if path is not None:
        resolved = SHIPPED.get(str(path), Path(path))
        if is_cascade(resolved):
            return Cascade(resolved, num_threads, loaded if isinstance(loaded, Model) else None)
    return Model(path, num_threads)


def chosen(requested, num_threads: int = 1) -> tuple[Model | Cascade, Cascade | None]:
    """The model asked for (a name or file as for :func:`load`, one already loaded, or None for the
    default) and, where the choice was left to raphe, the model of its wide streams
    (:func:`stand_in`, sharing the loaded ensemble), or None."""
    model = requested if isinstance(requested, (Model, Cascade)) else load(requested, num_threads)
    return model, stand_in(requested, num_threads, model)


def stand_in(requested, num_threads: int = 1, ensemble: Model | None = None) -> Cascade | None:
    """Where the choice of model was left to raphe (``requested``, the model asked for, is None or
    ``"default"``): the shipped cascade, for the wide streams (and files), if its file says it
    stands in for the ensemble (it agreed with it on at least ``STAND_IN_AGREEMENT`` of the held-out
    windows of every set checked, and decided no cell as another class); else None. ``ensemble``:
    the ensemble already loaded, which the cascade shares where it is the same file."""
    if not (requested is None or (isinstance(requested, str) and requested == "default")):
        return None
    written, _ = read_cascade(SHIPPED["cascade"])
    return Cascade(SHIPPED["cascade"], num_threads, ensemble) if written.get("stands_in") else None


def for_width(channels: int, model, wide, most: int = ENSEMBLE_MAX_CHANNELS):
    """The model (or its path) that serves a stream or file of ``channels`` channels: ``wide`` where
    there is one (see :func:`stand_in`) and the channels are more than ``most``, else ``model``."""
    return wide if wide is not None and channels > most else model
