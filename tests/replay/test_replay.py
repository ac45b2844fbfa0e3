"""Replays of the real recordings, received by sockets written here, not by raphe's subscriber."""

import json
import math
import threading
import time

import numpy as np
import pyabf
import pytest
import zmq

from raphe.replay.player import block_samples, replay
from raphe.replay.recording import Recording, RecordingError
from raphe.streamer.protocol import now_ms
from raphe.streamer.publisher import Publisher


def pyabf_sweeps(path):
    """Per sweep, one array per channel, read with pyabf directly."""
    abf = pyabf.ABF(str(path))
    sweeps = []
    for s in range(abf.sweepCount):
        traces = []
        for c in range(abf.channelCount):
            abf.setSweep(s, channel=c)
            traces.append(abf.sweepY.copy())
        sweeps.append(traces)
    return abf, sweeps


class RawSubscriber:
    """A plain SUB socket collecting every message of one replay."""

    def __init__(self, endpoint: str):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(endpoint)

    def collect(self, count: int, timeout_s: float = 60.0) -> list[tuple[dict, bytes]]:
        got = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            if self.socket.poll(200):
                envelope, header, payload = self.socket.recv_multipart()
                assert envelope == b"DATA\x00"
                got.append((json.loads(header), payload))
        return got

    def close(self) -> None:
        self.socket.close(0)
        self.context.term()


def start_replay(recording, publisher, **kwargs) -> threading.Thread:
    def run():
        publisher.wait_for_subscribers(1, timeout_s=30)
        replay(recording, publisher, **kwargs)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_lossless_full_speed_replay_is_bit_exact(abf_path):
    abf, expected = pyabf_sweeps(abf_path)
    rec = Recording(abf_path)
    step = block_samples(rec.sample_rate, 7.0)
    count = sum(math.ceil(len(tr[0]) / step) for tr in expected) * abf.channelCount
    with Publisher("tcp://127.0.0.1:*", lossless=True, heartbeat=False, hwm=50) as pub:
        sub = RawSubscriber(pub.endpoint)
        thread = start_replay(rec, pub, block_ms=7.0, speed=math.inf)
        messages = sub.collect(count)
        thread.join()
        sub.close()
    assert len(messages) == count
    assert [h["message_num"] for h, _ in messages] == list(range(1, count + 1))
    received = {}
    for header, payload in messages:
        c = header["content"]
        assert c["stream"] == abf_path.stem and c["sample_rate"] == abf.sampleRate
        assert c["channel_name"] == rec.channels[c["channel_num"]].name
        assert c["units"] == abf.adcUnits[c["channel_num"]]
        assert header["data_size"] == len(payload) == 4 * c["num_samples"]
        received.setdefault(c["channel_num"], []).append((c["sample_num"], np.frombuffer(payload, "<f4")))
    # where each sweep starts on the counter is Recording's rule (tested against the files' own
    # facts below); the replay must keep it, and no sweep may look continuous with the one before
    starts = [sweep.sample_num for sweep in rec.sweeps]
    assert all(b > a + len(tr[0]) for a, b, tr in zip(starts, starts[1:], expected))
    for channel in range(abf.channelCount):
        blocks = received[channel]
        i = 0
        for start, traces in zip(starts, expected):
            want = traces[channel]
            offsets = range(0, len(want), step)
            got = blocks[i:i + len(offsets)]
            i += len(offsets)
            assert [s for s, _ in got] == [start + o for o in offsets]
            joined = np.concatenate([b for _, b in got])
            assert joined.tobytes() == want.astype(np.float32).tobytes()
        assert i == len(blocks)


def test_sweeps_never_look_continuous(abf_dir):
    rec = Recording(abf_dir / "18711001.abf")  # 30 sweeps of 1.5 s at 20 kHz, one every 20 s (its README)
    starts = [s.sample_num for s in rec.sweeps]
    assert starts == [k * 400_000 for k in range(30)]
    assert Recording(abf_dir / "19114000.abf").sweeps[0].sample_num == 0  # gap-free: one sweep from 0
    rec = Recording(abf_dir / "pclamp11_4ch.abf")  # the header puts its 10 sweeps of 0.2 s back to back
    assert [s.num_samples for s in rec.sweeps] == [4000] * 10
    assert [s.sample_num for s in rec.sweeps] == [k * 4001 for k in range(10)]  # one sample apart


