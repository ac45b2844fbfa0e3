"""`raphe serve --workers N`: one live stream served by N worker processes, each owning a share of
the channels (``channel_num % N``), and a coordinator that publishes, logs and shows for all.

Every worker subscribes to the rig itself (a SUB socket sees every message), decodes each header,
and detects and classifies only its own channels; its cells end exactly as in one process, because
a cell's spikes never meet another cell's. Each classified spike goes to the coordinator already
serialized (a PUSH socket on loopback, never dropping); the coordinator numbers and publishes the
POSTERIOR messages and spike events on the one pair of output sockets, writes the one log, and
draws one table from the workers' rows. Stopping (Ctrl-C, SIGTERM, SIGHUP, ``--duration``,
``--idle``) reaches every worker, which finishes its cells and sends its summary before it exits.

The coordinator also supervises: a worker that dies (killed, crashed) leaves its channels unserved,
so the coordinator, which looks at every worker between two of its steps (50 ms), says so in one
line, stops the others, which send their summaries, and ends with the summary it has and exit code 1.

What one process does not have to do twice is done N times here: every worker receives and
decodes every message. Sharding pays where detection and classification, not receiving, limit.
"""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import signal
import sys
import threading
import time
from dataclasses import dataclass

import orjson
import zmq
from rich.console import Console, Group
from rich.text import Text

from raphe.classifier.runtime.cells import CellState
from raphe.classifier.runtime.serving import load
from raphe.core.errors import RapheError
from raphe.outputs.log import RecordLog
from raphe.outputs.tables import cells_table, timings_table
from raphe.outputs.wire import Outputs
from raphe.streamer.security import Curve
from raphe.streamer.subscriber import StreamStats

from .live import Service
from .loop import run_loop, settle_collector
from .wiring import ServeOptions, Sinks, subscribe

