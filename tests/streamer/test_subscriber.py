"""The subscriber over real loopback sockets: continuity, restarts, malformed input, drops."""

import json
import logging
import time

import numpy as np
import zmq

from raphe.streamer.protocol import TTLEvent, encode_data, encode_ttl
from raphe.streamer.publisher import Publisher
from raphe.streamer.subscriber import Continuity, Received, Subscriber
from tests.helpers import handshake


def drain(sub: Subscriber, timeout_ms: int = 300) -> list:
    got = []
    while (message := sub.receive(timeout_ms=timeout_ms)) is not None:
        got.append(message)
    return got


def test_continuity_gaps_restarts_and_malformed_messages_over_real_sockets(caplog):
    with Publisher("tcp://127.0.0.1:*", heartbeat=False) as pub, \
            Subscriber(pub.endpoint, heartbeat=False) as sub:
        n = handshake(pub, sub)
        base = sub.stats.messages
        block = np.arange(10, dtype=np.float32)
        sent = [
            encode_data(n + 1, "rig", 0, "A", 0, 40000.0, block),       # start of channel 0
            encode_data(n + 2, "rig", 1, "B", 0, 40000.0, block),       # start of channel 1
            encode_data(n + 3, "rig", 0, "A", 10, 40000.0, block),      # continuous
            [b"DATA\x00", b"{broken", bytes(8)],                        # malformed: json
            encode_data(n + 7, "rig", 1, "B", 10, 40000.0, block),      # messages n+4..n+6 lost; ch 1 continuous
            encode_data(n + 8, "rig", 0, "A", 50, 40000.0, block),      # ch 0: 30 samples missing
            encode_data(n + 9, "rig", 0, "A", 60, 40000.0, block)[:2] + [bytes(7)],  # malformed: payload
            [b"DATA", json.dumps({"message_no": 1, "type": "data", "content": {}}).encode(), b""],  # legacy
            encode_ttl(n + 9, "rig", 100, 55, 1, 1, 2),                 # TTL event
            encode_data(n + 10, "rig", 1, "B", 20, 20000.0, block),     # ch 1: new sample rate
            encode_data(1, "rig", 0, "A", 0, 40000.0, block),           # acquisition restarts
            encode_data(2, "rig", 0, "A", 10, 40000.0, block),          # continuous in the new acquisition
            encode_data(6, "rig", 1, "B", 0, 40000.0, block),           # 3 lost; ch 1 starts afresh
        ]
        with caplog.at_level(logging.WARNING, logger="raphe.streamer"):
            for frames in sent:
                pub.send_frames(frames)
            got = drain(sub)
        data = [m for m in got if isinstance(m, Received)]
        assert [(m.block.channel_num, m.block.sample_num, m.continuity) for m in data] == [
            (0, 0, Continuity.START), (1, 0, Continuity.START), (0, 10, Continuity.CONTINUOUS),
            (1, 10, Continuity.CONTINUOUS), (0, 50, Continuity.GAP), (1, 20, Continuity.START),
            (0, 0, Continuity.START), (0, 10, Continuity.CONTINUOUS), (1, 0, Continuity.START),
        ]
        assert [type(m) for m in got].count(TTLEvent) == 1
        stats = sub.stats
        assert stats.messages - base == len(sent)
        assert stats.lost_messages == 3 + 3
        assert stats.acquisitions == 2
        assert dict(stats.malformed) == {"json": 1, "payload_size": 1, "legacy": 1}
        a, b = stats.channels[("rig", 0)], stats.channels[("rig", 1)]
        assert (a.samples, a.blocks, a.gaps, a.lost_samples) == (50, 5, 1, 30)
        assert (b.gaps, b.rate_changes, b.sample_rate) == (0, 1, 40000.0)
        # Each kind of malformed message is logged once, the legacy one with a clear explanation.
        assert sum("GUI 0.4/0.5" in r.getMessage() for r in caplog.records) == 1


def test_malformed_messages_never_stop_the_subscriber():
    rng = np.random.default_rng(0)
    with Publisher("tcp://127.0.0.1:*", heartbeat=False) as pub, \
            Subscriber(pub.endpoint, heartbeat=False) as sub:
        handshake(pub, sub)
        for i in range(300):
            frames = [bytes(rng.integers(0, 256, rng.integers(0, 40), dtype=np.uint8))
                      for _ in range(rng.integers(1, 5))]
            pub.send_frames(frames)
        last = pub.send_data("rig", 0, "A", 0, 1000.0, np.ones(3, np.float32))
        got = drain(sub)
        assert sub.stats.malformed_total == 300
        assert got[-1].block.message_num == last


