"""`serve --workers N`: channels shared out over worker processes, on real sockets, with outputs,
log and summary as one process gives them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from raphe.replay.player import replay
from raphe.replay.recording import Channel, Recording
from raphe.outputs.wire import decode_posterior
from raphe.streamer.publisher import Publisher
from tests.helpers import PosteriorReader, assert_one_line_error, run_raphe, serving_endpoints

RATE = 40_000.0


@pytest.fixture(scope="module")
def rig():
    """Six synthetic cells, one channel each, of both classes."""
    from raphe.classifier.synthetic import template as synthetic

    rng = np.random.default_rng(12)
    day = synthetic.draw_day("shards", rng)
    traces = []
    for k in range(6):
        cell = synthetic.draw_cell(synthetic.CLASSES[k % 2], rng)
        traces.append(synthetic.synth_trace(cell, day, 12.0, RATE, rng)[0])
    return Recording.from_traces("rig", RATE, [Channel(k, f"cell{k}", "pA") for k in range(6)], traces)


def serve_once(rig, tmp_path, workers: int, stop_after_s: float | None = None) -> tuple[dict, list[dict], list[dict]]:
    """serve (N workers) fed the rig losslessly; its --json summary, the POSTERIOR contents a client
    read, and the log's records. With ``stop_after_s``, SIGTERM that long into the replay."""
    log = tmp_path / f"log-{workers}.jsonl"
    with Publisher("tcp://127.0.0.1:*", heartbeat=False, lossless=True) as pub:
        server = subprocess.Popen([sys.executable, "-m", "raphe", "serve", "--connect", pub.endpoint,
                                   "--posterior-endpoint", "tcp://127.0.0.1:*", "--events-endpoint",
                                   "tcp://127.0.0.1:*", "--idle", "3", "--json", "--log", log,
                                   "--workers", str(workers)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        posterior, _ = serving_endpoints(server)
        reader = PosteriorReader(posterior)
        try:
            assert pub.wait_for_subscribers(workers, timeout_s=120), "the workers never subscribed"
            time.sleep(0.5)  # the reader's subscription to the outputs
            if stop_after_s is None:
                replay(rig, pub, block_ms=10.0, speed=float("inf"))
            else:  # blocks at about 5x real time until the signal, which comes while they still flow
                deadline = time.monotonic() + stop_after_s
                traces = rig.sweeps[0].traces
                for k in range(len(traces[0]) // 400):
                    if time.monotonic() > deadline:
                        break
                    for c, trace in enumerate(traces):
                        pub.send_data("rig", c, f"cell{c}", k * 400, RATE, trace[k * 400:(k + 1) * 400], "pA")
                    time.sleep(0.002)
                server.send_signal(signal.SIGTERM)
            out, err = server.communicate(timeout=180)
        finally:
            server.kill()
            reader.stop()
    assert server.returncode == 0, err[-3000:]
    contents = [decode_posterior(f)["content"] for f in reader.frames]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return json.loads(out), contents, records


def test_two_workers_serve_exactly_as_one_process(rig, tmp_path):
    one, one_published, _ = serve_once(rig, tmp_path, 1)
    two, two_published, records = serve_once(rig, tmp_path, 2)
    assert two["workers"] == 2 and len(two["timings"]) == 2
    assert [c["cell"] for c in two["cells"]] == [c["cell"] for c in one["cells"]] == [f"rig:{k}" for k in range(6)]
    for ours, theirs in zip(two["cells"], one["cells"]):
        for key in ("n_spikes", "n_novel", "decision", "posterior", "parts", "spikes_to_decision", "dropped_windows"):
            assert ours[key] == theirs[key], (ours["cell"], key)
    assert two["spikes"] == one["spikes"] == sum(c["n_spikes"] for c in one["cells"]) > 50
    for key in ("messages", "data_messages", "lost_messages", "lost_samples", "malformed", "cells"):
        assert two["counters"][key] == one["counters"][key], key

    def by_spike(contents):
        return {(c["cell"], c["n_spikes"]): c for c in contents}

    assert by_spike(two_published) == by_spike(one_published) and len(two_published) == two["spikes"]
    spikes = [r for r in records if r["kind"] == "spike"]
    assert len(spikes) == two["spikes"] and {r["kind"] for r in records} >= {"start", "spike", "summary", "counters"}
    assert len([r for r in records if r["kind"] == "summary"]) == 6


def test_sigterm_reaches_every_worker_and_the_log_keeps_every_spike_published(rig, tmp_path):
    summary, published, records = serve_once(rig, tmp_path, 2, stop_after_s=3.0)
    spikes = [r for r in records if r["kind"] == "spike"]
    assert len(spikes) == len(published) == summary["spikes"] > 0
    assert sorted(r["cell"] for r in records if r["kind"] == "summary") == [f"rig:{k}" for k in range(6)]
    assert {(r["cell"], r["n_spikes"]) for r in spikes} == {(c["cell"], c["n_spikes"]) for c in published}


def test_workers_refuse_what_they_cannot_share_yet():
    assert_one_line_error(run_raphe("serve", "--workers", "2", "--web", "127.0.0.1:0", "--duration", "1"),
                          "--workers 2 cannot be combined with --web")
