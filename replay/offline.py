"""Detection on a whole recording without sockets: the same detector, fed blocks read from the file."""

from __future__ import annotations

import numpy as np

from raphe.detector import Detector, DetectorConfig, Events

from .player import block_samples
from .recording import Channel, Recording


def detect_recording(recording: Recording, channels: list[Channel], config: DetectorConfig,
                     block_ms: float = 10.0) -> tuple[Events, Detector]:
    """Events of ``channels`` over every sweep, fed in blocks of ``block_ms`` on the file's sample
    counter, so that the pauses between sweeps are gaps to the detector as they are on the wire.
    ``records["channel"]`` is the position in ``channels``."""
    detector = Detector(len(channels), recording.sample_rate, config)
    step = block_samples(recording.sample_rate, block_ms)
    records, windows = [], []
    for sweep in recording.sweeps:
        data = np.stack([sweep.traces[c.num] for c in channels])
        for offset in range(0, sweep.num_samples, step):
            events = detector.process(data[:, offset:offset + step], sweep.sample_num + offset)
            records.append(events.records)
            windows.append(events.windows)
    return Events(np.concatenate(records), np.concatenate(windows)), detector
