"""Real baseline noise cut from spike-free stretches of current recordings (the seed's noise masks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from raphe.core.errors import RapheError
from raphe.replay.recording import Recording

TO_PA = {"pA": 1.0, "nA": 1000.0}
SEGMENT_S = 0.05
MAX_SIGMAS = 5.0


def cut_noise_masks(paths: list[str | Path], sample_rate: float) -> list[np.ndarray]:
    """Spike-free 50 ms stretches (pA, zero mean, resampled to ``sample_rate``) of every current channel.

    A stretch is spike-free when no sample strays more than 5 robust sigmas (MAD / 0.6745 of its
    channel) from the stretch's median: action currents, capacitive transients and large synaptic
    currents all fail that test.
    """
    masks: list[np.ndarray] = []
    for path in paths:
        recording = Recording(path)
        for position, channel in enumerate(recording.channels):
            if channel.units not in TO_PA:
                continue
            trace = np.concatenate([sweep.traces[position] for sweep in recording.sweeps]) * TO_PA[channel.units]
            sigma = np.median(np.abs(trace - np.median(trace))) / 0.6745
            step = int(SEGMENT_S * recording.sample_rate)
            if sigma == 0.0 or step < 2:
                continue
            for start in range(0, trace.size - step + 1, step):
                segment = trace[start:start + step]
                if np.max(np.abs(segment - np.median(segment))) < MAX_SIGMAS * sigma:
                    masks.append(resample(segment - segment.mean(), recording.sample_rate, sample_rate))
    if not masks:
        raise RapheError("no spike-free current (pA or nA) stretches found in the noise recordings")
    return masks


def resample(segment: np.ndarray, rate: float, target_rate: float) -> np.ndarray:
    if rate == target_rate:
        return segment.astype(np.float32)
    duration = segment.size / rate
    t = np.arange(int(round(duration * target_rate))) / target_rate
    return np.interp(t, np.arange(segment.size) / rate, segment).astype(np.float32)


def noise_from_masks(masks: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of baseline made of randomly chosen masks laid end to end."""
    parts, total = [], 0
    while total < n:
        mask = masks[rng.integers(len(masks))]
        parts.append(mask)
        total += mask.size
    return np.concatenate(parts)[:n]
