"""raphe: real-time identification of serotonergic neurons from streamed electrophysiology.

The public API::

    import raphe
    rec = raphe.Recording("cell.abf")   # channels, sweeps, sample rate, read with pyabf
"""

from raphe.errors import RapheError
from raphe.replay import Recording

__all__ = ["RapheError", "Recording"]
__version__ = "0.1.0"
