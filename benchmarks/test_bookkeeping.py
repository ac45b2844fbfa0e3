"""A spike's bookkeeping beyond the interpreter (its cell's posterior, firing and record, and the
serialization of its update) back to back and after 50 ms, asleep or busy, in the same run: at a rig
whose cells fire at 2-20 Hz every spike comes after such a pause, and on a shared virtual machine
what a process left for that long is far slower to reach again, whatever it did meanwhile."""

from __future__ import annotations

import time

import numpy as np
import pytest

from raphe.classifier.runtime.cells import Cell
from raphe.classifier.runtime.model import Model
from raphe.classifier.synthetic import template
from raphe.outputs.update import SpikeUpdate
from raphe.outputs.wire import serialized

from .conftest import QUICK, record_with_p99

PAUSE_S = 0.05


def spike_windows(model: Model, count: int = 64) -> np.ndarray:
    """Windows of one synthetic SER cell (the template generator's), a little jittered, with rig
    noise: windows the model knows, so each moves the posterior."""
    rng = np.random.default_rng(0)
    cell, t_ms = template.draw_cell("SER", rng), model.window.time_ms()
    return np.array([template.action_current(cell, t_ms - 0.1, rng.normal(1.0, 0.03), rng.normal(1.0, 0.05))
                     + rng.normal(0.0, 3.0, len(t_ms)) for _ in range(count)], np.float32)


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.mark.parametrize("pause", ["back to back", "asleep", "busy"])
def test_a_spikes_bookkeeping_after_a_pause(benchmark, pause):
    model = Model()
    cell = Cell("rig", 0, "A", 40_000.0, model.classes, model.posterior_config())
    windows = spike_windows(model)
    probabilities, novel = model.predict(windows), model.novel(windows)
    assert not novel.any()  # a novel window skips the posterior and the firing evidence: not a spike's cost
    info = model.identity
    spike = [0]

    def once() -> None:
        k = spike[0] % len(windows)
        spike[0] += 1
        sample_num = 4_000 * spike[0]  # 10 Hz: the firing evidence reads real intervals
        cell.add_spike(sample_num, probabilities[k], windows[k], bool(novel[k]))
        serialized(SpikeUpdate(cell.state(reached=False), sample_num, spike[0], 40_000.0, 50.0, 20.0, bool(novel[k]),
                               probabilities[k], info))

    for _ in range(50):
        once()
    setup = {"back to back": None, "asleep": lambda: time.sleep(PAUSE_S), "busy": lambda: busy(PAUSE_S)}[pause]
    rounds = 10 if QUICK else (3000 if setup is None else 200)
    benchmark.pedantic(once, setup=setup, rounds=rounds, iterations=1)
    label = f"a spike's bookkeeping, {pause if setup is None else f'after {PAUSE_S * 1000:.0f} ms {pause}'}"
    record_with_p99(benchmark, label, "spikes/s")
