"""Hostile or unlucky input on the wire, over real loopback sockets: messages nested too deep, stray
counters, frames too large, clients without the key of a CURVE-secured publisher (issue 23)."""

from __future__ import annotations

import json
import threading

import numpy as np
import orjson
import pytest
import zmq

from raphe.streamer.protocol import (
    DEFAULT_LIMITS, MalformedMessage, decode, encode_block, encode_data, encode_ttl, nesting_depth,
)
from raphe.streamer.publisher import EndpointError, Publisher
from raphe.streamer.security import Curve, make_keys
from raphe.streamer.subscriber import MAX_LOST_MESSAGES, Continuity, Received, Subscriber
from tests.helpers import assert_one_line_error, handshake, run_raphe

BLOCK = np.arange(10, dtype=np.float32)


def drain(sub: Subscriber, timeout_ms: int = 300) -> list:
    got = []
    while (message := sub.receive(timeout_ms=timeout_ms)) is not None:
        got.append(message)
    return got


def nested_in_content(frames: list[bytes], deep: bytes) -> list[bytes]:
    header = orjson.loads(frames[1])
    header["content"]["extra"] = orjson.Fragment(deep)
    return [frames[0], orjson.dumps(header), frames[2]]


DEEP_OBJECT = b"{" + b'"a":{' * 1000 + b"}" * 1001
DEEP_LIST = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize("frames", [
    [b"DATA\x00", DEEP_OBJECT, b""],
    nested_in_content(encode_data(1, "rig", 0, "A", 0, 40000.0, BLOCK), DEEP_LIST),
    nested_in_content(encode_ttl(1, "rig", 100, 5, 1, 1, 2), DEEP_LIST),
    nested_in_content(encode_block(1, "rig", 0, 40000.0, np.zeros((2, 5))), DEEP_LIST),
    [b"EVENT\x00", DEEP_OBJECT, b""],
    [b"RAPHE_BLOCK\x00", b'{"content":' + DEEP_LIST + b"}", b""],
], ids=["data header 1,000 deep", "data content list 5,000 deep", "event content", "packed block content",
        "event header", "packed header"])
def test_a_deep_message_is_malformed_too_deep_never_a_recursion_error(frames):
    with pytest.raises(MalformedMessage) as caught:
        decode(frames)
    assert caught.value.kind == "too_deep"


def test_nesting_depth_counts_brackets_outside_strings_only():
    assert nesting_depth(b'{"a":"[[[[{{{{","b":[1]}', 0) == 2
    assert nesting_depth(b'{"a":"\\\\","b":[[1]]}', 0) == 3  # an escaped backslash ends nothing
    assert nesting_depth(b'{"a":"\\"[[[[[","b":1}', 0) == 1  # an escaped quote does not end the string
    assert nesting_depth(b"[" * 20 + b"]" * 20, 0) == 20
    # a real header has fewer brackets than the limit: settled by counting, below the limit
    assert nesting_depth(encode_block(1, "rig", 0, 40000.0, np.zeros((2, 5)))[1], DEFAULT_LIMITS.depth) \
        <= DEFAULT_LIMITS.depth


def test_deep_messages_on_the_wire_are_counted_and_the_subscriber_goes_on():
    with Publisher("tcp://127.0.0.1:*", heartbeat=False) as pub, \
            Subscriber(pub.endpoint, heartbeat=False) as sub:
        n = handshake(pub, sub)
        pub.send_frames([b"DATA\x00", DEEP_OBJECT, b""])
        pub.send_frames(nested_in_content(encode_data(n + 1, "rig", 0, "A", 0, 40000.0, BLOCK), DEEP_LIST))
        pub.send_frames(encode_data(n + 1, "rig", 0, "A", 0, 40000.0, BLOCK))
        got = drain(sub)
        assert [m.block.message_num for m in got] == [n + 1]
        assert dict(sub.stats.malformed) == {"too_deep": 2}


