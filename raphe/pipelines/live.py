"""The live path: subscribe to a rig (or a replay), detect, classify, publish, in batches.

Each wake-up drains every message waiting (``Subscriber.receive_batch``). The blocks of one stream
that share a sample rate, a start and a length go through one call of the channel bank (every
channel in its own row of one detector, ``raphe.pipelines.bank``), in rounds so that each channel's
blocks keep their order; all windows completed by the drain are scored for novelty and classified
in one interpreter call; then each cell takes its spikes in order, and each update goes to the
sinks: a POSTERIOR message and a spike event (serialized once), the log (reusing those bytes) and
LSL. A cell thus ends exactly as it would one message at a time, and as `raphe classify` ends it.
The service schedules and wires; what a cell is lives in ``classifier.runtime.cells``, what leaves
raphe in ``raphe.outputs``. Per-stage timings are kept per drain.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from rich.table import Table

from raphe.classifier.runtime.cells import Cell, CellState
from raphe.classifier.runtime.firing import MIN_ISIS
from raphe.classifier.runtime.cascade import Cascade
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.serving import for_width
from raphe.classifier.runtime.posterior import PosteriorConfig
from raphe.detector.config import DetectorConfig
from raphe.outputs.log import record, spike_record
from raphe.outputs.tables import cells_table
from raphe.outputs.update import SpikeUpdate
from raphe.outputs.wire import serialized
from raphe.streamer.subscriber import Continuity, ReceivedPacked

from . import bank
from .bank import Channel, Rows
from .pieces import MAX_PIECE_SAMPLES, Piece, cut, pieces
from .timings import StageTimings
from .wiring import ServeOptions, Sinks

# "classify" is the sum of the three after it: the interpreter, the novelty score, and the cells
# (posterior, firing, signal verdicts, the cell record each update carries)
STAGES = ("receive", "detect", "classify", "interpreter", "novelty", "cells", "publish")
# A step handles at most STEP_SAMPLES of each channel: a channel of many small blocks is not held
# back behind a huge one either.
STEP_SAMPLES = 8 * MAX_PIECE_SAMPLES
# How often idle cells are looked for (seconds): often enough for any --forget-after, rarely enough to cost nothing.
FORGET_CHECK_S = 0.25


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the channels of a packed block live: their rows, in the block's order."""

    rows: Rows
    row_index: np.ndarray
    channels: list[Channel]


@dataclass(frozen=True, slots=True)
class Spike:
    """A window the detector completed, waiting to be classified: whose, where, and which message."""

    channel: Channel
    sample_num: int
    threshold: float
    amplitude: float
    message_num: int
    sample_rate: float


