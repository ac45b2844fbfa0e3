"""What several test modules share: running the command line as a user does, the one-line error
check, free loopback ports, the slow-joiner handshake, a live service on a publisher, a reader of
POSTERIOR messages, and where the real recordings are."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import zmq

REPO = Path(__file__).resolve().parents[1]
ABF_DIR = Path(os.environ.get("RAPHE_ABF_DIR", REPO.parent / "shared" / "data" / "abf"))


def abf_paths() -> list[Path]:
    return sorted(ABF_DIR.glob("*.abf")) if ABF_DIR.is_dir() else []


def require_abf_dir() -> Path:
    """The real recordings' folder; skip where they are absent, except under CI=true, where their
    absence is a failure."""
    if abf_paths():
        return ABF_DIR
    unavailable(f"real recordings not found in {ABF_DIR} (clone raphe beside shared/, or set RAPHE_ABF_DIR)")


def unavailable(reason: str, module_level: bool = False) -> None:
    """Something a test needs and the project's own set-up provides is missing: skip with the
    reason, except under CI=true, where its absence is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def run_raphe(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    """`raphe ARGS...` in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "raphe", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


def free_port_pair() -> int:
    """A TCP port free on 127.0.0.1 whose successor (the heartbeat port) is free too."""
    ctx = zmq.Context()
    try:
        for _ in range(50):
            a = ctx.socket(zmq.REP)
            a.bind("tcp://127.0.0.1:*")
            port = int(a.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
            b = ctx.socket(zmq.REP)
            try:
                b.bind(f"tcp://127.0.0.1:{port + 1}")
                return port
            except zmq.ZMQError:
                continue
            finally:
                a.close(0)
                b.close(0)
        raise RuntimeError("no free port pair")
    finally:
        ctx.term()


def serving_endpoints(server: subprocess.Popen) -> tuple[str, str]:
    """The POSTERIOR and spike-event endpoints a `raphe serve` subprocess (stderr piped, text) bound
    with ``tcp://127.0.0.1:*``, read from its "serving" line: a port picked free and bound later may
    be taken meanwhile by another process."""
    for line in server.stderr:
        found = re.search(r"posteriors on (tcp://\S+), spike events on (tcp://[^\s;]+)", line)
        if found:
            return found.group(1), found.group(2)
    raise AssertionError("raphe serve ended before it served")


def handshake(pub, sub, attempts: int = 200) -> int:
    """Send probe blocks until the subscriber receives one (ZeroMQ's slow joiner), then drain the
    probes still on their way; return the last message_num sent. From then on every message reaches
    the subscriber unless its queue overflows."""
    for i in range(attempts):
        pub.send_data("probe", 0, "probe", i, 1000.0, np.zeros(1, np.float32))
        if sub.receive(timeout_ms=20) is not None:
            while sub.receive(timeout_ms=100) is not None:
                pass
            return pub.message_num
    raise AssertionError("subscriber never connected")


@contextmanager
def live_service(log=None, lsl=None, **service_options):
    """A publisher and a Service (the shipped model) on it, handshaken, outputs on ephemeral ports;
    ``log`` and ``lsl`` are sinks beside the wire, ``service_options`` its ``ServeOptions``."""
    from raphe.classifier.runtime.model import Model
    from raphe.outputs.wire import Outputs
    from raphe.pipelines.live import Service
    from raphe.pipelines.wiring import ServeOptions, Sinks, subscribe
    from raphe.streamer.publisher import Publisher

    model = Model()
    with Publisher("tcp://127.0.0.1:*", heartbeat=False) as pub, \
            Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*") as outputs:
        service = Service(subscribe(pub.endpoint), model, model.posterior_config(), Sinks(outputs, log, lsl),
                          ServeOptions(**service_options))
        for i in range(200):
            pub.send_data("probe", 0, "probe", i, 1000.0, np.zeros(1, np.float32))
            if service.step(20):
                break
        while service.step(100):
            pass
        try:
            yield pub, service
        finally:
            service.close()


def drain_service(service) -> None:
    """Step the service until nothing has arrived for 200 ms."""
    while service.step(200):
        pass


class PosteriorReader:
    """A SUB socket on ``endpoint`` in a thread of its own, keeping every message (as frames) until
    ``stop`` and then whatever is still on its way."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.frames: list[list[bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read)
        self._thread.start()

    def _read(self) -> None:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self.endpoint)
        while not self._stop.is_set() or sub.poll(500):
            if sub.poll(50):
                self.frames.append(sub.recv_multipart())
        sub.close(0)
        ctx.term()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def spike_update(channel_num: int = 0, sample_num: int = 0, decision: str = "undecided", stream: str = "rig",
                 n_spikes: int = 5, sample_rate: float = 10_000.0):
    """A SpikeUpdate of a made-up cell (for outputs tested on their own)."""
    from raphe.classifier.runtime.cells import CellState
    from raphe.outputs.update import SpikeUpdate

    even = np.array([0.5, 0.5])
    state = CellState(stream, channel_num, f"c{channel_num}", f"{stream}:{channel_num}", 1, ("SER", "NSER"), 1.0,
                      n_spikes, 0, 5.0, 0, "both", even, {"waveform": even, "firing": even, "joint": even}, even,
                      decision, None, None, (), ())
    return SpikeUpdate(state, sample_num, 1, sample_rate, -80.0, -50.0, False, np.array([0.5, 0.5], np.float32), {})


def replay_into(service, pub, recording) -> None:
    """``recording`` replayed on ``pub`` as fast as the service takes it (10 ms blocks), the
    service stepped until it has handled every message and then finished (summaries logged)."""
    import math

    from raphe.replay.player import replay

    assert pub.wait_for_subscribers(1, timeout_s=10)
    sender = threading.Thread(target=replay, args=(recording, pub), kwargs={"block_ms": 10.0, "speed": math.inf})
    sender.start()
    while sender.is_alive():
        service.step(20)
    sender.join()
    drain_service(service)
    service.finish()