# How long the coordinator waits for the workers' summaries once they have been told to stop.
FINISH_S = 60.0
SPIKE, RECORD, STATUS, FINAL, FAILED, READY = b"S", b"L", b"T", b"F", b"X", b"R"
# How long a worker found exited may take to deliver the summary it sent before it went.
GRACE_S = 0.5
# How long the workers may take to start (spawn, imports, the model, the kernels' warm-up).
START_S = 120.0


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build its service (plain values: it is spawned)."""

    connect: str
    model: str
    threshold: float | None
    min_spikes: int
    evidence: str | None
    detector_settings: dict
    units: str | None
    scale: float
    max_cells: int
    forget_after_s: float | None
    curve: Curve | None
    duration_s: float | None
    idle_s: float | None
    logging: bool
    collector: str = ""
    shard: tuple[int, int] = (0, 1)
    wide: str | None = None  # the model of wide streams (see Service), if any
    threads: int = 1  # interpreter threads


class Forwarder:
    """A worker's wire and log, in one (it meets ``raphe.outputs.update``'s ``Publishing`` and
    ``RecordWriting``): everything goes to the coordinator on a PUSH socket."""

    def __init__(self, endpoint: str, worker: int):
        self._context = zmq.Context()
        self._push = self._context.socket(zmq.PUSH)
        self._push.setsockopt(zmq.SNDHWM, 0)  # never drop: the coordinator reads as fast as it publishes
        self._push.setsockopt(zmq.LINGER, -1)  # and everything sent reaches it before the worker exits
        self._push.connect(endpoint)
        self.worker = str(worker).encode()
        self.dropped = {"posterior": 0, "events": 0}  # the coordinator's sockets drop, and count
        self.dropped_by: dict[str, dict[str, int]] = {"posterior": {}, "events": {}}

    def publish_serialized(self, content: bytes, event: bytes) -> None:
        self._push.send_multipart([SPIKE, self.worker, content, event])

    def write(self, record: bytes) -> None:
        self._push.send_multipart([RECORD, self.worker, record])

    def send(self, kind: bytes, payload: dict) -> None:
        self._push.send_multipart([kind, self.worker, orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)])

    def close(self) -> None:
        self._push.close()
        self._context.term()


def run_worker(spec: WorkerSpec) -> None:
    """One worker: its share of the channels, served until told to stop, then its summary sent."""
    forwarder = Forwarder(spec.collector, spec.shard[0])
    try:
        model = load(spec.model, spec.threads)
        posterior = model.posterior_config(spec.threshold, spec.min_spikes, spec.evidence)
        options = ServeOptions(spec.detector_settings, max_cells=spec.max_cells, forget_after_s=spec.forget_after_s,
                               shard=spec.shard)
        service = Service(subscribe(spec.connect, spec.units, spec.scale, spec.curve), model, posterior,
                          Sinks(forwarder, forwarder if spec.logging else None), options,
                          None if spec.wide is None else load(spec.wide, spec.threads, model))
    except RapheError as exc:
        forwarder.send(FAILED, {"error": str(exc)})
        forwarder.close()
        return
    settle_collector()
    forwarder.send(READY, {})

    def status(seconds: float) -> Text:
        forwarder.send(STATUS, {"cells": service.cell_records(), "counters": service.counters(), "spikes": service.spikes})
        return Text("")

    try:
        seconds = run_loop(service.step, status, console=Console(file=io.StringIO()), duration_s=spec.duration_s,
                           idle_s=spec.idle_s)
        service.finish()
        forwarder.send(FINAL, service.summary(seconds))
    finally:
        service.close()
        forwarder.close()


class Coordinator:
    """The workers' results as one service's: publishing, logging, the table, the summary."""

    def __init__(self, n: int, outputs: Outputs, log: RecordLog | None, evidence: str, title: str):
        self.n, self.outputs, self.log, self.evidence, self.title = n, outputs, log, evidence, title
        self._context = zmq.Context()
        self._pull = self._context.socket(zmq.PULL)
        self._pull.setsockopt(zmq.RCVHWM, 0)
        self._pull.bind("tcp://127.0.0.1:*")
        self.endpoint = self._pull.getsockopt_string(zmq.LAST_ENDPOINT)
        self.status: dict[int, dict] = {}
        self.finals: dict[int, dict] = {}
        self.failures: list[str] = []
        self.lost: dict[int, str] = {}  # workers that died before their summary: what ended them
        self.ready: set[int] = set()
        self.spikes = 0
        self.stop = threading.Event()

    @property
    def done(self) -> bool:
        return len(self.finals) + len(self.failures) + len(self.lost) >= self.n

    def supervise(self, workers: list) -> None:
        """Note every worker that has died without its summary (after taking what it sent before it
        went), say so in one line, and stop the service."""
        for k, worker in enumerate(workers):
            if k in self.finals or k in self.lost or worker.is_alive():
                continue
            grace = time.monotonic() + GRACE_S
            while k not in self.finals and time.monotonic() < grace:
                self.step(50)
            if k in self.finals:
                continue
            self.lost[k] = ended_by(worker.exitcode)
            print(f"raphe serve: worker {k} (pid {worker.pid}) died ({self.lost[k]}); its channels (channel_num % "
                  f"{self.n} == {k}) are no longer served: stopping the others", file=sys.stderr, flush=True)
            self.stop.set()

    def step(self, timeout_ms: int) -> bool:
        """Publish, log or keep what the workers sent; True if anything came."""
        if not self._pull.poll(timeout_ms):
            return False
        while True:
            try:
                frames = self._pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            kind, worker = frames[0], int(frames[1])
            if kind == SPIKE:
                self.outputs.publish_serialized(frames[2], frames[3])
                self.spikes += 1
            elif kind == RECORD:
                if self.log is not None:
                    self.log.write(frames[2])
            elif kind == STATUS:
                self.status[worker] = orjson.loads(frames[2])
            elif kind == FINAL:
                self.finals[worker] = self.status[worker] = orjson.loads(frames[2])
            elif kind == FAILED:
                self.failures.append(orjson.loads(frames[2])["error"])
            elif kind == READY:
                self.ready.add(worker)
        if self.done or self.failures:
            self.stop.set()
        return True

    def counters(self) -> dict:
        """The stream's counters as the first worker counted them (every worker receives every
        message), with the service's own summed over the workers and the outputs' drops."""
        parts = [self.status[k]["counters"] for k in sorted(self.status)]
        if not parts:
            parts = [{**StreamStats().counters(), "cells": 0, "refused_blocks": 0, "forgotten_cells": 0}]
        merged = dict(parts[0])
        for key in ("cells", "refused_blocks", "forgotten_cells"):
            merged[key] = sum(p[key] for p in parts)
        merged["lost_messages"] = max(p["lost_messages"] for p in parts)
        cascades = [p["cascade"] for p in parts if "cascade" in p]  # each worker's own windows
        if cascades:
            merged["cascade"] = {key: sum(c[key] for c in cascades) for key in ("windows", "handed_on")}
        merged["outputs_dropped"] = dict(self.outputs.dropped)
        merged["outputs_dropped_by"] = self.outputs.dropped_by
        merged["workers"] = self.n
        return merged

    def states(self) -> list[tuple[CellState, int]]:
        """Every worker's cells, in (stream, channel) order, with their drops."""
        rows = sorted((row for k in sorted(self.status) for row in self.status[k]["cells"]),
                      key=lambda row: (row["stream"], row["channel_num"]))
        return [(CellState.from_dict(row), row["dropped_windows"] + row["lost_samples"]) for row in rows]

    def table(self, seconds: float):
        return cells_table(self.states(), self.counters(), self.spikes, seconds, self.title, self.evidence)

    def summary(self, seconds: float) -> dict:
        cells = sorted((c for f in self.finals.values() for c in f["cells"]), key=lambda c: (c["stream"],
                                                                                              c["channel_num"]))
        return {"seconds": seconds, "spikes": self.spikes, "counters": self.counters(), "workers": self.n,
                "workers_lost": {str(k): why for k, why in sorted(self.lost.items())},
                "timings": [self.finals[k]["timings"] for k in sorted(self.finals)], "cells": cells}

    def close(self) -> None:
        self._pull.close()
        self._context.term()


