"""One POSTERIOR message from the service to one client: through raphe's outputs (each subscriber
served by a socket of its own, relayed on loopback, so that one stalled client costs no other its
messages) against a plain ZeroMQ PUB socket, in the same run, back to back and after the pauses a
rig's slow cells give (the relay's threads then wake from sleep)."""

from __future__ import annotations

import time

import pytest
import zmq

from raphe.outputs.wire import Outputs

from .conftest import QUICK, record_with_p99

CONTENT = b'{"update":' + b"1" * 900 + b"}"  # about the size of a POSTERIOR header
EVENT = b'{"event_type":"spike"}'


def connected(send, client: zmq.Socket) -> None:
    """Send until the client hears (a SUB socket joins after its subscription reached the publisher),
    then empty its queue."""
    while True:
        send()
        if client.poll(50):
            while client.poll(10):
                client.recv_multipart()
            return


@pytest.mark.parametrize("pause_ms", [0, 20])
@pytest.mark.parametrize("route", ["raphe's outputs", "plain PUB"])
def test_one_posterior_to_one_client(benchmark, route, pause_ms):
    context = zmq.Context()
    client = context.socket(zmq.SUB)
    client.setsockopt(zmq.LINGER, 0)
    client.setsockopt(zmq.SUBSCRIBE, b"")
    outputs = pub = None
    try:
        if route == "plain PUB":
            pub = context.socket(zmq.PUB)
            pub.setsockopt(zmq.LINGER, 0)
            pub.bind("tcp://127.0.0.1:*")
            client.connect(pub.getsockopt_string(zmq.LAST_ENDPOINT))

            def send() -> None:
                pub.send_multipart([b"POSTERIOR", CONTENT])
        else:
            outputs = Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
            client.connect(outputs.posterior_endpoint)

            def send() -> None:
                outputs.publish_serialized(CONTENT, EVENT)
        connected(send, client)

        def once() -> None:
            send()
            client.recv_multipart()

        rounds = 20 if QUICK else (300 if pause_ms else 3000)
        benchmark.pedantic(once, setup=(lambda: time.sleep(pause_ms / 1000)) if pause_ms else None,
                           rounds=rounds, warmup_rounds=10, iterations=1)
    finally:
        client.close(0)
        if pub is not None:
            pub.close(0)
        if outputs is not None:
            outputs.close()
        context.term()
    label = f"one POSTERIOR to one client, {route}, {'back to back' if not pause_ms else f'after {pause_ms} ms'}"
    record_with_p99(benchmark, label, "messages/s")
