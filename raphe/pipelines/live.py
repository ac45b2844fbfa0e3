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

import gc
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import orjson
from rich.console import Console
from rich import box
from rich.table import Table

from raphe.classifier.runtime.cells import Cell
from raphe.classifier.runtime.firing import MIN_ISIS, Train
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.posterior import NOT_CLASSIFIABLE, UNDECIDED, PosteriorConfig, leanings, top_class
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector
from raphe.detector.plausibility import SignalChecks
from raphe.streamer.lsl import LslOutputs, LslSource
from raphe.streamer.outputs import Outputs, SpikeUpdate
from raphe.streamer.security import Curve
from raphe.streamer.subscriber import Continuity, Received, ReceivedPacked, Subscriber

from .loop import run_loop
from .records import RecordLog
from .timings import StageTimings, timings_table

STAGES = ("receive", "detect", "classify", "publish")
# Messages drained per wake-up at most, and queued by ZeroMQ before it drops: a second of a
# 384-channel probe in 10 ms blocks fits in either.
DRAIN_LIMIT = 8192
RECEIVE_HWM = 100_000
# A channel's block is handled in pieces of at most MAX_PIECE_SAMPLES, and a step handles at most
# STEP_SAMPLES of each channel: a 10 MB block no longer holds the other channels for seconds, and
# a channel of many small blocks is not held back behind it either.
MAX_PIECE_SAMPLES = 16_384
STEP_SAMPLES = 8 * MAX_PIECE_SAMPLES
MAX_CELLS = 4096
# The model is touched at least this often (seconds) between spikes: see Service._keep_warm.
KEEP_WARM_S = 0.04
# How often idle cells are looked for (seconds): often enough for any --forget-after, rarely enough to cost nothing.
FORGET_CHECK_S = 0.25
# Tables that keep every word whole in an 80-column terminal: no vertical rules, no padding.
COMPACT_TABLE = {"box": box.SIMPLE_HEAD, "padding": 0, "pad_edge": False}


@dataclass
class Rows:
    """The channels of one stream at one rate: a detector and the signal checks, row for row."""

    detector: Detector
    checks: SignalChecks

    free: list[int] = field(default_factory=list)

    def add(self, units: str | None) -> int:
        """A row for a new channel: a forgotten channel's, or a new one."""
        if self.free:
            row = self.free.pop()
            self.reset(row, units)
            return row
        self.detector.add_channels(1)
        return self.checks.add_channel(units)

    def reset(self, row: int, units: str | None) -> None:
        self.detector.reset_channels(np.array([row]))
        self.checks.reset_channel(row, units)


@dataclass
class Channel:
    """A served channel: its cell, and the rows (and row) of the detector and checks that feed it."""

    cell: Cell
    rows: Rows
    row: int
    last_seen: float = 0.0

    @property
    def detector(self) -> Detector:
        return self.rows.detector

    def judge(self) -> None:
        """Bring the cell's signal reasons up to date with the checks."""
        self.cell.signal_reasons = self.rows.checks.reasons(self.row)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the channels of a packed block live: their rows, in the block's order."""

    rows: Rows
    row_index: np.ndarray
    by_row: dict[int, Channel]


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


