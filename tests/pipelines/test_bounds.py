"""A long day at the rig cannot wear `serve` out: forgotten cells free their stream's slot, a channel
that keeps changing its rate holds one row, and memory per cell has a bound."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from raphe.pipelines.live import FORGET_CHECK_S
from tests.helpers import drain_service, live_service

# What one cell may cost at most (detector row, signal checks, cell, wire counters), at 40 kHz
# with the default threshold from the baseline: docs/bad-input.md states it.
BYTES_PER_CELL = 64 * 1024


def test_forgotten_cells_free_their_streams_slot_for_new_streams():
    """More streams than the subscriber keeps at once (256), one after another, each forgotten
    when silent: none is refused."""
    with live_service(forget_after_s=0.2) as (pub, service):
        for batch in range(3):
            for k in range(120):
                for offset in range(0, 800, 400):
                    pub.send_data(f"rec-{batch}-{k}", 0, "A", offset, 40_000.0, np.zeros(400, np.float32), "pA")
            drain_service(service)
            time.sleep(0.2 + 2 * FORGET_CHECK_S)
            service.step(10)
        counters = service.counters()
    assert "too_many_streams" not in counters["malformed"], counters["malformed"]
    assert counters["forgotten_cells"] >= 240 and counters["cells"] <= 121


def test_a_channel_that_keeps_changing_its_rate_holds_one_row():
    """A channel whose header claims a new sample rate at every block (each a restart of the cell):
    the service keeps one detector row for it, not one per rate it ever claimed."""
    with live_service() as (pub, service):
        for k in range(300):
            rate = 20_000.0 + 10.0 * k
            pub.send_data("wobbly", 0, "A", 0, rate, np.zeros(400, np.float32), "pA")
        drain_service(service)
        rows = [r for (stream, _), r in service.streams.items() if stream == "wobbly"]
        assert len(rows) == 1 and rows[0].detector.n_channels == 1
        assert service.channels[("wobbly", 0)].cell.acquisition == 300


def test_memory_per_cell_is_bounded_under_a_flood_of_cells():
    """5,000 channels at 40 kHz, one block each, thresholds from the baseline: what the service
    holds grows by at most BYTES_PER_CELL per cell."""
    with live_service(max_cells=6000) as (pub, service):
        def flood(first: int, count: int) -> None:
            for k in range(first, first + count):
                pub.send_data("probe-64", k, f"ch{k}", 0, 40_000.0, np.zeros(400, np.float32), "pA")
                if k % 500 == 0:
                    drain_service(service)
            drain_service(service)

        flood(0, 1000)
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        flood(1000, 4000)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        assert service.counters()["cells"] >= 5000 and service.refused_blocks == 0
    assert grown / 4000 < BYTES_PER_CELL, grown / 4000
