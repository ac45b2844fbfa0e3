"""raphe: real-time identification of serotonergic neurons from streamed electrophysiology.

The public API, loaded on first use (``import raphe`` itself loads nothing heavy)::

    import raphe
    cells = raphe.classify("cell.abf")  # one CellResult per cell, as `raphe classify` gives them
    cells = raphe.classify(trace, rate=20_000)  # a numpy array (or a neo object), in pA
    raphe.to_dataframe(cells)           # with pandas: the rows of `raphe classify --out`
    with raphe.serve("tcp://127.0.0.1:5556", idle=5) as updates:  # `raphe serve`, for a script
        for update in updates: ...
    rec = raphe.Recording("cell.abf")   # channels, sweeps, sample rate, read with pyabf
    model = raphe.Model()               # the shipped model; raphe.Model("lab.tflite") another
"""

from raphe.core.errors import RapheError

__all__ = ["CellResult", "Model", "RapheError", "Recording", "Update", "classify", "serve", "to_dataframe"]
__version__ = "0.1.0"

_API = ("CellResult", "Update", "classify", "serve", "to_dataframe")


def __getattr__(name: str):
    if name in _API:
        from raphe import api

        return getattr(api, name)
    if name == "Recording":
        from raphe.replay.recording import Recording

        return Recording
    if name == "Model":
        from raphe.classifier.runtime.model import Model

        return Model
    raise AttributeError(f"module 'raphe' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What ``dir(raphe)`` shows: the public names, loaded or not yet."""
    return sorted({*globals(), *__all__})
