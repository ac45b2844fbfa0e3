"""Publishing DATA and EVENT messages on a bound PUB socket, or losslessly on XPUB.

The ordinary mode is the rig's: a PUB socket that drops messages for a subscriber that falls more
than ``hwm`` messages behind. The lossless mode, for replays into raphe's own consumers, binds an
XPUB socket with ``XPUB_NODROP``, so a full queue makes the publisher wait instead of dropping; plain
SUB clients connect to it unchanged. What a client sends to either (its subscriptions) is capped in
size (``ZMQ_MAXMSGSIZE``), and with CURVE the heartbeat beside the data socket is secured too.
"""

from __future__ import annotations

import errno
import time

import numpy as np
import zmq

from raphe.core.errors import RapheError
from raphe.core.specs import DATA_ENDPOINT

from .heartbeat import HeartbeatServer, heartbeat_endpoint
from .protocol import encode_block, encode_data
from .security import Curve, authenticator, serve_securely

LOSSLESS_LINGER_MS = 60_000
# clients send a publisher only their subscriptions (raphe's: one byte); a larger frame drops the connection
SUBSCRIPTION_BYTES = 4096


# a wildcard data port whose next port (the heartbeat's) is taken is picked again, this many times at most
PORT_PICKS = 20


class EndpointError(RapheError):
    """An endpoint that cannot be bound or connected."""


def bind(socket: zmq.Socket, endpoint: str) -> str:
    """Bind and return the resolved endpoint; a clear :class:`EndpointError` instead of a ZMQError."""
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise EndpointError(f"{endpoint} is already in use; choose another port with --endpoint") from None
        raise EndpointError(f"cannot bind {endpoint}: {exc.strerror}") from None
    return socket.getsockopt_string(zmq.LAST_ENDPOINT)


def picks_port(endpoint: str) -> bool:
    """True where ``endpoint`` leaves its TCP port to the system (``*`` or ``0``)."""
    return endpoint.startswith("tcp://") and endpoint.rsplit(":", 1)[-1] in ("*", "0")


