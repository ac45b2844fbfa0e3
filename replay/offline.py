"""Detection and classification of a whole recording without sockets: the same detector, cells and
posterior as the live service, fed blocks read straight from the file."""

from __future__ import annotations

import numpy as np

from raphe.classifier.cells import Cell
from raphe.classifier.posterior import PosteriorConfig
from raphe.classifier.runtime import Model
from raphe.detector import Detector, DetectorConfig, Events

from .player import block_samples
from .recording import Channel, Recording


def detect_recording(recording: Recording, channels: list[Channel], config: DetectorConfig,
                     block_ms: float = 1000.0) -> tuple[Events, Detector]:
    """Events of ``channels`` over every sweep, fed in blocks of ``block_ms`` on the file's sample
    counter, so that the pauses between sweeps are gaps to the detector as they are on the wire.
    The events do not depend on the block size (the detector is block-invariant); the default of
    1 s keeps the cost of each call from Python small against the work inside it.
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


def classify_recording(recording: Recording, channels: list[Channel], model: Model, config: DetectorConfig,
                       posterior: PosteriorConfig, block_ms: float = 1000.0,
                       keep_history: bool = False) -> tuple[list[Cell], Detector]:
    """One :class:`Cell` per channel, after every spike of the recording, classified in batches.

    The spikes are exactly those a live `raphe serve` finds in a replay of the file (the detector
    gives the same events for any block size), and each cell's posterior takes them in the same order.
    """
    events, detector = detect_recording(recording, channels, config, block_ms)
    probabilities = model.predict(events.windows) if len(events) else np.empty((0, len(model.classes)))
    cells = [Cell(recording.name, c.num, c.name, recording.sample_rate, model.classes, posterior, keep_history)
             for c in channels]
    for cell in cells:
        cell.samples = recording.total_samples
    for record, p, window in zip(events.records, probabilities, events.windows):
        cells[record["channel"]].add_spike(int(record["sample_num"]), p, window)
    return cells, detector
