"""The cost of a threshold that follows the baseline, block by block: a rig of 64 channels in 10 ms
blocks at 40 kHz, where every channel completes its noise segment on the same block (they started
together). That block, the worst of a real-time service, and an ordinary one are timed with the
relative and adaptive rules and with the absolute rule on the same blocks; the ratios are formed in
this run (``benchmarks/conftest.py``), and printed at the end of the module.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from benchmarks.conftest import QUICK, RESULTS, record
from raphe.classifier.synthetic.template import SER, draw_cell, draw_day, synth_trace
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector

RATE = 40_000.0
CHANNELS = 64
BLOCK = 400  # 10 ms
SECONDS = 1.1  # two full noise segments after the first one, at the default 0.5 s
ROUNDS = 5 if QUICK else 40
RULES = {"absolute": DetectorConfig(relative=False), "relative": DetectorConfig(),
         "adaptive": DetectorConfig(adaptive_k=5.0)}


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    """64 channels x 1.1 s at 40 kHz: rolled copies of one synthetic SER trace with spikes."""
    rng = np.random.default_rng(0)
    trace, _ = synth_trace(draw_cell(SER, rng), draw_day("bench", rng), SECONDS, RATE, rng)
    shifts = rng.integers(0, trace.shape[0], CHANNELS)
    return np.stack([np.roll(trace, s) for s in shifts]).astype(np.float32)


def completing_blocks(detector: Detector, data: np.ndarray, block: int) -> list[int]:
    """The blocks of ``data`` (fed in order to ``detector``) on which every channel's baseline moved:
    those on which every channel completed a noise segment."""
    found = []
    for i in range(data.shape[1] // block):
        before = detector.baseline.copy()
        detector.process(data[:, i * block:(i + 1) * block], i * block)
        after = detector.baseline
        if np.all((after != before) & np.isfinite(after)):
            found.append(i)
    return found


def primed(config: DetectorConfig, data: np.ndarray, block: int, upto: int) -> Detector:
    """A detector fed ``data``'s first ``upto`` blocks."""
    detector = Detector(data.shape[0], RATE, config)
    for i in range(upto):
        detector.process(data[:, i * block:(i + 1) * block], i * block)
    return detector


@pytest.fixture(scope="module")
def blocks(stream) -> dict[str, int]:
    """The block on which the first segments complete, the last on which full ones do, and an
    ordinary one between them (the same blocks for every rule)."""
    done = completing_blocks(Detector(CHANNELS, RATE, RULES["relative"]), stream, BLOCK)
    assert len(done) >= 2, done
    return {"first segment completes": done[0], "segment completes": done[-1], "ordinary": done[-1] - 7}


@pytest.fixture(scope="module", autouse=True)
def ratios(request):
    """Print the same-run ratios once every case of the module has run."""
    yield
    lines = []
    for rule in ("relative", "adaptive"):
        ordinary = RESULTS.get(f"detector block {rule}: ordinary (blocks)")
        for which in ("first segment completes", "segment completes"):
            absolute = RESULTS.get(f"detector block absolute: {which} (blocks)")
            rate = RESULTS.get(f"detector block {rule}: {which} (blocks)")
            if rate and absolute and ordinary:
                lines.append(f"  ratio detector block {rule}, {which}: x{absolute / rate:.2f} the absolute rule's "
                             f"same block, x{ordinary / rate:.2f} an ordinary {rule} block")
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if lines and reporter and capture:
        # a fixture's teardown runs under pytest's capture, which would swallow the lines
        with capture.global_and_fixture_disabled():
            for line in ["", f"raphe detector block, {CHANNELS} ch x {BLOCK} samples at {RATE:g} Hz:", *lines]:
                reporter.write_line(line)


@pytest.mark.parametrize("which", ["ordinary", "first segment completes", "segment completes"])
@pytest.mark.parametrize("rule", list(RULES))
def test_detector_block_on_which_segments_complete(benchmark, stream, blocks, rule, which):
    index = blocks[which]
    ready = primed(RULES[rule], stream, BLOCK, index)
    block = np.ascontiguousarray(stream[:, index * BLOCK:(index + 1) * BLOCK])
    copy.deepcopy(ready).process(block, index * BLOCK)  # compile and warm caches outside the timing

    def fresh():
        return (copy.deepcopy(ready), block, index * BLOCK), {}

    benchmark.group = f"detector block, {CHANNELS} ch x 10 ms"
    benchmark.pedantic(lambda detector, data, start: detector.process(data, start), setup=fresh,
                       rounds=ROUNDS, warmup_rounds=1)
    record(benchmark, f"detector block {rule}: {which} (blocks)", 1, "blocks_per_s")