def test_slow_subscriber_on_dropping_pub_reports_exactly_the_lost_messages():
    with Publisher("tcp://127.0.0.1:*", heartbeat=False, hwm=10) as pub, \
            Subscriber(pub.endpoint, heartbeat=False, hwm=10) as sub:
        first = handshake(pub, sub) + 1
        block = np.zeros(1000, np.float32)
        for i in range(5000):  # 20 MB while the subscriber does not read: the PUB must drop
            pub.send_data("rig", 0, "A", i * 1000, 40000.0, block)
        got = [m.block.message_num for m in drain(sub)]
        marker = pub.send_data("rig", 0, "A", 5000 * 1000, 40000.0, block)
        got += [m.block.message_num for m in drain(sub)]
        assert got[-1] == marker
        truly_lost = (marker - first + 1) - len(got)
        assert truly_lost > 0
        assert sub.stats.lost_messages == truly_lost
        assert sub.stats.channels[("rig", 0)].lost_samples == truly_lost * 1000


def test_heartbeat_pair_answers_and_never_gates_data():
    with Publisher("tcp://127.0.0.1:*") as pub:
        ctx = zmq.Context()
        req = ctx.socket(zmq.REQ)
        req.connect(pub.heartbeat_endpoint)
        req.send(json.dumps({"application": "test", "type": "heartbeat"}).encode())  # no uuid: accepted
        assert req.poll(5000) and req.recv() == b"heartbeat received"
        req.send(b"not json")
        assert req.poll(5000) and req.recv() == b"JSON message could not be read"
        req.close()
        ctx.term()
        assert pub.heartbeats == 1
        with Subscriber(pub.endpoint) as sub:  # heartbeats on, against a live responder
            handshake(pub, sub)
            deadline = time.monotonic() + 10
            while pub.heartbeats < 2 and time.monotonic() < deadline:
                sub.receive(timeout_ms=50)
            assert pub.heartbeats == 2


def test_a_stray_restart_on_another_stream_and_a_duplicate_stop_nothing():
    """A message_num of 1 on another stream restarts only that stream; the old sequence going on
    shows it was stray, so no delivered message is counted lost; a repeated message_num is a
    duplicate, counted and skipped."""
    with Publisher("tcp://127.0.0.1:*", heartbeat=False) as pub, \
            Subscriber(pub.endpoint, heartbeat=False) as sub:
        n = handshake(pub, sub)
        block = np.arange(10, dtype=np.float32)
        sent = [encode_data(n + 1 + k, "rig", 0, "A", 10 * k, 40000.0, block) for k in range(5)]
        sent.append(encode_data(1, "other", 0, "X", 0, 40000.0, block))           # stray: another stream
        sent += [encode_data(n + 6 + k, "rig", 0, "A", 50 + 10 * k, 40000.0, block) for k in range(5)]
        sent.append(encode_data(n + 10, "rig", 0, "A", 90, 40000.0, block))       # duplicate of the last
        sent.append(encode_data(n + 11, "rig", 0, "A", 100, 40000.0, block))
        lost_before, acquisitions_before = sub.stats.lost_messages, sub.stats.acquisitions
        for frames in sent:
            pub.send_frames(frames)
        got = [m for m in drain(sub) if isinstance(m, Received)]
        rig = [m for m in got if m.block.stream == "rig"]
        assert [m.block.sample_num for m in rig] == list(range(0, 110, 10))
        assert [m.continuity for m in rig[1:]] == [Continuity.CONTINUOUS] * 10
        assert sub.stats.duplicates == 1
        assert sub.stats.lost_messages == lost_before
        assert sub.stats.acquisitions == acquisitions_before


def test_a_restart_after_a_short_acquisition_is_a_restart_not_a_duplicate():
    """message_num 1 again, while the first acquisition's 1 is still among the recent numbers, is the
    counter starting again; a repeat inside the new acquisition is still a duplicate."""
    with Publisher("tcp://127.0.0.1:*", heartbeat=False) as pub, \
            Subscriber(pub.endpoint, heartbeat=False) as sub:
        handshake(pub, sub)
        block = np.arange(10, dtype=np.float32)
        sent = [encode_data(1, "rig", 0, "A", 0, 40000.0, block), encode_data(2, "rig", 0, "A", 10, 40000.0, block),
                encode_data(1, "rig", 0, "A", 0, 40000.0, block), encode_data(2, "rig", 0, "A", 10, 40000.0, block),
                encode_data(2, "rig", 0, "A", 10, 40000.0, block), encode_data(3, "rig", 0, "A", 20, 40000.0, block)]
        acquisitions_before = sub.stats.acquisitions
        for frames in sent:
            pub.send_frames(frames)
        rig = [m for m in drain(sub) if isinstance(m, Received)]
        assert [(m.block.sample_num, m.continuity) for m in rig] == [
            (0, Continuity.START), (10, Continuity.CONTINUOUS), (0, Continuity.START),
            (10, Continuity.CONTINUOUS), (20, Continuity.CONTINUOUS)]
        assert sub.stats.acquisitions == acquisitions_before + 2 and sub.stats.duplicates == 1
