"""The live path: subscribe to a rig (or a replay), detect, classify, publish, in batches.

Each wake-up drains every message waiting (``Subscriber.receive_batch``). The blocks of one stream
that share a sample rate and a length go through one detector call, every channel in its own row
(``Detector.process_rows``), in rounds so that each channel's blocks keep their order; all windows
completed by the drain are scored for novelty and classified in one interpreter call; then each
cell's posterior takes its spikes in order, and a POSTERIOR message and a spike event are published
per spike, each serialized once, and logged by a writer thread. A cell thus ends exactly as it
would one message at a time, and as `raphe classify` ends it. Per-stage timings are kept per drain.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from raphe.classifier.runtime.cells import Cell
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.posterior import NOT_CLASSIFIABLE, UNDECIDED, PosteriorConfig, top_class
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector
from raphe.detector.plausibility import SignalChecks, block_stats
from raphe.streamer.outputs import Outputs, SpikeUpdate
from raphe.streamer.subscriber import Continuity, Received, ReceivedPacked, Subscriber

from .loop import run_loop
from .records import RecordLog
from .timings import StageTimings, timings_table

STAGES = ("receive", "detect", "classify", "publish")
# Messages drained per wake-up at most, and queued by ZeroMQ before it drops: a second of a
# 384-channel probe in 10 ms blocks fits in either.
DRAIN_LIMIT = 8192
RECEIVE_HWM = 100_000


@dataclass
class Channel:
    """A served channel: its cell, the detector (and row) that feeds it, the checks of its signal."""

    cell: Cell
    detector: Detector
    row: int
    checks: SignalChecks

    def judge(self) -> None:
        """Bring the cell's signal reasons up to date with the checks."""
        self.cell.signal_reasons = self.checks.reasons()


@dataclass(frozen=True, slots=True)
class Spike:
    """A window the detector completed, waiting to be classified: whose, where, and which message."""

    channel: Channel
    sample_num: int
    threshold: float
    amplitude: float
    message_num: int
    sample_rate: float


@dataclass(frozen=True, slots=True)
class Piece:
    """One channel's block, from a DATA message or a row of a packed block (``source``, row ``index``)."""

    key: tuple[str, int]
    continuity: Continuity
    channel_name: str
    units: str | None
    samples: np.ndarray
    sample_num: int
    sample_rate: float
    message_num: int
    source: np.ndarray | None = None
    index: int = 0


def pieces(message) -> list[Piece]:
    """The channel blocks a message holds (none for a TTL event, which raphe does not use)."""
    if isinstance(message, Received):
        b = message.block
        return [Piece((b.stream, b.channel_num), message.continuity, b.channel_name, message.units, message.samples,
                      b.sample_num, b.sample_rate, b.message_num)]
    if isinstance(message, ReceivedPacked):
        b, samples = message.block, message.samples
        return [Piece((b.stream, num), message.continuity[i], name, message.units, samples[i], b.sample_num,
                      b.sample_rate, b.message_num, samples, i)
                for i, (num, name) in enumerate(zip(b.channel_nums, b.channel_names))]
    return []


