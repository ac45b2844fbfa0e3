"""raphe: real-time identification of serotonergic neurons from streamed electrophysiology.

The public API, loaded on first use (``import raphe`` itself loads nothing heavy)::

    import raphe
    rec = raphe.Recording("cell.abf")   # channels, sweeps, sample rate, read with pyabf
    model = raphe.Model()               # the shipped model; raphe.Model("lab.tflite") another
"""

from raphe.core.errors import RapheError

__all__ = ["Model", "RapheError", "Recording"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Recording":
        from raphe.replay.recording import Recording

        return Recording
    if name == "Model":
        from raphe.classifier.runtime.model import Model

        return Model
    raise AttributeError(f"module 'raphe' has no attribute {name!r}")