class Service:
    """The live pipeline over one source of samples.

    Parameters
    ----------
    source : a ``Subscriber`` (see :func:`subscribe`) or a ``raphe.streamer.lsl.LslSource``; closed by ``close()``.
    model : the classifier; its window decides the detector's window.
    posterior : the cell posterior's combination and decision rule.
    sinks : where every update goes (:class:`Sinks`).
    options : how it runs (:class:`ServeOptions`).
    """

    def __init__(self, source, model: Model, posterior: PosteriorConfig, sinks: Sinks,
                 options: ServeOptions = ServeOptions(), wide_model: Cascade | None = None):
        self.model = model
        self.wide_model = wide_model
        self._stream_models: dict[str, Model] = {}
        # With a wide model, a stream's width is known once its sample counter moves past its first
        # block (every channel of a block comes before the next block) or at once for a packed
        # block; until then its spikes wait, in order, with their windows.
        self._first_sample: dict[str, int] = {}
        self._settled: set[str] = set()
        self._waiting: list[tuple[Spike, np.ndarray]] = []
        self.detector_config = DetectorConfig(window=model.window, **options.detector_settings)
        self.posterior = posterior
        self.sinks = sinks
        self.options = options
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
        self._model_info = {id(m): m.identity for m in (model, wide_model) if m is not None}
        self._warm_up()
        self.subscriber = source

    def _warm_up(self) -> None:
        """Load the kernels of the detector and the signal checks, a cell's (its firing evidence and its
        posterior), and run the interpreter once (and a cascade's rule), so the first spike waits for
        none of them (compiling them, on a machine's first run, takes seconds)."""
        scratch_rows = bank.new_rows(self.model.window.sample_rate_hz, self.detector_config, ["pA"])
        bank.feed(scratch_rows, np.zeros((1, 64), np.float32), np.array([0]), 0, [None])  # detector and checks
        scratch = Cell("warm-up", 0, "", self.model.window.sample_rate_hz, self.model.classes, self.posterior)
        classes = len(self.model.classes)
        even, blank = np.full(classes, 1.0 / classes, np.float32), np.zeros(self.model.n_points, np.float32)
        for k in range(MIN_ISIS + 2):  # past MIN_ISIS intervals, so the firing model speaks
            scratch.add_spike(int(k * scratch.sample_rate / 2), even, blank)
        self._keep_warm()

    def _keep_warm(self) -> None:
        """One window through the interpreter and the novelty score. Between spikes of slow cells,
        memory the model has not touched for a while can be far slower to reach (measured on this
        project's virtual machine: 0.30 ms a window back to back, 10–13 ms after 0.5 s idle, 0.47 ms
        when touched every 50 ms), so the service touches it at least every ``keep_warm_s``."""
        blank = np.zeros((1, self.model.n_points), np.float32)
        for model in {id(m): m for m in (self.model, *self._stream_models.values())}.values():
            model.warm(blank)
            model.novel(blank)
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
        keep_warm_s = self.options.keep_warm_s
        if keep_warm_s is not None and time.monotonic() - self._warm_at > keep_warm_s:
            self._keep_warm()
        if not self._backlog and not self.subscriber.wait(timeout_ms):
            return False
        started = time.perf_counter()  # from the first message waiting: the stage, not the wait
        batch = self.subscriber.receive_batch(0, self.options.drain_limit)
        received = time.perf_counter()
        self.timings.add("receive", received - started)
        self._now = time.monotonic()
        if batch:
            self.last_data_at = self._now
        spikes: list[Spike] = []
        windows: list[np.ndarray] = []
        for message in batch:
            self._note_width(message)
            layout = self._layout(message) if isinstance(message, ReceivedPacked) else None
            if layout is not None and not self._backlog and message.samples.shape[1] <= MAX_PIECE_SAMPLES:
                # a packed block of known, continuing channels: one call, no per-channel bookkeeping
                self._detect(layout.rows, message.samples, layout.row_index, message.block.sample_num,
                             layout.channels, message.block.message_num, message.block.sample_rate, spikes, windows)
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
            if (spikes or self._waiting) and any(p.continuity is Continuity.START and p.key in self.channels
                                                 for p in round_):
                # a cell starts afresh: the spikes of its old acquisition go out first
                self._classify_and_publish(spikes, windows, settle=True)
                spikes.clear()  # in place: the caller classifies what this round adds
                windows.clear()
            groups: dict[tuple[int, int, int], list[tuple[Channel, Piece]]] = {}
            for piece in round_:
                channel = self._channel(piece)
                if channel is not None:
                    groups.setdefault((id(channel.rows), piece.sample_num, len(piece.samples)),
                                      []).append((channel, piece))
            for members in groups.values():
                self._detect_group(members, spikes, windows)

    def _note_width(self, message) -> None:
        """Whether ``message`` settles its stream's width (see ``_stream_model``)."""
        stream = message.block.stream
        if self.wide_model is None or stream in self._settled:
            return
        first = self._first_sample.setdefault(stream, message.block.sample_num)
        if isinstance(message, ReceivedPacked) or message.block.sample_num != first:
            self._settled.add(stream)

    def _classify_and_publish(self, spikes: list[Spike], windows: list[np.ndarray], settle: bool = False) -> None:
        """All windows in one interpreter call; each cell takes its spikes in order, and each update
        tells the cell's state after that spike (cells are independent: their interleaving is free).
        With a wide model, the spikes of a stream whose width is not yet known wait for a later call
        (``settle``: it is known now, at the end of the samples)."""
        if self.wide_model is not None:
            spikes, windows = self._of_known_width(spikes, windows, settle)
        if not spikes:
            return
        started = time.perf_counter()
        windows = np.concatenate(windows)
        models = [self._stream_model(s.channel.cell.stream) for s in spikes]
        by_model = {id(m): m for m in models}
        if len(by_model) == 1:
            probabilities = models[0].predict(windows)
        else:
            probabilities = np.empty((len(windows), len(self.model.classes)), np.float32)
            for key, model in by_model.items():
                rows = np.array([id(m) == key for m in models])
                probabilities[rows] = model.predict(windows[rows])
        predicted = time.perf_counter()
        novel = self.model.novel(windows)  # a student carries its teacher's novelty summary, a cascade its ensemble's
        scored = time.perf_counter()
        updates = []
        for s, p, w, n, m in zip(spikes, probabilities, windows, novel, models):
            cell = s.channel.cell
            cell.add_spike(s.sample_num, p, w, bool(n))
            updates.append(SpikeUpdate(cell.state(reached=False), s.sample_num, s.message_num, s.sample_rate, s.amplitude,
                                       s.threshold, bool(n), p, self._model_info[id(m)]))
        classified = time.perf_counter()
        self._warm_at = time.monotonic()
        # the classify stage and its parts, so that a spike's cost beyond the interpreter shows
        self.timings.add("classify", classified - started)
        self.timings.add("interpreter", predicted - started)
        self.timings.add("novelty", scored - predicted)
        self.timings.add("cells", classified - scored)
        sinks = self.sinks
        for update in updates:
            content, event = serialized(update)
            sinks.wire.publish_serialized(content, event)
            if sinks.lsl is not None:
                sinks.lsl.publish(update)
            if sinks.log is not None:
                sinks.log.write(spike_record(content))
        self.spikes += len(updates)
        self.timings.add("publish", time.perf_counter() - classified)

    def _of_known_width(self, spikes: list[Spike], windows: list[np.ndarray],
                        settle: bool) -> tuple[list[Spike], list[np.ndarray]]:
        """The spikes (and windows) of streams whose width is known, those that waited first; the
        others wait. ``settle``: every stream's width is known now."""
        if settle:
            self._settled.update(s.channel.cell.stream for s, _ in self._waiting)
            self._settled.update(s.channel.cell.stream for s in spikes)
        if not self._waiting and all(s.channel.cell.stream in self._settled for s in spikes):
            return spikes, windows
        queued = self._waiting + list(zip(spikes, (w for part in windows for w in part)))
        ready = [(s, w) for s, w in queued if s.channel.cell.stream in self._settled]
        self._waiting = [(s, w) for s, w in queued if s.channel.cell.stream not in self._settled]
        return [s for s, _ in ready], [np.array([w for _, w in ready], np.float32)] if ready else []

    def _stream_model(self, stream: str) -> Model:
        """The model of ``stream``, chosen at its first classified spike: the service's own, or, where
        the service has a ``wide_model``, that one for a stream of more than ``options.wide_channels``
        channels (every channel received on it, whichever worker serves it; its spikes wait until its
        width is known, see ``_note_width``)."""
        model = self._stream_models.get(stream)
        if model is None:
            width = sum(1 for key in self.subscriber.stats.channels if key[0] == stream)
            model = for_width(width, self.model, self.wide_model, self.options.wide_channels)
            if model is not self.model:
                self._write("model", {"stream": stream, "channels": width, "model": self._model_info[id(model)]})
            self._stream_models[stream] = model
        return model

    def _detect_group(self, members: list[tuple[Channel, Piece]], spikes: list[Spike],
                      windows: list[np.ndarray]) -> None:
        source = members[0][1].source
        if source is not None and len(members) == len(source) and all(
                p.source is source and p.index == i for i, (_, p) in enumerate(members)):
            block = source  # a whole packed block, in its own order: no copy
        else:
            block = np.stack([p.samples for _, p in members])
        channels = [c for c, _ in members]
        first = members[0][1]
        message_nums = [p.message_num for _, p in members]
        self._detect(channels[0].rows, block, np.array([c.row for c in channels]), first.sample_num, channels,
                     message_nums, first.sample_rate, spikes, windows)

    def _detect(self, rows: Rows, block: np.ndarray, row_index: np.ndarray, start: int, channels: list[Channel],
                message_num: int | list[int], sample_rate: float, spikes: list[Spike],
                windows: list[np.ndarray]) -> None:
        """One call of the bank for ``block`` (row ``i`` is ``channels[i]``, at detector row
        ``row_index[i]``), its spikes and windows appended. ``message_num``: the message each row
        came in (one for all, or per row)."""
        events = bank.feed(rows, block, row_index, start, [c.cell for c in channels])
        for channel in channels:
            channel.last_seen = self._now
        if len(events) == 0:
            return
        by_row = {int(r): i for i, r in enumerate(row_index)}
        for event in events.records:
            i = by_row[int(event["channel"])]
            spikes.append(Spike(channels[i], int(event["sample_num"]), float(event["threshold"]),
                                float(event["amplitude"]),
                                message_num if isinstance(message_num, int) else message_num[i], sample_rate))
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
            layout = self._layouts[key] = Layout(channels[0].rows, np.array([c.row for c in channels]), channels)
        if any(c is not Continuity.CONTINUOUS for c in message.continuity):
            return None
        return layout

    def _channel(self, piece: Piece) -> Channel | None:
        """The channel of ``piece``, started (or started afresh) when its continuity says so; None for a
        new channel beyond ``max_cells`` (its blocks are counted in ``refused_blocks``)."""
        channel = self.channels.get(piece.key)
        if channel is not None and piece.continuity is not Continuity.START:
            return channel
        shard = self.options.shard
        if shard is not None and piece.key[1] % shard[1] != shard[0]:
            return None  # another worker's channel
        if channel is None and len(self.channels) >= self.options.max_cells:
            self.refused_blocks += 1
            return None
        self._layouts.clear()  # a channel (re)starts: the known packed layouts may no longer hold
        stream, channel_num = piece.key
        rows = self.streams.get((stream, piece.sample_rate))
        if rows is None:
            rows = self.streams[(stream, piece.sample_rate)] = bank.new_rows(piece.sample_rate, self.detector_config)
        if channel is not None and channel.rows is rows:
            rows.reset(channel.row, piece.units)
            row = channel.row
        else:
            if channel is not None:  # a new rate: its row at the old one is free for another channel
                self._free(channel)
            row = rows.add(piece.units)
        if channel is None:
            cell = Cell(stream, channel_num, piece.channel_name, piece.sample_rate, self.model.classes, self.posterior,
                        keep_history=self.options.keep_history)
            channel = self.channels[piece.key] = Channel(cell, rows, row)
        else:
            channel.cell.restart(piece.sample_rate)
            channel.rows, channel.row = rows, row
        if self.sinks.lsl is not None:  # before any spike of it is classified: no publish delays its stamps
            self.sinks.lsl.anchor(stream, piece.sample_num + len(piece.samples), channel.cell.acquisition > 1)
        self._write("start", {"cell": channel.cell.id, "acquisition": channel.cell.acquisition,
                              "sample_rate": piece.sample_rate, "sample_num": piece.sample_num})
        return channel

    def _write(self, kind: str, fields: dict) -> None:
        if self.sinks.log is not None:
            self.sinks.log.write(record(kind, fields))

    def finish(self) -> None:
        """Handle what is still queued (the rest of a huge block: accepted, so never dropped), then
        log every cell's final state and the stream's counters."""
        while self._backlog:
            spikes: list[Spike] = []
            windows: list[np.ndarray] = []
            self._handle_backlog(spikes, windows)
            self._classify_and_publish(spikes, windows)
        self._classify_and_publish([], [], settle=True)
        for channel in self.channels.values():
            self._write("summary", self._cell_record(channel))
        self._write("counters", self.counters())

    def _final_state(self, channel: Channel) -> CellState:
        """The cell's state at the end of the samples it has seen: the checks' last verdict in force."""
        cell = channel.cell
        if cell.end is not None:
            bank.conclude(channel.rows, [channel.row], [cell], cell.end)
        return cell.state(final=True)

    def _cell_record(self, channel: Channel, final: bool = True) -> dict:
        """A cell's state (final: at the end of its samples) with what it lost: windows the detector
        could not emit, samples and gaps on the wire."""
        wire = self.subscriber.stats.channels.get(channel.cell.channel_key)
        state = self._final_state(channel) if final else channel.cell.state()
        return {**state.as_dict(), "dropped_windows": channel.rows.dropped(channel.row),
                "lost_samples": wire.lost_samples if wire else 0, "gaps": wire.gaps if wire else 0}

    def cell_records(self, final: bool = False) -> list[dict]:
        """Every cell's record (see ``_cell_record``), in (stream, channel) order."""
        return [self._cell_record(self.channels[k], final) for k in sorted(self.channels)]

    def _forget_idle(self) -> None:
        """Cells that have sent nothing for ``forget_after_s``: their summaries logged, their memory freed."""
        now = time.monotonic()
        forget_after_s = self.options.forget_after_s
        if forget_after_s is None or now - self._forget_checked < FORGET_CHECK_S:
            return
        self._forget_checked = now
        # a channel with pieces still queued is not idle, however long ago its block arrived
        idle = [key for key, c in self.channels.items() if now - c.last_seen > forget_after_s and key not in self._backlog]
        if idle and self._waiting:
            self._classify_and_publish([], [], settle=True)  # no spike taken waits for a forgotten cell
        for key in idle:
            channel = self.channels.pop(key)
            self._write("summary", {**self._cell_record(channel), "forgotten_after_idle_s": forget_after_s})
            if self.sinks.lsl is not None:
                self.sinks.lsl.forget(channel.cell.id)
            self._free(channel)
            self.forgotten += 1
        if idle:
            self._layouts.clear()
            served = {stream for stream, _ in self.channels}
            for stream in {stream for stream, _ in idle} - served:
                self.subscriber.forget_stream(stream)
                self._stream_models.pop(stream, None)
                self._first_sample.pop(stream, None)
                self._settled.discard(stream)

    def _free(self, channel: Channel) -> None:
        """``channel``'s row is free for another channel; rows of a stream at a rate no channel uses
        any more go, so a stream that keeps changing its rate holds at most its channels' rows."""
        rows = channel.rows
        rows.free.append(channel.row)
        if len(rows.free) == rows.detector.n_channels:
            self.streams = {key: r for key, r in self.streams.items() if r is not rows}

    def counters(self) -> dict:
        """The stream's counters, as `raphe listen` gives them, and what the service itself refused or dropped."""
        s = self.subscriber.stats
        counters = {**s.counters(), "outputs_dropped": dict(self.sinks.wire.dropped),
                    "outputs_dropped_by": {output: dict(by) for output, by in self.sinks.wire.dropped_by.items()},
                    "cells": len(self.channels),
                    "refused_blocks": self.refused_blocks, "forgotten_cells": self.forgotten}
        cascade = next((m for m in (self.model, self.wide_model) if isinstance(m, Cascade)), None)
        if cascade is not None:
            counters["cascade"] = {"windows": cascade.windows, "handed_on": cascade.handed_on}
        return counters

    def summary(self, seconds: float) -> dict:
        """What `raphe serve --json` prints: the cells, the spikes and the stage timings."""
        return {"seconds": seconds, "spikes": self.spikes, "counters": self.counters(), "timings": self.timings.summary(),
                "cells": self.cell_records(final=True)}

    def cells(self) -> list[tuple[Cell, int]]:
        """Every cell in (stream, channel) order, with the windows and samples it lost."""
        stats = self.subscriber.stats.channels
        found = []
        for key in sorted(self.channels):
            channel = self.channels[key]
            wire = stats.get(key)
            found.append((channel.cell, channel.rows.dropped(channel.row) + (wire.lost_samples if wire else 0)))
        return found

    def table(self, seconds: float, title: str) -> Table:
        """The live table: one line per cell, the stream's counters in the caption."""
        states = [(cell.state(), drops) for cell, drops in self.cells()]
        return cells_table(states, self.counters(), self.spikes, seconds, title, self.posterior.evidence)
