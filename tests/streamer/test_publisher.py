"""Where the publisher binds: the heartbeat always on the data port + 1, also when the port is left
to the system and its neighbour is taken (a CI run once lost a test to that)."""

from __future__ import annotations

import math
import random
import resource
import socket
from pathlib import Path

import pytest
import zmq

from raphe.streamer.publisher import EndpointError, Publisher


def local_ports() -> range:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def hold(ports) -> list[socket.socket]:
    held = []
    for port in ports:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:  # someone else has it: taken either way
            s.close()
            continue
        held.append(s)
    return held


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def test_a_wildcard_port_is_picked_again_until_its_neighbour_is_free_for_the_heartbeat():
    ports = local_ports()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        share = min(len(ports) // 2, hard - 256)
        held = hold(random.Random(7).sample(ports, share))
        taken = len(held) / len(ports)
        # enough publishers that, with this share of the ports taken, all of them finding their first
        # pick's neighbour free (so that picking again is never needed) happens once in 1,000 runs
        publishers = math.ceil(math.log(1e-3) / math.log(1 - taken))
        try:
            for _ in range(publishers):
                with Publisher("tcp://127.0.0.1:*") as pub:
                    assert port_of(pub.heartbeat_endpoint) == port_of(pub.endpoint) + 1
        finally:
            for s in held:
                s.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_named_port_whose_neighbour_is_taken_is_refused_in_one_line():
    with Publisher("tcp://127.0.0.1:*", heartbeat=False) as first:
        port = port_of(first.endpoint)
    held = hold([port + 1])
    try:
        with pytest.raises(EndpointError, match=rf"^tcp://127.0.0.1:{port + 1} \(the heartbeat, on the data port \+ 1\) "
                                                 r"is already in use; choose another port with --endpoint$"):
            Publisher(f"tcp://127.0.0.1:{port}")
        ctx = zmq.Context()
        probe = ctx.socket(zmq.PUB)
        probe.bind(f"tcp://127.0.0.1:{port}")  # the refused publisher let its data port go
        probe.close(0)
        ctx.term()
    finally:
        for s in held:
            s.close()