def cut(piece: Piece) -> list[Piece]:
    """``piece`` in pieces of at most ``MAX_PIECE_SAMPLES``, each after the first continuing the one before."""
    n = len(piece.samples)
    if n <= MAX_PIECE_SAMPLES:
        return [piece]
    return [Piece(piece.key, piece.continuity if start == 0 else Continuity.CONTINUOUS, piece.channel_name,
                  piece.units, piece.samples[start:start + MAX_PIECE_SAMPLES], piece.sample_num + start,
                  piece.sample_rate, piece.message_num)
            for start in range(0, n, MAX_PIECE_SAMPLES)]


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
    max_cells : cells kept at most (default 4,096); blocks of further channels are counted and refused.
    forget_after_s : a cell silent this long is summarised (in the log) and forgotten (default: never).
    curve : connect to the rig with CURVE (see ``raphe.streamer.security``).
    keep_warm_s : touch the model at least this often between spikes (default 0.04 s; None: never).
    lsl : also publish every update on Lab Streaming Layer (a ``raphe.streamer.lsl.LslOutputs``).
    source : take the samples from this LSL stream (a ``raphe.streamer.lsl.LslSource``) instead of
        subscribing to ``connect``.
    shard : ``(k, n)``: serve only the channels whose ``channel_num % n == k`` (one of n worker
        processes, see ``raphe.pipelines.shards``); the others are received, counted and left alone.
    """

    def __init__(self, connect: str, model: Model, detector_settings: dict, posterior: PosteriorConfig,
                 outputs: Outputs, log: RecordLog | None = None, units: str | None = None, scale: float = 1.0,
                 keep_history: bool = False, drain_limit: int = DRAIN_LIMIT, max_cells: int = MAX_CELLS,
                 forget_after_s: float | None = None, curve: Curve | None = None,
                 keep_warm_s: float | None = KEEP_WARM_S, lsl: LslOutputs | None = None,
                 source: LslSource | None = None, shard: tuple[int, int] | None = None):
        self.model = model
        self.detector_config = DetectorConfig(window=model.window, **detector_settings)
        self.posterior = posterior
        self.outputs = outputs
        self.lsl = lsl
        self.log = log
        self.keep_history = keep_history
        self.drain_limit = drain_limit
        self.max_cells = max_cells
        self.forget_after_s = forget_after_s
        self.keep_warm_s = keep_warm_s
        self.shard = shard
        self.refused_blocks = 0
        self.forgotten = 0
        self._backlog: dict[tuple[str, int], deque[Piece]] = {}
        self._now = self._forget_checked = time.monotonic()
        self.channels: dict[tuple[str, int], Channel] = {}
        self.streams: dict[tuple[str, float], Rows] = {}
        self._layouts: dict[tuple, Layout] = {}
        self.timings = StageTimings(STAGES)
        self.spikes = 0
        self.last_data_at: float | None = None  # time.monotonic() of the last drain that brought anything
        self._model_info = {"name": model.metadata.get("name", model.path.stem), "variant": model.variant,
                            "sha256": model.checksum}
        self._classes = list(model.classes)
        self._warm_up()
        self.subscriber = source if source is not None else Subscriber(connect, units=units, scale=scale,
                                                                       hwm=RECEIVE_HWM, curve=curve)

    def _warm_up(self) -> None:
        """Load the detector's and the firing model's kernels and run the interpreter once, so the first
        spike waits for none of them (compiling them, on a machine's first run, takes seconds)."""
        Detector(1, self.model.window.sample_rate_hz, self.detector_config).process(np.zeros((1, 64), np.float32), 0)
        firing = self.posterior.firing
        if firing is not None:
            train, columns = Train(), firing.in_classes(self.model.classes)
            for k in range(MIN_ISIS + 1):
                train.spike(0.5 * k, firing, columns)
        self._keep_warm()

    def _keep_warm(self) -> None:
        """One window through the interpreter and the novelty score. Between spikes of slow cells,
        memory the model has not touched for a while can be far slower to reach (measured on this
        project's virtual machine: 0.30 ms a window back to back, 10–13 ms after 0.5 s idle, 0.47 ms
        when touched every 50 ms), so the service touches it at least every ``keep_warm_s``."""
        blank = np.zeros((1, self.model.n_points), np.float32)
        self.model.predict(blank)
        self.model.novel(blank)
        self._warm_at = time.monotonic()

    def close(self) -> None:
        self.subscriber.close()

    def step(self, timeout_ms: int = 50) -> bool:
        """Handle what is waiting (after up to ``timeout_ms`` for the first message); False if nothing was.

        Every message waiting is received; its channel blocks, cut into pieces of at most
        ``MAX_PIECE_SAMPLES``, join their channels' queues, and each queue gives up to
        ``STEP_SAMPLES`` samples (a channel's k-th piece in round k, so each channel keeps its order).
        A huge block thus takes several steps, and the other channels' blocks are handled between them.
        """
        self._forget_idle()
        if self.keep_warm_s is not None and time.monotonic() - self._warm_at > self.keep_warm_s:
            self._keep_warm()
        if not self._backlog and not self.subscriber.wait(timeout_ms):
            return False
        started = time.perf_counter()  # from the first message waiting: the stage, not the wait
        batch = self.subscriber.receive_batch(0, self.drain_limit)
        received = time.perf_counter()
        self.timings.add("receive", received - started)
        self._now = time.monotonic()
        if batch:
            self.last_data_at = self._now
        spikes: list[Spike] = []
        windows: list[np.ndarray] = []
        for message in batch:
            layout = self._layout(message) if isinstance(message, ReceivedPacked) else None
            if layout is not None and not self._backlog and message.samples.shape[1] <= MAX_PIECE_SAMPLES:
                # a packed block of known, continuing channels: one call, no per-channel bookkeeping
                self._detect_rows(layout.rows, message.samples, layout.row_index,
                                  np.full(len(layout.row_index), message.block.sample_num), layout.by_row,
                                  message.block.message_num, message.block.sample_rate, spikes, windows)
                continue
            for piece in pieces(message):
                self._backlog.setdefault(piece.key, deque()).extend(cut(piece))
        self._handle_backlog(spikes, windows)
        self.timings.add("detect", time.perf_counter() - received)
        self._classify_and_publish(spikes, windows)
        return True

    def _handle_backlog(self, spikes: list[Spike], windows: list[np.ndarray]) -> None:
        """Up to ``STEP_SAMPLES`` of each channel's queued pieces through the detector, in rounds."""
        budget = dict.fromkeys(self._backlog, STEP_SAMPLES)
        while True:
            round_ = [queued.popleft() for key, queued in self._backlog.items() if budget.get(key, 0) > 0]
            if not round_:
                break
            for piece in round_:
                budget[piece.key] -= len(piece.samples)
            self._backlog = {key: queued for key, queued in self._backlog.items() if queued}
            if spikes and any(p.continuity is Continuity.START and p.key in self.channels for p in round_):
                # a cell starts afresh: the spikes of its old acquisition go out first
                self._classify_and_publish(spikes, windows)
                spikes.clear()  # in place: the caller classifies what this round adds
                windows.clear()
            groups: dict[tuple[int, int], list[tuple[Channel, Piece]]] = {}
            for piece in round_:
                channel = self._channel(piece)
                if channel is not None:
                    groups.setdefault((id(channel.rows), len(piece.samples)), []).append((channel, piece))
            for members in groups.values():
                self._detect_group(members, spikes, windows)

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
        self._warm_at = time.monotonic()
        self.timings.add("classify", classified - started)
        for update in updates:
            content = self.outputs.publish(update)
            if self.lsl is not None:
                self.lsl.publish(update)
            if self.log is not None:
                self.log.write(b'{"time":' + repr(round(time.time(), 6)).encode() + b',"kind":"spike",' + content[1:])
        self.spikes += len(updates)
        self.timings.add("publish", time.perf_counter() - classified)

    def _detect_group(self, members: list[tuple[Channel, Piece]], spikes: list[Spike],
                      windows: list[np.ndarray]) -> None:
        source = members[0][1].source
        if source is not None and len(members) == len(source) and all(
                p.source is source and p.index == i for i, (_, p) in enumerate(members)):
            block = source  # a whole packed block, in its own order: no copy
        else:
            block = np.stack([p.samples for _, p in members])
        rows = np.array([c.row for c, _ in members])
        starts = np.array([p.sample_num for _, p in members])
        by_row = {c.row: c for c, _ in members}
        message_nums = {c.row: p.message_num for c, p in members}
        self._detect_rows(members[0][0].rows, block, rows, starts, by_row, message_nums, members[0][1].sample_rate,
                          spikes, windows)

    def _detect_rows(self, rows_of: Rows, block: np.ndarray, rows: np.ndarray, starts: np.ndarray,
                     by_row: dict[int, Channel], message_num: int | dict[int, int], sample_rate: float,
                     spikes: list[Spike], windows: list[np.ndarray]) -> None:
        """One detector call for ``block`` (row ``i`` is channel row ``rows[i]``); its spikes and windows
        appended. ``message_num``: the message each row came in (one for all, or per row)."""
        events = rows_of.detector.process_rows(block, rows, starts)
        length = block.shape[1]
        rows_of.checks.add_block(rows_of.detector.row_stats, rows, starts, length)
        for channel in by_row.values():
            if channel.cell.samples == 0:  # its first block: where its recorded seconds count from
                channel.cell.origin = int(starts[np.flatnonzero(rows == channel.row)[0]])
            channel.cell.samples += length
            channel.last_seen = self._now
        if len(events) == 0:
            return
        for record in events.records:
            row = int(record["channel"])
            spikes.append(Spike(by_row[row], int(record["sample_num"]), float(record["threshold"]),
                                float(record["amplitude"]),
                                message_num if isinstance(message_num, int) else message_num[row], sample_rate))
        for row in np.unique(events.records["channel"]):
            rows_of.checks.add_events(int(row), events.records["sample_num"][events.records["channel"] == row])
            by_row[int(row)].judge()
        windows.append(events.windows)

    def _layout(self, message: ReceivedPacked) -> Layout | None:
        """The rows of a packed block whose channels are all known and all continue, at one rate in
        one detector; None when any channel starts (afresh) or lives elsewhere."""
        b = message.block
        key = (b.stream, b.sample_rate, b.channel_nums)
        layout = self._layouts.get(key)
        if layout is None:
            channels = [self.channels.get((b.stream, num)) for num in b.channel_nums]
            if any(c is None for c in channels) or len({id(c.rows) for c in channels}) != 1 \
                    or channels[0].rows.detector.sample_rate != b.sample_rate:
                return None
            layout = self._layouts[key] = Layout(channels[0].rows, np.array([c.row for c in channels]),
                                                 {c.row: c for c in channels})
        if any(c is not Continuity.CONTINUOUS for c in message.continuity):
            return None
        return layout

    def _channel(self, piece: Piece) -> Channel | None:
        """The channel of ``piece``, started (or started afresh) when its continuity says so; None for a
        new channel beyond ``max_cells`` (its blocks are counted in ``refused_blocks``)."""
        channel = self.channels.get(piece.key)
        if channel is not None and piece.continuity is not Continuity.START:
            if piece.continuity is Continuity.GAP:
                channel.cell.train.gap(piece.sample_num / piece.sample_rate)
            return channel
        if self.shard is not None and piece.key[1] % self.shard[1] != self.shard[0]:
            return None  # another worker's channel
        if channel is None and len(self.channels) >= self.max_cells:
            self.refused_blocks += 1
            return None
        self._layouts.clear()  # a channel (re)starts: the known packed layouts may no longer hold
        stream, channel_num = piece.key
        rows = self.streams.get((stream, piece.sample_rate))
        if rows is None:
            rows = self.streams[(stream, piece.sample_rate)] = Rows(
                Detector(0, piece.sample_rate, self.detector_config), SignalChecks(piece.sample_rate, self.detector_config))
        if channel is not None and channel.rows is rows:
            rows.reset(channel.row, piece.units)
            row = channel.row
        else:
            row = rows.add(piece.units)
        if channel is None:
            cell = Cell(stream, channel_num, piece.channel_name, piece.sample_rate, self.model.classes, self.posterior,
                        keep_history=self.keep_history)
            channel = self.channels[piece.key] = Channel(cell, rows, row)
        else:
            channel.cell.restart(piece.sample_rate)
            channel.rows, channel.row = rows, row
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
            mean_spike_probability=cell.posterior.mean_spike_probability.tolist(), model=self._model_info,
            evidence=cell.posterior.config.evidence, waveform_posterior=cell.posterior.parts["waveform"].tolist(),
            firing_posterior=cell.posterior.parts["firing"].tolist(), n_isi=cell.train.n_isi,
            seconds_to_decision=cell.seconds_to_decision)

    def _write(self, record: dict) -> None:
        if self.log is not None:
            self.log.write(orjson.dumps({"time": round(time.time(), 6), **record}, option=orjson.OPT_SERIALIZE_NUMPY))

    def dropped(self, channel: Channel) -> int:
        """Windows of ``channel``'s cell that its detector could not emit (no pre-samples, gap, NaN)."""
        return sum(channel.detector.dropped(channel.row).values())

    def finish(self) -> None:
        """Handle what is still queued (the rest of a huge block: accepted, so never dropped), then
        log every cell's final state and the stream's counters."""
        while self._backlog:
            spikes: list[Spike] = []
            windows: list[np.ndarray] = []
            self._handle_backlog(spikes, windows)
            self._classify_and_publish(spikes, windows)
        for channel in self.channels.values():
            self._write_summary(channel)
        self._write({"kind": "counters", **self.counters()})

    def _write_summary(self, channel: Channel, **extra) -> None:
        self._write({"kind": "summary", **self._cell_record(channel), **extra})

    def _cell_record(self, channel: Channel) -> dict:
        """A cell's summary with what it lost: windows the detector could not emit, samples and gaps on the wire."""
        channel.judge()
        wire = self.subscriber.stats.channels.get((channel.cell.stream, channel.cell.channel_num))
        return {**channel.cell.summary(), "dropped_windows": self.dropped(channel),
                "lost_samples": wire.lost_samples if wire else 0, "gaps": wire.gaps if wire else 0}

    def _forget_idle(self) -> None:
        """Cells that have sent nothing for ``forget_after_s``: their summaries logged, their memory freed."""
        now = time.monotonic()
        if self.forget_after_s is None or now - self._forget_checked < FORGET_CHECK_S:
            return
        self._forget_checked = now
        # a channel with pieces still queued is not idle, however long ago its block arrived
        idle = [key for key, c in self.channels.items()
                if now - c.last_seen > self.forget_after_s and key not in self._backlog]
        for key in idle:
            channel = self.channels.pop(key)
            self._write_summary(channel, forgotten_after_idle_s=self.forget_after_s)
            if self.lsl is not None:
                self.lsl.forget(channel.cell.id)
            channel.rows.free.append(channel.row)
            self.forgotten += 1
        if idle:
            self._layouts.clear()

    def counters(self) -> dict:
        """The stream's counters, as `raphe listen` gives them, and what the service itself refused or dropped."""
        s = self.subscriber.stats
        return {"messages": s.messages, "data_messages": s.data_messages, "lost_messages": s.lost_messages,
                "lost_samples": sum(c.lost_samples for c in s.channels.values()), "duplicates": s.duplicates,
                "acquisitions": s.acquisitions, "malformed": dict(s.malformed), "events": s.events,
                "outputs_dropped": dict(self.outputs.dropped), "cells": len(self.channels),
                "refused_blocks": self.refused_blocks, "forgotten_cells": self.forgotten}

    def summary(self, seconds: float) -> dict:
        """What `raphe serve --json` prints: the cells, the spikes and the stage timings."""
        return {"seconds": seconds, "spikes": self.spikes, "counters": self.counters(), "timings": self.timings.summary(),
                "cells": [self._cell_record(c) for c in self.channels.values()]}

    def table_rows(self) -> list[list[str]]:
        """The live table's rows, one per cell, in (stream, channel) order (plain text and markup)."""
        stats = self.subscriber.stats
        rows = []
        for key in sorted(self.channels):
            channel = self.channels[key]
            channel.judge()
            cell = channel.cell
            decision = cell.decision
            style = "dim" if decision == UNDECIDED else "yellow" if decision == NOT_CLASSIFIABLE else "bold green"
            channel_stats = stats.channels.get(key)
            drops = self.dropped(channel) + (channel_stats.lost_samples if channel_stats else 0)
            rows.append([cell.id, cell.channel_name, str(cell.n_spikes), f"{cell.rate_hz:.1f}",
                         top_class(cell.classes, cell.posterior.posterior), leanings(cell.classes, cell.posterior.parts),
                         f"[{style}]{decision}[/]", str(cell.posterior.spikes_to_decision or "-"), f"{cell.n_novel:,}",
                         f"{drops:,}"])
        return rows

    def table(self, seconds: float, title: str) -> Table:
        """The live table: one line per cell, the stream's counters in the caption."""
        return cells_table(self.table_rows(), self.counters(), self.spikes, seconds, title, self.posterior.evidence)


