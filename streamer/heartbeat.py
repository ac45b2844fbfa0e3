"""The heartbeat pair of the ZMQ Interface: a REP socket on the data port + 1 and a REQ client.

Heartbeats never gate data: the publisher sends whether or not anyone beats, and a subscriber whose
heartbeat goes unanswered keeps receiving. Beside a CURVE-secured data socket the heartbeat is
secured with the same key pair, so an unauthenticated client gets no answer; both sockets refuse
a frame larger than a heartbeat (``ZMQ_MAXMSGSIZE``) by dropping the connection before it is
buffered.
"""

from __future__ import annotations

import threading
import time
import uuid
from urllib.parse import urlsplit

import orjson
import zmq

from .security import Curve, connect_securely, serve_securely

HEARTBEAT_INTERVAL_S = 2.0
REPLY_OK = b"heartbeat received"
REPLY_BAD = b"JSON message could not be read"
# a heartbeat and its reply are a few dozen bytes; anything larger is not one
HEARTBEAT_BYTES = 4096


def heartbeat_endpoint(data_endpoint: str) -> str | None:
    """``tcp://host:port`` -> ``tcp://host:port+1``; None for endpoints without a numeric TCP port."""
    parts = urlsplit(data_endpoint)
    if parts.scheme != "tcp" or parts.port is None:
        return None
    return f"tcp://{parts.hostname}:{parts.port + 1}"


def is_heartbeat(raw: bytes) -> bool:
    if len(raw) > HEARTBEAT_BYTES:
        return False
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(message, dict) and message.get("type") == "heartbeat" and "application" in message


class HeartbeatServer:
    """Answers heartbeats on a bound REP socket from a background thread until closed; with
    ``curve``, only to clients that pass CURVE (the context's authenticator decides which)."""

    def __init__(self, context: zmq.Context, endpoint: str, curve: Curve | None = None):
        self._socket = context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, HEARTBEAT_BYTES)
        try:
            if curve is not None:
                serve_securely(self._socket, curve)
            self._socket.bind(endpoint)
        except Exception:
            self._socket.close()
            raise
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="raphe-heartbeat", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._socket.poll(100):
                continue
            ok = is_heartbeat(self._socket.recv())
            self.beats += ok
            self._socket.send(REPLY_OK if ok else REPLY_BAD)
        self._socket.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class HeartbeatClient:
    """Sends a heartbeat every two seconds from the receiving loop; never blocks it.

    A REQ socket that got no reply cannot send again, so an unanswered request is abandoned by
    replacing the socket (the "lazy pirate" pattern) before the next beat.
    """

    def __init__(self, context: zmq.Context, endpoint: str, application: str = "raphe",
                 curve: Curve | None = None):
        self._context = context
        self._endpoint = endpoint
        self._curve = curve
        self._request = orjson.dumps({"application": application, "uuid": str(uuid.uuid4()), "type": "heartbeat"})
        self._socket: zmq.Socket | None = None
        self._waiting = False
        self._last_sent = float("-inf")

    def tick(self) -> None:
        if self._socket is not None and self._waiting and self._socket.poll(0):
            self._socket.recv()
            self._waiting = False
        now = time.monotonic()
        if now - self._last_sent < HEARTBEAT_INTERVAL_S:
            return
        if self._socket is None or self._waiting:
            self._reconnect()
        self._last_sent = now
        try:
            self._socket.send(self._request, zmq.NOBLOCK)
        except zmq.Again:
            return
        self._waiting = True

    def _reconnect(self) -> None:
        if self._socket is not None:
            self._socket.close(0)
        self._socket = self._context.socket(zmq.REQ)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, HEARTBEAT_BYTES)
        if self._curve is not None:
            connect_securely(self._socket, self._curve)
        self._socket.connect(self._endpoint)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None
