"""The live path: subscribe to a rig (or a replay), detect, classify, publish, one message at a time.

Every DATA block goes to its cell's detector; every window the block completes is classified at
once (one interpreter call per window: the rig waits for no batch), the cell's posterior is
updated, and a POSTERIOR message and a spike event are published and logged before the next
message is read. Per-stage timings are kept as histograms.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import TextIO

import numpy as np
from rich.console import Console
from rich.table import Table

from raphe.classifier.runtime.cells import Cell
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.posterior import UNDECIDED, PosteriorConfig, top_class
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector
from raphe.streamer.outputs import Outputs, SpikeUpdate
from raphe.streamer.subscriber import Continuity, Subscriber

from .loop import run_loop
from .timings import StageTimings, timings_table

STAGES = ("receive", "detect", "classify", "publish")


@dataclass
class Channel:
    """A served channel: its cell and the detector that feeds it."""

    cell: Cell
    detector: Detector


class Service:
    """The live pipeline over one subscription.

    Parameters
    ----------
    connect : the rig's (or replay's) data endpoint.
    model : the classifier; its window decides the detector's window.
    detector_settings : threshold, adaptive_k, polarity, refractory_ms (see DetectorConfig).
    posterior : the cell posterior's combination and decision rule.
    outputs : where POSTERIOR messages and spike events go.
    log : a text file receiving one JSON object per line: every spike's update, every restart.
    units, scale : for channels whose header carries no units (Open Ephys sends none).
    keep_history : keep each cell's posterior after every spike (for the demo's figure).
    """

    def __init__(self, connect: str, model: Model, detector_settings: dict, posterior: PosteriorConfig,
                 outputs: Outputs, log: TextIO | None = None, units: str | None = None, scale: float = 1.0,
                 keep_history: bool = False):
        self.model = model
        self.detector_config = DetectorConfig(window=model.window, **detector_settings)
        self.posterior = posterior
        self.outputs = outputs
        self.log = log
        self.keep_history = keep_history
        self.channels: dict[tuple[str, int], Channel] = {}
        self.timings = StageTimings(STAGES)
        self.spikes = 0
        self._model_info = {"name": model.metadata.get("name", model.path.stem), "variant": model.variant,
                            "sha256": model.checksum}
        self._warm_up()
        self.subscriber = Subscriber(connect, units=units, scale=scale)

    def _warm_up(self) -> None:
        """Load the detector kernel and run the interpreter once, so the first spike waits for neither."""
        Detector(1, self.model.window.sample_rate_hz, self.detector_config).process(np.zeros((1, 64), np.float32), 0)
        self.model.predict_one(np.zeros(self.model.n_points, np.float32))

    def close(self) -> None:
        self.subscriber.close()

    def step(self, timeout_ms: int = 50) -> bool:
        """Handle the next message; False if none arrived within ``timeout_ms``."""
        started = time.perf_counter()
        message = self.subscriber.receive(0)
        if message is None:
            if not self.subscriber.wait(timeout_ms):
                return False
            started = time.perf_counter()
            message = self.subscriber.receive(0)
            if message is None:
                return True  # it was malformed: counted by the subscriber
        received = time.perf_counter()
        self.timings.add("receive", received - started)
        if not hasattr(message, "block"):
            return True  # a TTL event: raphe does not use them
        block = message.block
        key = (block.stream, block.channel_num)
        channel = self.channels.get(key)
        if channel is None or message.continuity is Continuity.START:
            channel = self._start(key, block)
        channel.cell.samples += len(message.samples)
        events = channel.detector.process(message.samples[None, :], block.sample_num)
        detected = time.perf_counter()
        self.timings.add("detect", detected - received)
        for record, window in zip(events.records, events.windows):
            t0 = time.perf_counter()
            probabilities = self.model.predict_one(window)
            posterior = channel.cell.add_spike(int(record["sample_num"]), probabilities, window)
            t1 = time.perf_counter()
            self._publish(channel, block, record, probabilities, posterior)
            self.timings.add("classify", t1 - t0)
            self.timings.add("publish", time.perf_counter() - t1)
            self.spikes += 1
        return True

    def _start(self, key: tuple[str, int], block) -> Channel:
        channel = self.channels.get(key)
        if channel is None:
            cell = Cell(block.stream, block.channel_num, block.channel_name, block.sample_rate, self.model.classes,
                        self.posterior, keep_history=self.keep_history)
            channel = self.channels[key] = Channel(cell, Detector(1, block.sample_rate, self.detector_config))
        else:
            channel.cell.restart(block.sample_rate)
            channel.detector = Detector(1, block.sample_rate, self.detector_config)
        self._write({"kind": "start", "cell": channel.cell.id, "acquisition": channel.cell.acquisition,
                     "sample_rate": block.sample_rate, "sample_num": block.sample_num})
        return channel

    def _publish(self, channel: Channel, block, record, probabilities, posterior) -> None:
        cell = channel.cell
        update = SpikeUpdate(
            stream=cell.stream, channel_num=cell.channel_num, channel_name=cell.channel_name, cell=cell.id,
            acquisition=cell.acquisition, sample_num=int(record["sample_num"]), source_message_num=block.message_num,
            sample_rate=block.sample_rate, amplitude=float(record["amplitude"]), threshold=float(record["threshold"]),
            n_spikes=cell.n_spikes, classes=list(self.model.classes),
            spike_probabilities=[float(p) for p in probabilities], posterior=[float(p) for p in posterior],
            decision=cell.posterior.decision, spikes_to_decision=cell.posterior.spikes_to_decision,
            mean_spike_probability=[float(p) for p in cell.posterior.mean_spike_probability], model=self._model_info)
        self.outputs.publish(update)
        self._write({"kind": "spike", **update.posterior_content()})

    def _write(self, record: dict) -> None:
        if self.log is not None:
            self.log.write(json.dumps({"time": round(time.time(), 6), **record}) + "\n")

    def dropped(self, channel: Channel) -> int:
        """Windows of ``channel``'s cell that its detector could not emit (no pre-samples, gap, NaN)."""
        return sum(channel.detector.dropped(0).values())

    def finish(self) -> None:
        """Log every cell's final state."""
        for channel in self.channels.values():
            self._write({"kind": "summary", **channel.cell.summary(), "dropped_windows": self.dropped(channel)})

    def summary(self, seconds: float) -> dict:
        """What `raphe serve --json` prints: the cells, the spikes and the stage timings."""
        return {"seconds": seconds, "spikes": self.spikes, "timings": self.timings.summary(),
                "cells": [c.cell.summary() for c in self.channels.values()]}

    def table(self, seconds: float, title: str) -> Table:
        """The live table: one line per cell, the stream's counters in the caption."""
        table = Table(title=title, title_justify="left")
        for column in ("cell", "name", "spikes", "rate Hz", "posterior", "decision", "spikes to decision", "drops"):
            table.add_column(column, justify="left" if column in ("cell", "name", "posterior", "decision") else "right")
        stats = self.subscriber.stats
        for key in sorted(self.channels):
            channel = self.channels[key]
            cell = channel.cell
            posterior = top_class(cell.classes, cell.posterior.posterior)
            decision = cell.posterior.decision
            style = "dim" if decision == UNDECIDED else "bold green"
            channel_stats = stats.channels.get(key)
            drops = self.dropped(channel) + (channel_stats.lost_samples if channel_stats else 0)
            table.add_row(cell.id, cell.channel_name, str(cell.n_spikes), f"{cell.rate_hz:.2f}", posterior,
                          f"[{style}]{decision}[/]", str(cell.posterior.spikes_to_decision or "-"), f"{drops:,}")
        malformed = ", ".join(f"{k} {n}" for k, n in sorted(stats.malformed.items())) or "0"
        table.caption = (f"messages {stats.messages:,} · lost {stats.lost_messages:,} · malformed {malformed} · "
                         f"acquisitions {stats.acquisitions} · spikes {self.spikes:,} · {seconds:.1f} s")
        table.caption_justify = "left"
        return table


def serve(service: Service, *, duration_s: float | None = None, idle_s: float | None = None,
          stop: threading.Event | None = None, console: Console | None = None, title: str = "raphe serve") -> float:
    """Serve until ``duration_s``, ``idle_s`` without data, ``stop`` or Ctrl-C; live table on ``console``.

    Returns the seconds served. Every cell's summary is logged, and the final table and the stage
    timings are printed, on exit.
    """
    console = console or Console()
    seconds = run_loop(service.step, lambda s: service.table(s, title), console=console, duration_s=duration_s,
                       idle_s=idle_s, stop=stop)
    service.finish()
    console.print(service.table(seconds, title))
    console.print(timings_table(service.timings))
    return seconds


