"""raphe's own outputs (wire-protocol.md, "raphe's outputs"): POSTERIOR messages and Event Broadcaster
spike events, each on its own PUB socket, never on the data socket.

POSTERIOR: two frames, the envelope ``POSTERIOR`` (no NUL) and a JSON header; there is no payload
frame. Events: two frames, a little-endian uint16 type code (1 = spike) and a JSON object, which the
official ``open_ephys.streaming.EventListener`` consumes unchanged.
"""

from __future__ import annotations

import json
import struct
import time

import zmq

from .publisher import EndpointError

POSTERIOR_ENVELOPE = b"POSTERIOR"
POSTERIOR_SCHEMA_VERSION = 1
SPIKE_EVENT = struct.pack("<H", 1)
DEFAULT_POSTERIOR_ENDPOINT = "tcp://127.0.0.1:5570"
DEFAULT_EVENTS_ENDPOINT = "tcp://127.0.0.1:5571"


def encode_posterior(message_num: int, content: dict) -> list[bytes]:
    header = {"message_num": message_num, "type": "posterior", "schema_version": POSTERIOR_SCHEMA_VERSION,
              "timestamp": int(time.time() * 1000), "content": content}
    return [POSTERIOR_ENVELOPE, json.dumps(header, separators=(",", ":")).encode()]


def decode_posterior(frames: list[bytes]) -> dict:
    """The header of a POSTERIOR message (for clients and tests); ValueError if it is not one."""
    if len(frames) != 2 or frames[0] != POSTERIOR_ENVELOPE:
        raise ValueError("not a POSTERIOR message")
    header = json.loads(frames[1])
    if header.get("type") != "posterior":
        raise ValueError("not a POSTERIOR message")
    return header


def encode_spike_event(event: dict) -> list[bytes]:
    return [SPIKE_EVENT, json.dumps({"event_type": "spike", **event}, separators=(",", ":")).encode()]


class Outputs:
    """The two output PUB sockets, bound at construction and closed by ``close()``.

    Parameters
    ----------
    posterior_endpoint : where POSTERIOR messages go (default tcp://127.0.0.1:5570).
    events_endpoint : where Event Broadcaster spike events go (default tcp://127.0.0.1:5571).
    A ``*`` port binds an ephemeral one; the bound endpoints are in ``posterior_endpoint`` and
    ``events_endpoint`` afterwards.
    """

    def __init__(self, posterior_endpoint: str = DEFAULT_POSTERIOR_ENDPOINT,
                 events_endpoint: str = DEFAULT_EVENTS_ENDPOINT):
        self._context = zmq.Context()
        self._sockets: list[zmq.Socket] = []
        self.message_num = 0
        try:
            self._posterior, self.posterior_endpoint = self._bind(posterior_endpoint)
            self._events, self.events_endpoint = self._bind(events_endpoint)
        except EndpointError:
            self.close()
            raise

    def _bind(self, endpoint: str) -> tuple[zmq.Socket, str]:
        socket = self._context.socket(zmq.PUB)
        socket.setsockopt(zmq.LINGER, 1000)
        self._sockets.append(socket)
        try:
            socket.bind(endpoint)
        except zmq.ZMQError as exc:
            raise EndpointError(f"cannot bind {endpoint}: {exc.strerror}") from None
        return socket, socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def publish(self, posterior: dict, spike_event: dict) -> None:
        self.message_num += 1
        self._posterior.send_multipart(encode_posterior(self.message_num, posterior))
        self._events.send_multipart(encode_spike_event(spike_event))

    def close(self) -> None:
        for socket in self._sockets:
            socket.close()
        self._context.term()
