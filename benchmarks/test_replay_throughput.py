"""Full-speed replay through a real subscriber, against reading the file with pyabf in the same run.

The replay runs in its own process, as a rig or `raphe replay` does: two threads of one process
would measure the interpreter lock, not the pipeline.
"""

from __future__ import annotations

import math
import multiprocessing

import numpy as np
import pyabf
import pytest

from benchmarks.conftest import record
from raphe.replay.player import block_samples, replay
from raphe.replay.recording import Recording
from raphe.streamer.publisher import Publisher
from raphe.streamer.subscriber import Subscriber


def replay_worker(path: str, commands) -> None:
    """Publish ``path`` losslessly once per block duration received on ``commands``, until None."""
    rec = Recording(path)
    with Publisher("tcp://127.0.0.1:*", lossless=True, heartbeat=False) as pub:
        commands.send(pub.endpoint)
        pub.wait_for_subscribers(1)
        while (block_ms := commands.recv()) is not None:
            replay(rec, pub, block_ms=block_ms, speed=math.inf)


@pytest.fixture(scope="module")
def replayer(recording_path):
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    worker = multiprocessing.get_context("spawn").Process(target=replay_worker, args=(str(recording_path), theirs))
    worker.start()
    endpoint = ours.recv()
    with Subscriber(endpoint, heartbeat=False) as sub:
        yield ours, sub
        ours.send(None)
        worker.join()


def test_pyabf_read_and_copy(benchmark, recording_path):
    def read_and_copy() -> int:
        abf = pyabf.ABF(str(recording_path))
        total = 0
        for sweep in range(abf.sweepCount):
            for channel in range(abf.channelCount):
                abf.setSweep(sweep, channel=channel)
                total += np.array(abf.sweepY, copy=True).shape[0]
        return total

    samples = benchmark.pedantic(read_and_copy, rounds=5, warmup_rounds=1)
    record(benchmark, "pyabf read + copy (samples)", samples, "samples_per_s")


@pytest.mark.parametrize("block_ms", [1.0, 2.0, 10.0])
def test_lossless_replay_through_subscriber(benchmark, recording_path, replayer, block_ms):
    commands, sub = replayer
    rec = Recording(recording_path)
    per_channel = block_samples(rec.sample_rate, block_ms)
    messages = sum(math.ceil(s.num_samples / per_channel) for s in rec.sweeps) * len(rec.channels)
    lost_before = sub.stats.lost_messages

    def one_replay() -> int:
        commands.send(block_ms)
        samples = 0
        for _ in range(messages):
            message = sub.receive(timeout_ms=10_000)
            assert message is not None, "replay stalled"
            samples += message.block.num_samples
        return samples

    samples = benchmark.pedantic(one_replay, rounds=3, warmup_rounds=1)
    assert sub.stats.lost_messages == lost_before
    record(benchmark, f"replay {block_ms:g} ms blocks (samples)", samples, "samples_per_s")
    record(benchmark, f"replay {block_ms:g} ms blocks (messages)", messages, "messages_per_s")
