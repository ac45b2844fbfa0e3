"""A validating subscriber: receives, decodes, checks continuity, counts what is wrong, never stops.

Continuity is checked twice, as the wire protocol asks: ``message_num`` must be contiguous over the
publisher's messages (a hole is lost messages), and per (stream, channel_num) each block must start
where the previous one ended (a jump is a gap). ``message_num`` going back is a new acquisition.
Every DATA block is handed on with its :class:`Continuity`, so a consumer never stitches samples
across a gap or an acquisition restart.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import zmq

from .heartbeat import HeartbeatClient, heartbeat_endpoint
from .protocol import DataBlock, MalformedMessage, TTLEvent, decode
from .publisher import EndpointError

log = logging.getLogger("raphe.streamer")


class Continuity(enum.Enum):
    """How a block relates to the previous block of its channel."""

    START = "start"  # no history: first block of the channel in this acquisition, or a new sample rate
    CONTINUOUS = "continuous"  # starts exactly where the previous block ended
    GAP = "gap"  # samples are missing before it, or the counter jumped back


@dataclass(slots=True)
class Received:
    """A DATA block as handed on by the subscriber."""

    block: DataBlock
    continuity: Continuity
    samples: np.ndarray  # the block's samples, scaled to ``units``
    units: str | None


@dataclass(slots=True)
class ChannelStats:
    stream: str
    channel_num: int
    channel_name: str
    sample_rate: float
    units: str | None
    samples: int = 0
    blocks: int = 0
    gaps: int = 0
    lost_samples: int = 0
    rate_changes: int = 0
    next_sample_num: int = 0


@dataclass(slots=True)
class StreamStats:
    messages: int = 0
    data_messages: int = 0
    events: int = 0
    lost_messages: int = 0
    acquisitions: int = 0
    malformed: Counter = field(default_factory=Counter)
    channels: dict[tuple[str, int], ChannelStats] = field(default_factory=dict)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())


class Subscriber:
    """Connects a SUB socket to a publisher and yields validated messages.

    Parameters
    ----------
    endpoint : str
        The publisher's data endpoint, e.g. ``tcp://127.0.0.1:5556``.
    heartbeat : bool
        Send a heartbeat to the data port + 1 every 2 s (default True). Unanswered beats are harmless.
    units : str or None
        Units of channels whose header carries none (Open Ephys sends none); default None (unknown).
    scale : float
        Factor applied to the samples of channels whose header carries no units (default 1.0).
    hwm : int
        Receive high-water mark in messages (default 1000, as ZeroMQ's).
    """

    def __init__(self, endpoint: str, *, heartbeat: bool = True, units: str | None = None,
                 scale: float = 1.0, hwm: int = 1000):
        self.endpoint = endpoint
        self.stats = StreamStats()
        self._units = units
        self._scale = np.float32(scale)
        self._last_message_num: int | None = None
        self._logged_kinds: set[str] = set()
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, hwm)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._heartbeat: HeartbeatClient | None = None
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise EndpointError(f"cannot connect to {endpoint}: {exc.strerror}") from None
        hb = heartbeat_endpoint(endpoint) if heartbeat else None
        if hb is not None:
            self._heartbeat = HeartbeatClient(self._context, hb)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def receive(self, timeout_ms: int = 100) -> Received | TTLEvent | None:
        """The next valid message, or None if none arrived within ``timeout_ms``.

        Malformed and legacy messages are counted in ``stats.malformed`` by kind, logged once per
        kind, and skipped: the call goes on waiting for a valid one until the timeout.
        """
        if self._heartbeat is not None:
            self._heartbeat.tick()
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                # Poll only when the queue is empty: one system call less per message under load.
                if not self._socket.poll(timeout_ms):
                    return None
                timeout_ms = 0
                continue
            message = self._accept(frames)
            if message is not None:
                return message

    def wait(self, timeout_ms: int) -> bool:
        """Block until a message is waiting (True) or ``timeout_ms`` passed (False); receives nothing."""
        if self._heartbeat is not None:
            self._heartbeat.tick()
        return bool(self._socket.poll(timeout_ms))

    def _accept(self, frames: list[bytes]) -> Received | TTLEvent | None:
        self.stats.messages += 1
        try:
            message = decode(frames)
        except MalformedMessage as exc:
            self.stats.malformed[exc.kind] += 1
            if exc.kind not in self._logged_kinds:
                self._logged_kinds.add(exc.kind)
                log.warning("skipping malformed message from %s: %s", self.endpoint, exc)
            return None
        self._sequence(message.message_num)
        if isinstance(message, TTLEvent):
            self.stats.events += 1
            return message
        self.stats.data_messages += 1
        return self._continuity(message)

    def _sequence(self, message_num: int) -> None:
        last = self._last_message_num
        self._last_message_num = message_num
        if last is None:
            self.stats.acquisitions = 1
            return
        if message_num == last + 1:
            return
        if message_num <= last:
            # A restart: the counter starts again at 1; if it does not, the first ones were lost.
            self.stats.acquisitions += 1
            self.stats.lost_messages += message_num - 1
            for channel in self.stats.channels.values():
                channel.next_sample_num = -1
            return
        self.stats.lost_messages += message_num - last - 1

    def _continuity(self, block: DataBlock) -> Received:
        key = (block.stream, block.channel_num)
        channel = self.stats.channels.get(key)
        if channel is None:
            channel = ChannelStats(block.stream, block.channel_num, block.channel_name, block.sample_rate,
                                   block.units or self._units, next_sample_num=-1)
            self.stats.channels[key] = channel
        if channel.next_sample_num < 0:
            continuity = Continuity.START
            channel.sample_rate = block.sample_rate
        elif block.sample_rate != channel.sample_rate:
            continuity = Continuity.START
            channel.rate_changes += 1
            channel.sample_rate = block.sample_rate
        elif block.sample_num == channel.next_sample_num:
            continuity = Continuity.CONTINUOUS
        else:
            continuity = Continuity.GAP
            channel.gaps += 1
            channel.lost_samples += max(0, block.sample_num - channel.next_sample_num)
        channel.channel_name = block.channel_name
        channel.next_sample_num = block.sample_num + block.num_samples
        channel.samples += block.num_samples
        channel.blocks += 1
        if block.units is not None:
            return Received(block, continuity, block.samples, block.units)
        samples = block.samples if self._scale == 1 else block.samples * self._scale
        return Received(block, continuity, samples, self._units)

    def close(self) -> None:
        """Close every socket before terminating the context (the other order hangs)."""
        if self._heartbeat is not None:
            self._heartbeat.close()
            self._heartbeat = None
        if not self._socket.closed:
            self._socket.close(0)
        self._context.term()
