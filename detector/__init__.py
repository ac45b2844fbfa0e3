"""Online spike detection: numba kernels over preallocated arrays, driven by a thin stateful wrapper."""

from .online import EVENT_DTYPE, Detector, DetectorConfig, Events, window_positions

__all__ = ["EVENT_DTYPE", "Detector", "DetectorConfig", "Events", "window_positions"]
