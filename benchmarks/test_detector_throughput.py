"""Detector throughput against a numpy reference detector and a plain memory copy, in the same run."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.conftest import RESULTS, record
from raphe.classifier.synthetic.template import SER, draw_cell, draw_day, synth_trace
from raphe.detector.online import Detector

RATE = 40_000.0
CHANNELS = [1, 16, 64, 384]
BLOCKS_MS = [1, 2, 10]


@pytest.fixture(scope="module")
def recording() -> np.ndarray:
    """384 channels x 0.5 s at 40 kHz: rolled copies of one synthetic SER trace with spikes."""
    rng = np.random.default_rng(0)
    cell = draw_cell(SER, rng)
    trace, _ = synth_trace(cell, draw_day("bench", rng), 0.5, RATE, rng)
    shifts = rng.integers(0, trace.shape[0], max(CHANNELS))
    return np.stack([np.roll(trace, s) for s in shifts])


def blocks(data: np.ndarray, n_channels: int, block_ms: int) -> list[np.ndarray]:
    step = int(RATE * block_ms / 1000)
    part = np.ascontiguousarray(data[:n_channels])
    return [np.ascontiguousarray(part[:, i:i + step]) for i in range(0, part.shape[1], step)]


def numpy_reference(parts: list[np.ndarray], thr: float = -50.0) -> int:
    """Crossings x[i] < thr <= x[i-1] per block in vectorized numpy, carrying the last sample."""
    prev = parts[0][:, :1]
    found = 0
    for block in parts:
        joined = np.concatenate([prev, block], axis=1)
        hits = (joined[:, 1:] < thr) & (thr <= joined[:, :-1])
        found += int(np.count_nonzero(hits))
        prev = block[:, -1:]
    return found


def raphe_detector(parts: list[np.ndarray], n_channels: int) -> int:
    det = Detector(n_channels, RATE)
    found = 0
    for i, block in enumerate(parts):
        found += len(det.process(block, i * block.shape[1]))
    return found


def memory_copy(parts: list[np.ndarray]) -> int:
    out = np.empty_like(parts[0])
    for block in parts:
        np.copyto(out, block)
    return 0


IMPLEMENTATIONS = {
    "raphe": raphe_detector,
    "numpy reference": lambda parts, n: numpy_reference(parts),
    "memory copy": lambda parts, n: memory_copy(parts),
}


@pytest.mark.parametrize("block_ms", BLOCKS_MS)
@pytest.mark.parametrize("n_channels", CHANNELS)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_detector_throughput(benchmark, recording, impl, n_channels, block_ms):
    parts = blocks(recording, n_channels, block_ms)
    run = IMPLEMENTATIONS[impl]
    run(parts, n_channels)  # compile and warm caches outside the timing
    benchmark.group = f"detector {n_channels} ch, {block_ms} ms blocks"
    benchmark.pedantic(run, args=(parts, n_channels), rounds=5, warmup_rounds=1)
    record(benchmark, f"detector {impl}: {n_channels} ch {block_ms} ms (samples)",
           sum(p.size for p in parts), "samples_per_s")


def test_detector_call_overhead(benchmark):
    """One call on a 1-channel, 1-sample block: what Python and the kernel call cost on their own."""
    det = Detector(1, RATE)
    block = np.zeros((1, 1), np.float32)
    counter = iter(range(10**9))
    benchmark(lambda: det.process(block, next(counter)))
    RESULTS["detector call overhead (calls)"] = 1.0 / benchmark.stats.stats.median