def cells_table(rows: list[list[str]], counters: dict, spikes: int, seconds: float, title: str,
                evidence: str) -> Table:
    """The live table from its rows (``Service.table_rows``) and the counters (``Service.counters``):
    one process's, or those of all the workers of a sharded service."""
    table = Table(title=title, title_justify="left", **COMPACT_TABLE)
    for column in ("cell", "name", "spikes", "Hz", "posterior", "w/f", "decision", "at", "novel", "drops"):
        table.add_column(column, no_wrap=True,
                         justify="left" if column in ("cell", "name", "posterior", "w/f", "decision") else "right")
    for row in rows:
        table.add_row(*row)
    c = counters
    malformed = ", ".join(f"{k} {n}" for k, n in sorted(c["malformed"].items())) or "0"
    dropped = sum(c["outputs_dropped"].values())
    table.caption = (f"messages {c['messages']:,} · lost {c['lost_messages']:,} · malformed {malformed} · "
                     f"acquisitions {c['acquisitions']} · spikes {spikes:,} · outputs dropped {dropped:,}"
                     + (f" · refused blocks {c['refused_blocks']:,}" if c["refused_blocks"] else "")
                     + f" · {seconds:.1f} s · at: spikes to the decision · w/f: where the shapes and the "
                     f"firing point · deciding: {evidence}")
    table.caption_justify = "left"
    return table


def settle_collector() -> None:
    """What exists when a service starts lives as long as it: Python's collector need not rescan it,
    and a drain's thousands of short-lived objects need not trigger a collection each (measured on
    384 channels: p50 latency 12 -> 8 ms)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def serve(service: Service, *, duration_s: float | None = None, idle_s: float | None = None,
          stop: threading.Event | None = None, console: Console | None = None, title: str = "raphe serve",
          web=None) -> float:
    """Serve until ``duration_s``, ``idle_s`` without data, ``stop`` or Ctrl-C; live table on ``console``.

    ``web``: the live browser view (a ``raphe.pipelines.live_view.LiveView``), ticked whenever the
    table is redrawn and given the final state on exit. Returns the seconds served. Every cell's
    summary is logged, and the final table and the stage timings are printed, on exit.
    """
    console = console or Console()

    def view(seconds: float) -> Table:
        if web is not None:
            web.tick(seconds)
        return service.table(seconds, title)

    seconds = run_loop(service.step, view, console=console, duration_s=duration_s, idle_s=idle_s, stop=stop)
    service.finish()
    if web is not None:
        web.tick(seconds, final=True)
    console.print(service.table(seconds, title))
    console.print(timings_table(service.timings))
    return seconds