def serve_sharded(spec: WorkerSpec, n: int, outputs: Outputs, log: RecordLog | None, evidence: str,
                  console: Console, title: str, on_ready=None) -> dict:
    """Serve with ``n`` workers until they stop (their ``--duration``/``--idle``), a signal stops
    this process, or a worker dies; then stop the others and return the merged summary (a dead
    worker is named in its ``workers_lost``; its cells are not in it). ``on_ready(pids)`` is called
    once every worker has subscribed."""
    coordinator = Coordinator(n, outputs, log, evidence, title)
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=run_worker, args=(dataclasses.replace(spec, collector=coordinator.endpoint,
                                                                           shard=(k, n)),),
                             name=f"raphe-worker-{k}") for k in range(n)]
    for worker in workers:
        worker.start()
    started = time.monotonic()

    def step(timeout_ms: int) -> bool:
        got = coordinator.step(timeout_ms)
        coordinator.supervise(workers)
        return got

    try:
        while len(coordinator.ready) < n and not coordinator.failures and time.monotonic() - started < START_S \
                and all(w.is_alive() for w in workers):
            coordinator.step(100)
        if len(coordinator.ready) < n and not coordinator.failures:
            coordinator.failures.append(f"only {len(coordinator.ready)} of {n} workers started")
        if not coordinator.failures:
            if on_ready is not None:
                on_ready([w.pid for w in workers])
            run_loop(step, coordinator.table, console=console, stop=coordinator.stop)
        for worker in workers:  # the coordinator was stopped: the workers stop too, and summarise
            if worker.is_alive():
                worker.terminate()
        deadline = time.monotonic() + FINISH_S
        while not coordinator.done and time.monotonic() < deadline:
            step(100)
        for worker in workers:
            worker.join(timeout=10)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
        coordinator.close()
    seconds = time.monotonic() - started
    if coordinator.failures:
        raise RapheError("; ".join(dict.fromkeys(coordinator.failures)))
    summary = coordinator.summary(seconds)
    console.print(Group(coordinator.table(seconds), *[
        timings_table(t, "per-stage time of worker 0 (µs; percentiles to within 6%; every worker's in --json)")
        for t in summary["timings"][:1]]))
    return summary


def ended_by(exitcode: int | None) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