class Service:
    """The live pipeline over one subscription.

    Parameters
    ----------
    connect : the rig's (or replay's) data endpoint.
    model : the classifier; its window decides the detector's window.
    detector_settings : threshold, relative, adaptive_k, polarity, refractory_ms (see DetectorConfig).
    posterior : the cell posterior's combination and decision rule.
    outputs : where POSTERIOR messages and spike events go.
    log : receives one JSON object per line: every spike's update, every (re)start, final summaries.
    units, scale : for channels whose header carries no units (Open Ephys sends none).
    keep_history : keep each cell's posterior after every spike (for the demo's figure).
    drain_limit : messages handled per wake-up at most (default 8192; 1 handles them one by one).
    """

    def __init__(self, connect: str, model: Model, detector_settings: dict, posterior: PosteriorConfig,
                 outputs: Outputs, log: RecordLog | None = None, units: str | None = None, scale: float = 1.0,
                 keep_history: bool = False, drain_limit: int = DRAIN_LIMIT):
        self.model = model
        self.detector_config = DetectorConfig(window=model.window, **detector_settings)
        self.posterior = posterior
        self.outputs = outputs
        self.log = log
        self.keep_history = keep_history
        self.drain_limit = drain_limit
        self.channels: dict[tuple[str, int], Channel] = {}
        self.detectors: dict[tuple[str, float], Detector] = {}
        self.timings = StageTimings(STAGES)
        self.spikes = 0
        self._model_info = {"name": model.metadata.get("name", model.path.stem), "variant": model.variant,
                            "sha256": model.checksum}
        self._classes = list(model.classes)
        self._warm_up()
        self.subscriber = Subscriber(connect, units=units, scale=scale, hwm=RECEIVE_HWM)

    def _warm_up(self) -> None:
        """Load the detector kernel and run the interpreter once, so the first spike waits for neither."""
        Detector(1, self.model.window.sample_rate_hz, self.detector_config).process(np.zeros((1, 64), np.float32), 0)
        self.model.predict(np.zeros((1, self.model.n_points), np.float32))
        self.model.novel(np.zeros((1, self.model.n_points), np.float32))

    def close(self) -> None:
        self.subscriber.close()

    def step(self, timeout_ms: int = 50) -> bool:
        """Handle every message waiting (after up to ``timeout_ms`` for the first); False if none came."""
        if not self.subscriber.wait(timeout_ms):
            return False
        started = time.perf_counter()  # from the first message waiting: the stage, not the wait
        batch = self.subscriber.receive_batch(0, self.drain_limit)
        received = time.perf_counter()
        self.timings.add("receive", received - started)
        if not batch:
            return True  # they were malformed or duplicates: counted by the subscriber
        per_channel: dict[tuple[str, int], list[Piece]] = {}
        for message in batch:
            for piece in pieces(message):
                per_channel.setdefault(piece.key, []).append(piece)
        spikes: list[Spike] = []
        windows: list[np.ndarray] = []
        detect_s = 0.0
        # in rounds: a channel's k-th block of the drain is in round k, so its blocks keep their order
        for r in range(max((len(m) for m in per_channel.values()), default=0)):
            t0 = time.perf_counter()
            round_ = [queued[r] for queued in per_channel.values() if r < len(queued)]
            if spikes and any(p.continuity is Continuity.START and p.key in self.channels for p in round_):
                # a cell starts afresh: the spikes of its old acquisition go out first
                detect_s += time.perf_counter() - t0
                self._classify_and_publish(spikes, windows)
                spikes, windows, t0 = [], [], time.perf_counter()
            groups: dict[tuple[int, int], list[tuple[Channel, Piece]]] = {}
            for piece in round_:
                channel = self._channel(piece)
                groups.setdefault((id(channel.detector), len(piece.samples)), []).append((channel, piece))
            for members in groups.values():
                self._detect_group(members, spikes, windows)
            detect_s += time.perf_counter() - t0
        self.timings.add("detect", detect_s)
        self._classify_and_publish(spikes, windows)
        return True

    def _classify_and_publish(self, spikes: list[Spike], windows: list[np.ndarray]) -> None:
        """All windows in one interpreter call; each cell takes its spikes in order, and each update
        tells the cell's state after that spike (cells are independent: their interleaving is free)."""
        if not spikes:
            return
        started = time.perf_counter()
        windows = np.concatenate(windows)
        probabilities = self.model.predict(windows)
        novel = self.model.novel(windows)
        updates = [self._update(s, p, s.channel.cell.add_spike(s.sample_num, p, w, bool(n)), bool(n))
                   for s, p, w, n in zip(spikes, probabilities, windows, novel)]
        classified = time.perf_counter()
        self.timings.add("classify", classified - started)
        for update in updates:
            content = self.outputs.publish(update)
            if self.log is not None:
                self.log.write(b'{"time":' + repr(round(time.time(), 6)).encode() + b',"kind":"spike",' + content[1:])
        self.spikes += len(updates)
        self.timings.add("publish", time.perf_counter() - classified)

    def _detect_group(self, members: list[tuple[Channel, Piece]], spikes: list[Spike],
                      windows: list[np.ndarray]) -> None:
        detector = members[0][0].detector
        source = members[0][1].source
        if source is not None and len(members) == len(source) and all(
                p.source is source and p.index == i for i, (_, p) in enumerate(members)):
            block = source  # a whole packed block, in its own order: no copy
        else:
            block = np.stack([p.samples for _, p in members])
        rows = np.array([c.row for c, _ in members])
        starts = np.array([p.sample_num for _, p in members])
        events = detector.process_rows(block, rows, starts)
        n, total, total_sq, beyond = block_stats(block, self.detector_config)
        length = block.shape[1]
        by_row = {}
        for i, (channel, piece) in enumerate(members):
            channel.cell.samples += length
            channel.checks.add_stats(int(n[i]), float(total[i]), float(total_sq[i]), int(beyond[i]), piece.sample_num,
                                     length)
            by_row[channel.row] = (channel, piece)
        if len(events) == 0:
            return
        for record in events.records:
            channel, piece = by_row[int(record["channel"])]
            spikes.append(Spike(channel, int(record["sample_num"]), float(record["threshold"]),
                                float(record["amplitude"]), piece.message_num, piece.sample_rate))
        for row in np.unique(events.records["channel"]):
            channel = by_row[int(row)][0]
            channel.checks.add_events(events.records["sample_num"][events.records["channel"] == row])
            channel.judge()
        windows.append(events.windows)

    def _channel(self, piece: Piece) -> Channel:
        """The channel of ``piece``, started (or started afresh) when its continuity says so."""
        channel = self.channels.get(piece.key)
        if channel is not None and piece.continuity is not Continuity.START:
            return channel
        stream, channel_num = piece.key
        detector = self.detectors.get((stream, piece.sample_rate))
        if detector is None:
            detector = self.detectors[(stream, piece.sample_rate)] = Detector(0, piece.sample_rate, self.detector_config)
        checks = SignalChecks(piece.units, piece.sample_rate, self.detector_config)
        if channel is not None and channel.detector is detector:
            detector.reset_channels(np.array([channel.row]))
            row = channel.row
        else:
            detector.add_channels(1)
            row = detector.n_channels - 1
        if channel is None:
            cell = Cell(stream, channel_num, piece.channel_name, piece.sample_rate, self.model.classes, self.posterior,
                        keep_history=self.keep_history)
            channel = self.channels[piece.key] = Channel(cell, detector, row, checks)
        else:
            channel.cell.restart(piece.sample_rate)
            channel.detector, channel.row, channel.checks = detector, row, checks
        self._write({"kind": "start", "cell": channel.cell.id, "acquisition": channel.cell.acquisition,
                     "sample_rate": piece.sample_rate, "sample_num": piece.sample_num})
        return channel

    def _update(self, spike: Spike, probabilities: np.ndarray, posterior: np.ndarray, novel: bool) -> SpikeUpdate:
        cell = spike.channel.cell
        decision = cell.decision
        return SpikeUpdate(
            stream=cell.stream, channel_num=cell.channel_num, channel_name=cell.channel_name, cell=cell.id,
            acquisition=cell.acquisition, sample_num=spike.sample_num, source_message_num=spike.message_num,
            sample_rate=spike.sample_rate, amplitude=spike.amplitude, threshold=spike.threshold,
            n_spikes=cell.n_spikes, novel=novel, n_novel=cell.n_novel, classes=self._classes,
            spike_probabilities=probabilities.tolist(), posterior=posterior.tolist(), decision=decision,
            reasons=cell.reasons,
            spikes_to_decision=cell.posterior.spikes_to_decision if decision == cell.posterior.decision else None,
            mean_spike_probability=cell.posterior.mean_spike_probability.tolist(), model=self._model_info)

    def _write(self, record: dict) -> None:
        if self.log is not None:
            self.log.write(orjson.dumps({"time": round(time.time(), 6), **record}, option=orjson.OPT_SERIALIZE_NUMPY))

    def dropped(self, channel: Channel) -> int:
        """Windows of ``channel``'s cell that its detector could not emit (no pre-samples, gap, NaN)."""
        return sum(channel.detector.dropped(channel.row).values())

    def finish(self) -> None:
        """Log every cell's final state."""
        for channel in self.channels.values():
            channel.judge()
            self._write({"kind": "summary", **channel.cell.summary(), "dropped_windows": self.dropped(channel)})

    def summary(self, seconds: float) -> dict:
        """What `raphe serve --json` prints: the cells, the spikes and the stage timings."""
        return {"seconds": seconds, "spikes": self.spikes, "timings": self.timings.summary(),
                "cells": [c.cell.summary() for c in self.channels.values()]}

    def table(self, seconds: float, title: str) -> Table:
        """The live table: one line per cell, the stream's counters in the caption."""
        table = Table(title=title, title_justify="left")
        for column in ("cell", "name", "spikes", "rate Hz", "posterior", "decision", "spikes to decision", "novel",
                       "drops"):
            table.add_column(column, justify="left" if column in ("cell", "name", "posterior", "decision") else "right")
        stats = self.subscriber.stats
        for key in sorted(self.channels):
            channel = self.channels[key]
            channel.judge()
            cell = channel.cell
            posterior = top_class(cell.classes, cell.posterior.posterior)
            decision = cell.decision
            style = "dim" if decision == UNDECIDED else "yellow" if decision == NOT_CLASSIFIABLE else "bold green"
            channel_stats = stats.channels.get(key)
            drops = self.dropped(channel) + (channel_stats.lost_samples if channel_stats else 0)
            table.add_row(cell.id, cell.channel_name, str(cell.n_spikes), f"{cell.rate_hz:.2f}", posterior,
                          f"[{style}]{decision}[/]", str(cell.posterior.spikes_to_decision or "-"), f"{cell.n_novel:,}",
                          f"{drops:,}")
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


