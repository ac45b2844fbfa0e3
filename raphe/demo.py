"""`raphe demo`: the main job with nothing from outside. It writes synthetic cell-attached recordings,
replays one in real time on a loopback socket and watches it with the same code as `raphe listen`."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np
import pyabf
from rich.console import Console

from raphe.classifier.synthetic import SER, draw_cell, draw_day, synth_trace
from raphe.listen import listen
from raphe.replay import Recording, replay
from raphe.streamer import Publisher

SAMPLE_RATE = 40_000.0


def demo(seconds: float = 15.0, seed: int = 1) -> int:
    """Run the demo; return the exit code (0 when every sample arrived, in order, without a gap)."""
    console = Console()
    rng = np.random.default_rng(seed)
    cell = draw_cell(SER, rng)
    with tempfile.TemporaryDirectory(prefix="raphe-demo-") as tmp:
        path = Path(tmp) / "demo_cell.abf"
        trace, spikes = synth_trace(cell, draw_day("demo", rng), seconds, SAMPLE_RATE, rng)
        pyabf.abfWriter.writeABF1(trace[np.newaxis, :], str(path), sampleRateHz=SAMPLE_RATE, units="pA")
        console.print(f"generated {path.name}: a synthetic {cell.label} cell, UDI {cell.udi_ms:.2f} ms, "
                      f"{len(spikes)} spikes at {cell.rate_hz:.1f} Hz over {seconds:g} s at {SAMPLE_RATE:g} Hz")
        recording = Recording(path)
        with Publisher("tcp://127.0.0.1:*", lossless=True) as publisher:
            console.print(f"replaying it in real time on {publisher.endpoint}; listening ...")
            done = threading.Event()

            def publish() -> None:
                publisher.wait_for_subscribers(1)
                replay(recording, publisher, block_ms=10.0, speed=1.0)
                done.set()

            sender = threading.Thread(target=publish, name="raphe-demo-replay")
            sender.start()
            result = listen(publisher.endpoint, idle_s=1.0, console=console)
            sender.join()
    received = sum(c.samples for c in result.stats.channels.values())
    clean = (done.is_set() and received == recording.total_samples and result.stats.lost_messages == 0
             and result.stats.malformed_total == 0)
    console.print(f"received {received:,} of {recording.total_samples:,} samples: "
                  + ("complete, no gap, no loss" if clean else "INCOMPLETE"))
    return 0 if clean else 1