def test_paced_replay_keeps_real_time(abf_dir):
    rec = Recording(abf_dir / "test_0001.abf")  # 1.29 s, 16 channels
    with Publisher("tcp://127.0.0.1:*", lossless=True, heartbeat=False) as pub:
        sub = RawSubscriber(pub.endpoint)
        before_ms = now_ms()
        thread = start_replay(rec, pub, block_ms=50.0, speed=2.0, channels=rec.select(["V1", "3"]))
        messages = sub.collect(2 * math.ceil(rec.total_samples / block_samples(rec.sample_rate, 50.0)))
        thread.join()
        sub.close()
    assert {h["content"]["channel_name"] for h, _ in messages} == {"V1", "I2"}
    last_ms = max(h["timestamp"] for h, _ in messages)
    # Paced at 2x, the last block cannot leave before half the recording has passed since the start
    # (a late first block may shorten the span between blocks, so the start is the reference); 1 ms
    # for the two truncations to whole milliseconds.
    assert last_ms - before_ms >= 1000 * rec.recorded_s / 2.0 - 1


def test_loop_restarts_the_acquisition(abf_dir):
    rec = Recording(abf_dir / "pclamp11_4ch.abf")
    per_loop = sum(math.ceil(s.num_samples / block_samples(rec.sample_rate, 20.0)) for s in rec.sweeps)
    stop = threading.Event()
    with Publisher("tcp://127.0.0.1:*", lossless=True, heartbeat=False) as pub:
        sub = RawSubscriber(pub.endpoint)
        thread = start_replay(rec, pub, block_ms=20.0, speed=math.inf, loop=True, stop=stop,
                              channels=rec.select(["0"]))
        messages = sub.collect(2 * per_loop + 1)
        stop.set()
        thread.join()
        sub.close()
    nums = [h["message_num"] for h, _ in messages]
    assert nums[per_loop - 1] == per_loop and nums[per_loop] == 1 and nums[2 * per_loop] == 1
    assert messages[per_loop][0]["content"]["sample_num"] == 0


def test_third_party_zmqclient_sees_names_and_rate(abf_dir):
    from pyoephys.interface import ZMQClient

    rec = Recording(abf_dir / "18425108.abf")  # 2 channels at 25 kHz
    stop = threading.Event()
    with Publisher("tcp://127.0.0.1:*") as pub:  # the rig's dropping PUB, heartbeat on port + 1
        port = pub.endpoint.rsplit(":", 1)[1]
        thread = threading.Thread(target=replay, args=(rec, pub),
                                  kwargs=dict(speed=5.0, loop=True, stop=stop, block_ms=10.0))
        thread.start()
        client = ZMQClient(host_ip="127.0.0.1", data_port=port)
        client.start()
        try:
            deadline = time.monotonic() + 30
            while len(client.channel_names) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.channel_names == ["Imemb", "10_Vm"]
            assert client.fs == 25000.0
            assert client.total_samples_written > 0
        finally:
            client.stop()
            stop.set()
            thread.join()
        assert pub.heartbeats >= 1


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"not an abf at all\n" * 10, "not an ABF file"),
])
def test_bad_files_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / "bad.abf"
    path.write_bytes(content)
    with pytest.raises(RecordingError, match=message):
        Recording(path)


def test_truncated_file_is_refused(abf_dir, tmp_path):
    data = (abf_dir / "f1.abf").read_bytes()
    for size in (600, len(data) // 2):
        path = tmp_path / f"cut{size}.abf"
        path.write_bytes(data[:size])
        with pytest.raises(RecordingError, match="truncated or corrupt"):
            Recording(path)