def test_a_stray_larger_message_num_on_another_stream_restarts_nothing_and_loses_nothing():
    """Issue 23, item 5: one message of another stream claiming a much later message_num, then the
    good stream going on: no restart of the good stream's channel, no lost message, no acquisition."""
    with Publisher("tcp://127.0.0.1:*", heartbeat=False) as pub, \
            Subscriber(pub.endpoint, heartbeat=False) as sub:
        n = handshake(pub, sub)
        lost, acquisitions = sub.stats.lost_messages, sub.stats.acquisitions
        sent = [encode_data(n + 1 + k, "rig", 0, "A", 10 * k, 40000.0, BLOCK) for k in range(5)]
        sent.append(encode_data(n + 1400, "other", 0, "X", 0, 40000.0, BLOCK))       # stray
        sent += [encode_data(n + 6 + k, "rig", 0, "A", 50 + 10 * k, 40000.0, BLOCK) for k in range(5)]
        for frames in sent:
            pub.send_frames(frames)
        rig = [m for m in drain(sub) if isinstance(m, Received) and m.block.stream == "rig"]
        assert [m.block.sample_num for m in rig] == list(range(0, 100, 10))
        assert [m.continuity for m in rig[1:]] == [Continuity.CONTINUOUS] * 9
        assert (sub.stats.lost_messages, sub.stats.acquisitions) == (lost, acquisitions)


def test_forged_jumps_on_the_good_channel_invent_no_loss():
    """Three stray messages on the good channel itself, each claiming a far message_num and a
    sample_num of 2**61: once the channel goes on where it was, nothing is counted lost."""
    with Publisher("tcp://127.0.0.1:*", heartbeat=False) as pub, \
            Subscriber(pub.endpoint, heartbeat=False) as sub:
        n = handshake(pub, sub)
        lost = sub.stats.lost_messages
        sent, num, sample = [], n, 0
        for forged in range(3):
            for _ in range(3):
                num += 1
                sent.append(encode_data(num, "rig", 0, "A", sample, 40000.0, BLOCK))
                sample += 10
            sent.append(encode_data(num + 2**40 + forged, "rig", 0, "A", 2**61, 40000.0, BLOCK))
        num += 1
        sent.append(encode_data(num, "rig", 0, "A", sample, 40000.0, BLOCK))
        for frames in sent:
            pub.send_frames(frames)
        rig = [m for m in drain(sub) if isinstance(m, Received) and m.block.stream == "rig"]
        assert len(rig) == len(sent)
        assert Continuity.START not in [m.continuity for m in rig[1:]]
        channel = sub.stats.channels[("rig", 0)]
        assert channel.lost_samples == 0
        assert sub.stats.lost_messages == lost


def test_a_confirmed_jump_counts_at_most_a_plausible_loss():
    """A jump the next message confirms is a loss, but one claim counts at most MAX_LOST_MESSAGES."""
    with Publisher("tcp://127.0.0.1:*", heartbeat=False) as pub, \
            Subscriber(pub.endpoint, heartbeat=False) as sub:
        n = handshake(pub, sub)
        lost = sub.stats.lost_messages
        for k, num in enumerate([n + 1, n + 2**50, n + 2**50 + 1, n + 2**50 + 5]):
            pub.send_frames(encode_data(num, "rig", 0, "A", 10 * k, 40000.0, BLOCK))
        assert len(drain(sub)) == 4
        assert sub.stats.lost_messages - lost == MAX_LOST_MESSAGES + 3


