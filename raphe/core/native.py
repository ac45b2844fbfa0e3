"""Native libraries that talk on file descriptor 2 (LiteRT's XNNPACK note, liblsl's config note),
silenced where raphe calls them so that its one-line errors and its tables stay clean."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """LiteRT's C++ runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate" and liblsl "Loaded
    default config" on file descriptor 2 with no switch to turn them off; they would break raphe's
    one-line errors and clutter its tables. Failures still surface, as Python exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
