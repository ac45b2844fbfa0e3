"""End-to-end latency on real sockets, in three processes: a rig, raphe's service, a POSTERIOR reader.

Latency is from the moment the rig sends the DATA message that completes a spike's window (the
POSTERIOR message names it in ``source_message_num``) to the moment the reader receives that
POSTERIOR message. All three processes stamp ``time.monotonic_ns()``, one clock on one machine.
The same run can swap raphe's service for an echo that answers every DATA message at once with a
bare POSTERIOR-shaped message: ZeroMQ's own round trip on the same sockets, the floor of latency.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

POOL_TRACES = 8
POOL_SECONDS = 4.0
WARMUP_S = 0.5
START_DELAY_S = 1.0
GIVE_UP_LATE_NS = 2_000_000_000
# A flood: one huge valid block on a stream of its own, this often (its spikes are not measured).
FLOOD_EVERY_S = 2.0
FLOOD = -1


@dataclass(frozen=True)
class Case:
    """A rig: ``channels`` cells at ``sample_rate``, blocks of ``block_ms``, each firing ``firing_hz``,
    sent as Open Ephys DATA messages (one per channel per block) or as raphe's packed blocks, and
    served with ``model`` (a shipped model's name)."""

    channels: int
    block_ms: float
    firing_hz: float
    seconds: float
    sample_rate: float = 40_000.0
    packed: bool = False
    model: str = "default"
    flood_samples: int = 0
    keep_warm: bool = True
    web: bool = False
    lsl: bool = False
    workers: int = 1
    threads: int = 1

    @property
    def label(self) -> str:
        return (f"{self.channels} ch, {self.sample_rate / 1000:g} kHz, {self.block_ms:g} ms blocks, "
                f"{self.firing_hz:g} Hz{', packed' if self.packed else ''}{', ' + self.model if self.model != 'default' else ''}"
                + (f", beside a {self.flood_samples * 4 / 1e6:g} MB block every {FLOOD_EVERY_S:g} s"
                   if self.flood_samples else "") + ("" if self.keep_warm else ", model not kept warm")
                + (", web view read by a browser" if self.web else "") + (", LSL outlets" if self.lsl else "")
                + (f", {self.workers} workers" if self.workers > 1 else "")
                + (f", {self.threads} interpreter threads" if self.threads > 1 else ""))


def spike_pool(case: Case, seed: int = 0) -> list[np.ndarray]:
    """A few synthetic cell-attached traces firing at the case's rate, shared round-robin by channels."""
    from raphe.classifier.synthetic import template as synthetic

    rng = np.random.default_rng(seed)
    day = synthetic.draw_day("bench", rng)
    traces = []
    for i in range(POOL_TRACES):
        cell = synthetic.draw_cell(synthetic.CLASSES[i % 2], rng)
        cell = dataclasses.replace(cell, rate_hz=case.firing_hz, cv=0.5)
        traces.append(synthetic.synth_trace(cell, day, POOL_SECONDS, case.sample_rate, rng)[0])
    return traces


def rig(case: Case, out: str, bound, go) -> None:
    """Bind an ephemeral port and tell ``bound`` its endpoint; once ``go`` is set, publish the case in
    real time after ``START_DELAY_S``; save each message's send time."""
    from raphe.streamer.publisher import Publisher

    pool = spike_pool(case)
    length = len(pool[0])
    step = max(1, int(round(case.sample_rate * case.block_ms / 1000.0)))
    n_blocks = int(case.seconds * case.sample_rate / step)
    warm = int(WARMUP_S * case.sample_rate / step)
    block_ns = int(step / case.sample_rate * 1e9)
    flood = np.resize(pool[0], case.flood_samples)
    flood_every = max(1, int(FLOOD_EVERY_S * 1000 / case.block_ms))
    floods = n_blocks // flood_every + 1 if case.flood_samples else 0
    sent = np.zeros(n_blocks * case.channels + warm + floods + 2, np.int64)
    offsets = [(c * 7919) % (length - step) for c in range(case.channels)]
    channel_nums, channel_names = list(range(case.channels)), [f"ch{c}" for c in range(case.channels)]
    latest = 0
    with Publisher("tcp://127.0.0.1:*", heartbeat=False, hwm=10_000) as pub:
        bound.put(pub.endpoint)
        go.wait(120)
        time.sleep(START_DELAY_S)
        for k in range(warm):  # lets every subscriber join before the measured messages
            pub.send_data("warmup", 0, "warmup", k * step, case.sample_rate, np.zeros(step, np.float32))
            time.sleep(WARMUP_S / warm)
        first = pub.message_num + 1
        t0 = time.monotonic_ns()
        for k in range(n_blocks):
            due = t0 + (k + 1) * block_ns
            delay = due - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
            latest = max(latest, time.monotonic_ns() - due)
            if latest > GIVE_UP_LATE_NS:
                break  # the rig itself cannot send this case in real time; its pace says so
            start = (k * step) % (length - step)
            if case.flood_samples and k % flood_every == flood_every // 2:
                sent[pub.message_num + 1] = FLOOD
                pub.send_data("flood", 0, "flood", (k // flood_every) * case.flood_samples, case.sample_rate, flood)
            if case.packed:
                block = np.stack([pool[c % POOL_TRACES][(start + offsets[c]) % (length - step):][:step]
                                  for c in range(case.channels)])
                sent[pub.message_num + 1] = time.monotonic_ns()
                pub.send_block("bench", k * step, case.sample_rate, block, channel_nums, channel_names)
                continue
            for c in range(case.channels):
                trace = pool[c % POOL_TRACES]
                at = (start + offsets[c]) % (length - step)
                sent[pub.message_num + 1] = time.monotonic_ns()
                pub.send_data("bench", c, f"ch{c}", k * step, case.sample_rate, trace[at:at + step])
        elapsed = time.monotonic_ns() - t0
        np.savez(out, sent=sent[:pub.message_num + 1], first=first, last=pub.message_num,
                 max_late_ns=latest, elapsed_ns=elapsed, due_ns=(k + 1) * block_ns)
        time.sleep(0.5)


def service(connect: str, out: str, deadline_s: float, bound, model_name: str, keep_warm: bool = True,
            web: bool = False, lsl: bool = False, threads: int = 1) -> None:
    """raphe's live service until data stops for 1 s (or the deadline); save its counters and timings.
    Its outputs (and its web view) bind ephemeral ports; ``bound`` is told the POSTERIOR endpoint and
    the view's HOST:PORT once it serves. With ``web``, the live browser view is served and ticked as
    `raphe serve --web` does (the table's refresh, every 0.25 s); with ``lsl``, every update is also
    pushed to LSL outlets."""
    import os

    from raphe.classifier.runtime.serving import chosen
    from raphe.pipelines.live import Service
    from raphe.pipelines.wiring import ServeOptions, Sinks, subscribe
    from raphe.pipelines.loop import settle_collector
    from raphe.outputs.snapshot import LiveView
    from raphe.outputs.wire import Outputs
    from raphe.outputs.web import WebView

    model, wide = chosen(model_name, threads)  # as `raphe serve`: for "default", the cascade on wide streams
    view_server = WebView("127.0.0.1:0") if web else None
    outlets = None
    if lsl:
        from raphe.outputs.lsl import LslOutputs

        outlets = LslOutputs(f"raphe-bench-{os.getpid()}", model.classes)
    with Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*") as outputs:
        svc = Service(subscribe(connect), model, model.posterior_config(), Sinks(outputs, lsl=outlets),
                      ServeOptions() if keep_warm else ServeOptions(keep_warm_s=None), wide)
        view = LiveView(svc, view_server, "bench") if view_server else None
        settle_collector()  # as `raphe serve` does
        bound.put((outputs.posterior_endpoint, view_server.url[len("http://"):].rstrip("/") if view_server else None))
        refresh = [time.monotonic()]

        def step(timeout_ms: int) -> bool:
            got = svc.step(timeout_ms)
            if view is not None and time.monotonic() >= refresh[0]:
                view.tick(0.0)
                refresh[0] = time.monotonic() + 0.25
            return got

        try:
            spin(step, deadline_s)
            stats = svc.subscriber.stats
            Path(out).write_text(json.dumps({
                "timings": svc.timings.summary(), "spikes": svc.spikes, "messages": stats.data_messages,
                "lost_messages": stats.lost_messages, "malformed": sum(stats.malformed.values()),
                **({"snapshots": view.snapshots, "snapshot_ms": 1e3 * view.build_s / max(view.snapshots, 1)}
                   if view else {})}))
        finally:
            svc.close()
            if view_server is not None:
                view_server.close()


def sharded(connect: str, out: str, deadline_s: float, bound, model_name: str, workers: int) -> None:
    """`raphe serve --workers N` (the coordinator here, N workers spawned) until data stops for 1 s;
    ``bound`` is told the POSTERIOR endpoint once every worker serves."""
    import io

    from rich.console import Console

    from raphe.classifier.runtime.serving import chosen
    from raphe.pipelines.shards import WorkerSpec, serve_sharded
    from raphe.outputs.wire import Outputs

    model, wide = chosen(model_name)
    spec = WorkerSpec(connect, str(model.path), None, 5, None, {}, None, 1.0, 4096, None, None, deadline_s, 1.0,
                      False, wide=None if wide is None else str(wide.path))
    with Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*") as outputs:
        summary = serve_sharded(spec, workers, outputs, None, model.posterior_config().evidence,
                                Console(file=io.StringIO()), "bench",
                                on_ready=lambda pids: bound.put((outputs.posterior_endpoint, None)))
    counters = summary["counters"]
    Path(out).write_text(json.dumps({
        "timings": summary["timings"][0], "spikes": summary["spikes"], "messages": counters["data_messages"],
        "lost_messages": counters["lost_messages"], "malformed": sum(counters["malformed"].values()),
        "workers": workers}))


def browser(address: str, deadline_s: float) -> None:
    """A page's share of the work: read the live view's event stream until it ends."""
    import urllib.request

    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            with urllib.request.urlopen(f"http://{address}/events", timeout=deadline_s) as stream:
                for _ in stream:
                    pass
            return
        except OSError:
            time.sleep(0.05)


def echo(connect: str, out: str, deadline_s: float, bound) -> None:
    """Answer every DATA message at once with a POSTERIOR-shaped message naming it: no detection,
    no classification, the same sockets and the same header parsing to find ``message_num``."""
    ctx = zmq.Context()
    sub, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(connect)
    pub.bind("tcp://127.0.0.1:*")
    bound.put((pub.getsockopt_string(zmq.LAST_ENDPOINT), None))
    count = 0

    def step(timeout_ms: int) -> bool:
        nonlocal count
        if not sub.poll(timeout_ms):
            return False
        frames = sub.recv_multipart()
        header = json.loads(frames[1])
        pub.send_multipart([b"POSTERIOR", json.dumps(
            {"message_num": count, "type": "posterior",
             "content": {"source_message_num": header["message_num"]}}).encode()])
        count += 1
        return True

    try:
        spin(step, deadline_s)
        Path(out).write_text(json.dumps({"messages": count}))
    finally:
        sub.close(0)
        pub.close(0)
        ctx.term()


def spin(step, deadline_s: float, idle_s: float = 1.0) -> None:
    started = time.monotonic()
    last = None
    while time.monotonic() - started < deadline_s:
        if step(50):
            last = time.monotonic()
        elif last is not None and time.monotonic() - last > idle_s:
            return


def reader(endpoint: str, out: str, deadline_s: float, ready) -> None:
    """Stamp every POSTERIOR message on arrival; parse it afterwards."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(endpoint)
    ready.set()
    stamps, headers = [], []

    def step(timeout_ms: int) -> bool:
        if not sub.poll(timeout_ms):
            return False
        frames = sub.recv_multipart()
        stamps.append(time.monotonic_ns())
        headers.append(frames[1])
        return True

    try:
        spin(step, deadline_s, idle_s=1.5)
    finally:
        sub.close(0)
        ctx.term()
    sources = [json.loads(h)["content"]["source_message_num"] for h in headers]
    np.savez(out, received=np.array(stamps, np.int64), source=np.array(sources, np.int64))


def run(case: Case, baseline: bool = False) -> dict:
    """Run ``case`` through raphe (or, with ``baseline``, the echo); latencies and counters."""
    spawn = multiprocessing.get_context("spawn")
    deadline = case.seconds + START_DELAY_S + WARMUP_S + 30
    with tempfile.TemporaryDirectory(prefix="raphe-bench-") as tmp:
        paths = {k: str(Path(tmp) / k) for k in ("rig.npz", "service.json", "reader.npz")}
        # each process binds an ephemeral port and says which: none is picked free and bound later,
        # when another process may have taken it
        bound, go, heard = spawn.Queue(), spawn.Event(), spawn.Event()
        source = spawn.Process(target=rig, args=(case, paths["rig.npz"], bound, go))
        source.start()
        data = bound.get(timeout=60)
        if case.workers > 1:
            middle = spawn.Process(target=sharded, args=(data, paths["service.json"], deadline, bound, case.model,
                                                         case.workers))
        else:
            middle = spawn.Process(target=echo if baseline else service,
                                   args=(data, paths["service.json"], deadline, bound)
                                   + (() if baseline else (case.model, case.keep_warm, case.web, case.lsl, case.threads)))
        middle.start()
        posterior, web = bound.get(timeout=120)
        listener = spawn.Process(target=reader, args=(posterior, paths["reader.npz"], deadline, heard))
        listener.start()
        heard.wait(60)
        page = spawn.Process(target=browser, args=(web, deadline)) if web else None
        if page is not None:
            page.start()
        go.set()
        for p in (source, middle, listener, *([page] if page else [])):
            p.join(deadline + 30)
        sent = np.load(paths["rig.npz"])
        got = np.load(paths["reader.npz"])
        served_info = json.loads(Path(paths["service.json"]).read_text())
    measured = got["source"] >= int(sent["first"])
    measured[measured] = sent["sent"][got["source"][measured]] != FLOOD
    latency_ms = (got["received"][measured] - sent["sent"][got["source"][measured]]) / 1e6
    messages = int(sent["last"]) - int(sent["first"]) + 1
    result = {"case": dataclasses.asdict(case), "label": case.label, "baseline": baseline,
              "messages_sent": messages, "rig_max_late_ms": float(sent["max_late_ns"]) / 1e6,
              "rig_real_time": float(sent["elapsed_ns"]) / float(sent["due_ns"]),
              "posteriors": int(measured.sum()), "latency_ms": latency_ms.tolist(), **served_info}
    if len(latency_ms):
        result.update({f"p{q}_ms": float(np.percentile(latency_ms, q)) for q in (50, 95, 99)})
        result["max_ms"] = float(latency_ms.max())
    return result