def test_a_frame_larger_than_any_legal_message_is_refused_by_the_socket():
    """Issue 23, item 9: ZMQ_MAXMSGSIZE on the subscriber: a 20 MB frame (the largest legal DATA
    message is 16 MB) never reaches the decoder: ZeroMQ drops the connection for good, and the
    subscriber counts that and connects again."""
    assert DEFAULT_LIMITS.message_bytes < 20_000_000
    ctx = zmq.Context()
    raw = ctx.socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.bind("tcp://127.0.0.1:*")
    endpoint = raw.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        with Subscriber(endpoint, heartbeat=False) as sub:
            got = None
            for i in range(1, 400):  # the slow joiner, then again after each reconnection
                if i == 5:
                    raw.send_multipart([b"DATA\x00", b"{}", bytes(20_000_000)])
                raw.send_multipart(encode_data(i, "rig", 0, "A", i, 1000.0, np.zeros(1, np.float32)))
                got = sub.receive(timeout_ms=20)
                if got is not None and got.block.message_num > 5:
                    break
            assert got is not None and got.block.message_num > 5
            assert dict(sub.stats.malformed) == {"protocol": 1}  # the large frame was never received
    finally:
        raw.close(0)
        ctx.term()


def test_the_heartbeat_refuses_a_large_frame_and_still_answers():
    with Publisher("tcp://127.0.0.1:*") as pub:
        ctx = zmq.Context()
        big = ctx.socket(zmq.REQ)
        big.setsockopt(zmq.LINGER, 0)
        big.connect(pub.heartbeat_endpoint)
        big.send(json.dumps({"application": "x" * 1_000_000, "type": "heartbeat"}).encode())
        assert not big.poll(1000)  # no answer: the connection was dropped before the frame was read
        big.close(0)
        good = ctx.socket(zmq.REQ)
        good.setsockopt(zmq.LINGER, 0)
        good.connect(pub.heartbeat_endpoint)
        good.send(json.dumps({"application": "test", "type": "heartbeat"}).encode())
        assert good.poll(5000) and good.recv() == b"heartbeat received"
        good.close(0)
        ctx.term()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    for name in ("rig", "raphe"):
        make_keys(root, name)
    return root


def test_the_heartbeat_of_a_curve_publisher_answers_authenticated_clients_only(keys):
    rig = Curve(keys / "rig.key_secret")
    with Publisher("tcp://127.0.0.1:*", curve=rig) as pub:
        beat = json.dumps({"application": "test", "type": "heartbeat"}).encode()
        ctx = zmq.Context()
        plain = ctx.socket(zmq.REQ)
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(pub.heartbeat_endpoint)
        plain.send(beat)
        assert not plain.poll(1000)
        plain.close(0)
        secure = ctx.socket(zmq.REQ)
        secure.setsockopt(zmq.LINGER, 0)
        public, secret = Curve(keys / "raphe.key_secret").keypair()
        secure.curve_secretkey, secure.curve_publickey = secret, public
        secure.curve_serverkey = rig.keypair()[0]
        secure.connect(pub.heartbeat_endpoint)
        secure.send(beat)
        assert secure.poll(5000) and secure.recv() == b"heartbeat received"
        secure.close(0)
        ctx.term()
        assert pub.heartbeats == 1


def test_a_plain_client_of_a_curve_publisher_is_refused_in_one_line(keys):
    """Issue 23, item 8: without the rig's key, the subscriber says so instead of receiving nothing."""
    with Publisher("tcp://127.0.0.1:*", heartbeat=False, curve=Curve(keys / "rig.key_secret")) as pub, \
            Subscriber(pub.endpoint, heartbeat=False) as sub:
        with pytest.raises(EndpointError, match="it serves CURVE"):
            for i in range(100):
                pub.send_data("probe", 0, "p", i, 1000.0, np.zeros(1, np.float32))
                assert sub.receive(timeout_ms=50) is None


def test_listen_without_the_key_of_a_curve_replay_exits_2_in_one_line(keys):
    with Publisher("tcp://127.0.0.1:*", curve=Curve(keys / "rig.key_secret")) as pub:
        stop = threading.Event()

        def feed():
            while not stop.wait(0.01):
                pub.send_data("rig", 0, "A", 0, 1000.0, np.zeros(10, np.float32))

        feeder = threading.Thread(target=feed)
        feeder.start()
        try:
            result = run_raphe("listen", "--connect", pub.endpoint, "--duration", "20", timeout=60)
        finally:
            stop.set()
            feeder.join()
    assert_one_line_error(result, "it serves CURVE")
