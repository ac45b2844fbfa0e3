"""Issue 23, second round: a stalled subscriber starves no other, and a dead worker is noticed."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import zmq

from raphe.outputs.wire import Outputs, serialized
from raphe.streamer.publisher import Publisher
from tests.helpers import spike_update

RATE = 40_000.0
UPDATE = serialized(spike_update(sample_rate=RATE))
SOAK = 100_000
# The reader is kept at most this many messages behind (its queue holds twice as many), so it
# loses nothing however the two cores are shared; the stalled one cannot keep up by construction.
LEAD = 2_000


def joined(outputs: Outputs, n: int) -> list[str]:
    """The posterior subscribers' names once ``n`` of them are connected."""
    deadline = time.monotonic() + 10
    while len(names := outputs.subscribers("posterior")) < n:
        assert time.monotonic() < deadline, "subscriber did not connect"
        time.sleep(0.01)
    return names


def test_a_stalled_subscriber_loses_alone_and_its_losses_are_counted_under_its_name():
    """Item 3: one subscriber at RCVHWM 1 never reads, one reads everything, over 100,000 messages:
    the reader gets message_num 1..100,000, the stalled one's losses are counted under its own name,
    and its losses plus what it finally reads are exactly every message."""
    with Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", hwm=2 * LEAD) as outputs:
        ctx = zmq.Context()
        stalled = ctx.socket(zmq.SUB)
        stalled.setsockopt(zmq.RCVHWM, 1)
        stalled.setsockopt(zmq.SUBSCRIBE, b"")
        stalled.connect(outputs.posterior_endpoint)
        [stalled_name] = joined(outputs, 1)
        reader = ctx.socket(zmq.SUB)
        reader.setsockopt(zmq.SUBSCRIBE, b"")
        reader.connect(outputs.posterior_endpoint)
        reader_name = next(n for n in joined(outputs, 2) if n != stalled_name)
        time.sleep(0.5)  # both subscriptions reach raphe's side (ZeroMQ's slow joiner)
        numbers: list[int] = []
        done = threading.Event()

        def read() -> None:
            while not done.is_set() or reader.poll(500):
                if reader.poll(100):
                    numbers.append(orjson.loads(reader.recv_multipart()[1])["message_num"])

        thread = threading.Thread(target=read)
        thread.start()
        for i in range(SOAK):
            if i % 500 == 0:
                deadline = time.monotonic() + 30
                while len(numbers) < i - LEAD:
                    assert time.monotonic() < deadline, "the reader stopped receiving"
                    time.sleep(0.001)
            outputs.publish_serialized(*UPDATE)
        done.set()
        thread.join(60)
        lost = outputs.dropped_by["posterior"]
        late = 0
        while stalled.poll(1000):
            stalled.recv_multipart()
            late += 1
        stalled.close(0)
        reader.close(0)
        ctx.term()
    assert numbers == list(range(1, SOAK + 1))
    assert lost[reader_name] == 0
    assert lost[stalled_name] > SOAK // 2
    assert late + lost[stalled_name] == SOAK
    assert outputs.dropped["posterior"] == lost[stalled_name]


def test_lossless_outputs_wait_for_the_stalled_subscriber_and_every_reader_gets_everything():
    """--lossless-outputs with per-subscriber queues: a subscriber that reads slowly is waited for,
    so it and a fast one both get every message and nothing is counted as lost."""
    with Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", hwm=10, lossless=True) as outputs:
        ctx = zmq.Context()
        subs = []
        for hwm in (1, 1000):
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.RCVHWM, hwm)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(outputs.posterior_endpoint)
            subs.append(sub)
        joined(outputs, 2)
        time.sleep(0.5)
        counts = [0, 0]

        def read(k: int, pause: float) -> None:
            while subs[k].poll(3000):
                subs[k].recv_multipart()
                counts[k] += 1
                if counts[k] % 100 == 0:
                    time.sleep(pause)

        threads = [threading.Thread(target=read, args=(k, pause)) for k, pause in ((0, 0.02), (1, 0.0))]
        for thread in threads:
            thread.start()
        for _ in range(3000):
            outputs.publish_serialized(*UPDATE)
        for thread in threads:
            thread.join(60)
        for sub in subs:
            sub.close(0)
        ctx.term()
    assert counts == [3000, 3000]
    assert outputs.dropped == {"posterior": 0, "events": 0}


def test_a_worker_killed_is_noticed_the_others_summarise_and_serve_exits_1():
    """Item 4: `serve --workers 2 --duration 600`, worker 1 killed with SIGKILL: one line names it,
    worker 0 stops with its summary, --json prints what there is (channel 0's cell, not channel 1's),
    and serve exits 1 long before its --duration."""
    with Publisher("tcp://127.0.0.1:*", heartbeat=False, lossless=True) as pub:
        server = subprocess.Popen([sys.executable, "-m", "raphe", "serve", "--connect", pub.endpoint,
                                   "--posterior-endpoint", "tcp://127.0.0.1:*", "--events-endpoint",
                                   "tcp://127.0.0.1:*", "--workers", "2", "--duration", "600", "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert pub.wait_for_subscribers(2, timeout_s=120), "the workers never subscribed"
            started = server.stderr.readline()
            while "pids" not in started and started:
                started = server.stderr.readline()
            pids = [int(p) for p in re.search(r"\(pids (\d+), (\d+)\)", started).groups()]
            assert all(Path(f"/proc/{pid}").exists() for pid in pids), started
            for i in range(50):
                for channel in (0, 1):
                    pub.send_data("rig", channel, f"cell{channel}", i * 400, RATE, np.zeros(400, np.float32), "pA")
            time.sleep(1.0)  # the workers take the blocks in
            os.kill(pids[1], signal.SIGKILL)
            out, err = server.communicate(timeout=90)
        finally:
            server.kill()
    assert server.returncode == 1, err[-2000:]
    died = [line for line in err.splitlines() if "died" in line]
    assert died == [f"raphe serve: worker 1 (pid {pids[1]}) died (killed by SIGKILL); its channels "
                    "(channel_num % 2 == 1) are no longer served: stopping the others"]
    summary = json.loads(out)
    assert summary["workers_lost"] == {"1": "killed by SIGKILL"}
    assert [c["cell"] for c in summary["cells"]] == ["rig:0"] and len(summary["timings"]) == 1


def test_idle_connections_to_the_web_view_are_closed_and_free_their_threads():
    """Item 13: 300 connections that never send a request each hold a thread only until the idle
    timeout closes them; a browser's event stream waiting longer than that for a snapshot stays open."""
    from raphe.outputs.web import WebView

    before = threading.active_count()
    web = WebView("127.0.0.1:0", idle_s=0.5)
    host, port = web.url[len("http://"):].rstrip("/").split(":")
    try:
        stream = socket.create_connection((host, int(port)))
        stream.sendall(b"GET /events HTTP/1.0\r\n\r\n")
        idle = [socket.create_connection((host, int(port))) for _ in range(300)]
        for connection in idle:
            connection.settimeout(30)
            assert connection.recv(1) == b""  # closed by the server, not by us
            connection.close()
        deadline = time.monotonic() + 30
        while threading.active_count() > before + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() <= before + 3  # the server's, the stream's (and its own thread)
        time.sleep(1.0)  # twice the idle timeout, with nothing to send
        web.publish({"header": {"title": "late"}, "cells": []})
        stream.settimeout(10)
        received = b""
        while b"late" not in received:
            chunk = stream.recv(65536)
            assert chunk, "the event stream was closed"
            received += chunk
        stream.close()
    finally:
        web.close()