class Publisher:
    """A bound data socket with its heartbeat responder and the publisher's ``message_num`` counter.

    Parameters
    ----------
    endpoint : str
        Where to bind, default ``tcp://127.0.0.1:5556``. Port ``*`` picks a free port.
    lossless : bool
        XPUB with ``XPUB_NODROP``: wait for slow subscribers instead of dropping (default False).
    heartbeat : bool
        Answer heartbeats on the data port + 1 (default True; TCP endpoints only).
    hwm : int
        Send high-water mark in messages (default 1000, as ZeroMQ's).
    curve : Curve or None
        Serve the data socket and the heartbeat with CURVE: only clients with admitted keys receive
        data or an answer (default None).
    """

    def __init__(self, endpoint: str = DATA_ENDPOINT, *, lossless: bool = False, heartbeat: bool = True,
                 hwm: int = 1000, curve: Curve | None = None):
        self.lossless = lossless
        self.subscriptions = 0
        self._message_num = 0
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.XPUB if lossless else zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.MAXMSGSIZE, SUBSCRIPTION_BYTES)
        self._socket.setsockopt(zmq.LINGER, LOSSLESS_LINGER_MS if lossless else 0)
        if lossless:
            self._socket.setsockopt(zmq.XPUB_NODROP, 1)
            # Every subscriber's subscription is reported, not only the first of each topic.
            self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)
        self._heartbeat: HeartbeatServer | None = None
        self._authenticator = None
        try:
            if curve is not None:
                self._authenticator = authenticator(self._context, curve)
                serve_securely(self._socket, curve)
            self.endpoint = bind(self._socket, endpoint)
            if heartbeat:
                self._bind_heartbeat(endpoint, curve)
        except RapheError:
            self.close()
            raise

    def _bind_heartbeat(self, requested: str, curve: Curve | None) -> None:
        """Bind the heartbeat on the data port + 1. Where the port was left to the system and the
        next one is taken, move the data socket to another free port and try again."""
        # ports whose neighbour was taken stay bound until a pair is found, so none is handed back
        passed_over: list[str] = []
        try:
            for _ in range(PORT_PICKS):
                hb = heartbeat_endpoint(self.endpoint)
                if hb is None:
                    return
                try:
                    self._heartbeat = HeartbeatServer(self._context, hb, curve)
                    return
                except zmq.ZMQError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise EndpointError(f"cannot bind the heartbeat socket {hb}: {exc.strerror}") from None
                    if not picks_port(requested):
                        raise EndpointError(f"{hb} (the heartbeat, on the data port + 1) is already in use; "
                                            "choose another port with --endpoint") from None
                passed_over.append(self.endpoint)
                self.endpoint = bind(self._socket, requested)
            raise EndpointError(f"no free pair of ports (data, and heartbeat on the next) for {requested} "
                                f"in {PORT_PICKS} picks")
        finally:
            for endpoint in passed_over:
                self._socket.unbind(endpoint)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def heartbeat_endpoint(self) -> str | None:
        return None if self._heartbeat is None else self._heartbeat.endpoint

    @property
    def heartbeats(self) -> int:
        return 0 if self._heartbeat is None else self._heartbeat.beats

    @property
    def message_num(self) -> int:
        """The ``message_num`` of the last message sent (0 before the first)."""
        return self._message_num

    def new_acquisition(self) -> None:
        """Start ``message_num`` again at 1, as the GUI does when acquisition restarts."""
        self._message_num = 0

    def _next_message_num(self) -> int:
        self._message_num += 1
        return self._message_num

    def send_data(self, stream: str, channel_num: int, channel_name: str, sample_num: int,
                  sample_rate: float, samples: np.ndarray, units: str | None = None) -> int:
        """Publish one channel's block; return its ``message_num``."""
        num = self._next_message_num()
        self.send_frames(encode_data(num, stream, channel_num, channel_name, sample_num, sample_rate,
                                     samples, units))
        return num

    def send_block(self, stream: str, sample_num: int, sample_rate: float, samples: np.ndarray,
                   channel_nums: list[int], channel_names: list[str], units: str | None = None) -> int:
        """Publish every channel of a stream over one block as one packed BLOCK message (raphe's own
        format, not Open Ephys's); return its ``message_num``."""
        num = self._next_message_num()
        self.send_frames(encode_block(num, stream, sample_num, sample_rate, samples, channel_nums, channel_names,
                                      units))
        return num

    def send_frames(self, frames: list[bytes]) -> None:
        """Send prepared frames as they are (tests use this to put malformed messages on the wire)."""
        if not self.lossless:
            self._socket.send_multipart(frames)
            return
        while True:
            try:
                self._socket.send_multipart(frames, zmq.NOBLOCK)
                return
            except zmq.Again:
                # XPUB_NODROP refuses the whole message while any subscriber's queue is full.
                self._socket.poll(50, zmq.POLLOUT)
                self._drain_subscriptions()

    def _drain_subscriptions(self) -> None:
        while self._socket.poll(0, zmq.POLLIN):
            message = self._socket.recv()
            if message[:1] == b"\x01":
                self.subscriptions += 1

    def wait_for_subscribers(self, count: int = 1, timeout_s: float | None = None) -> bool:
        """Lossless mode only: wait until ``count`` subscriptions have arrived; False on timeout."""
        if not self.lossless:
            raise ValueError("only an XPUB (lossless) publisher sees its subscribers")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.subscriptions < count:
            remaining_ms = 100 if deadline is None else int(max(0.0, deadline - time.monotonic()) * 1000)
            if deadline is not None and remaining_ms == 0:
                return False
            if self._socket.poll(min(100, remaining_ms), zmq.POLLIN):
                self._drain_subscriptions()
        return True

    def close(self) -> None:
        """Close the sockets, then the context; lossless mode first flushes what is queued."""
        if self._heartbeat is not None:
            self._heartbeat.close()
            self._heartbeat = None
        if not self._socket.closed:
            self._socket.close()
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()
