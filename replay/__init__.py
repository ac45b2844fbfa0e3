"""Reading `.abf` recordings with pyabf and publishing them, paced, on the Open Ephys ZMQ protocol."""

from .player import ReplaySummary, block_samples, replay
from .recording import Channel, Recording, RecordingError, Sweep

__all__ = ["Channel", "Recording", "RecordingError", "ReplaySummary", "Sweep", "block_samples", "replay"]
