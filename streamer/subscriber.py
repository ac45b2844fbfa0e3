"""A validating subscriber: receives, decodes, checks continuity, counts what is wrong, never stops.

Continuity is checked twice, as the wire protocol asks: ``message_num`` must be contiguous over the
publisher's messages (a hole is lost messages), and per (stream, channel_num) each block must start
where the previous one ended (a jump is a gap). ``message_num`` going back is a new acquisition of
the stream whose message it is: the channels of other streams go on. A ``message_num`` seen among
the last ones again is a duplicate, counted and skipped. A drop that the next message does not
follow (the old sequence goes on) was a stray message: it restarted only its own stream, and the
messages around it are not counted as lost.
Every DATA block is handed on with its :class:`Continuity`, so a consumer never stitches samples
across a gap or an acquisition restart.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from .heartbeat import HeartbeatClient, heartbeat_endpoint
from .protocol import DEFAULT_LIMITS, DataBlock, Limits, MalformedMessage, PackedBlock, TTLEvent, decode
from .publisher import EndpointError
from .security import Curve, connect_securely

HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                      | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)

log = logging.getLogger("raphe.streamer")
# pyzmq's flags are enums, and its recv_multipart builds several per message: with plain ints and
# frames received one by one, a DATA message costs 4.5 µs to receive instead of 7 (measured)
NOBLOCK = int(zmq.NOBLOCK)
RCVMORE = int(zmq.RCVMORE)


def receive_frames(socket: zmq.Socket) -> list[bytes]:
    """One multipart message, without waiting (zmq.Again when none is there)."""
    frames = [socket.recv(NOBLOCK)]
    while socket.getsockopt(RCVMORE):
        frames.append(socket.recv(NOBLOCK))
    return frames

# message_nums remembered to recognise a duplicate
RECENT_MESSAGES = 64


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
class ReceivedPacked:
    """A packed block (every channel of a stream over one block) as handed on by the subscriber:
    ``continuity[i]`` and ``samples[i]`` (scaled to ``units``) are those of ``block.channel_nums[i]``."""

    block: PackedBlock
    continuity: list[Continuity]
    samples: np.ndarray
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
    duplicates: int = 0
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
    limits : Limits
        The bounds of a message (default :data:`DEFAULT_LIMITS`); past them a message is malformed.
    curve : Curve or None
        Connect with CURVE to a publisher serving it (default None). A publisher that refuses this
        key makes the next receive raise :class:`EndpointError` with one line saying so.
    """

    def __init__(self, endpoint: str, *, heartbeat: bool = True, units: str | None = None,
                 scale: float = 1.0, hwm: int = 1000, limits: Limits = DEFAULT_LIMITS, curve: Curve | None = None):
        self.endpoint = endpoint
        self.stats = StreamStats()
        self._units = units
        self._limits = limits
        self._scale = np.float32(scale)
        self._last_message_num: int | None = None
        self._packed_layouts: dict[str, tuple[tuple[int, ...], list[ChannelStats]]] = {}
        self._streams: set[str] = set()
        self._recent: deque[int] = deque(maxlen=RECENT_MESSAGES)
        self._before_drop: tuple[int, int, tuple[int, ...]] | None = None  # (last message_num, lost, recent) before a drop
        self._logged_kinds: set[str] = set()
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, hwm)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._heartbeat: HeartbeatClient | None = None
        self._monitor: zmq.Socket | None = None
        try:
            if curve is not None:
                connect_securely(self._socket, curve)
                self._monitor = self._socket.get_monitor_socket(HANDSHAKE_FAILURES)
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

    def _check_handshake(self) -> None:
        if self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            raise EndpointError(f"{self.endpoint} refused raphe's key (CURVE handshake failed, event "
                                f"{event['event']}): give the rig raphe's public key, or raphe the rig's")

    def receive(self, timeout_ms: int = 100) -> Received | TTLEvent | None:
        """The next valid message, or None if none arrived within ``timeout_ms``.

        Malformed and legacy messages are counted in ``stats.malformed`` by kind, logged once per
        kind, and skipped: the call goes on waiting for a valid one until the timeout.
        """
        self._check_handshake()
        if self._heartbeat is not None:
            self._heartbeat.tick()
        while True:
            try:
                frames = receive_frames(self._socket)
            except zmq.Again:
                # Poll only when the queue is empty: one system call less per message under load.
                if not self._socket.poll(timeout_ms):
                    return None
                timeout_ms = 0
                continue
            message = self._accept(frames)
            if message is not None:
                return message

    def receive_batch(self, timeout_ms: int = 100, limit: int = 4096) -> list[Received | TTLEvent]:
        """Every valid message waiting now (at most ``limit``), after waiting up to ``timeout_ms`` for
        the first; an empty list if none came. Malformed messages are counted and skipped, as by
        :meth:`receive`. Draining in one go costs one system call per message and none per wake-up."""
        if self._heartbeat is not None:
            self._heartbeat.tick()
        if not self._socket.poll(timeout_ms):
            return []
        got = []
        socket, accept = self._socket, self._accept
        for _ in range(limit):
            try:
                frames = receive_frames(socket)
            except zmq.Again:
                break
            message = accept(frames)
            if message is not None:
                got.append(message)
        return got

    def wait(self, timeout_ms: int) -> bool:
        """Block until a message is waiting (True) or ``timeout_ms`` passed (False); receives nothing."""
        self._check_handshake()
        if self._heartbeat is not None:
            self._heartbeat.tick()
        return bool(self._socket.poll(timeout_ms))

    def _accept(self, frames: list[bytes]) -> Received | TTLEvent | None:
        self.stats.messages += 1
        try:
            message = decode(frames, self._limits)
            self._within_limits(message)
        except MalformedMessage as exc:
            self.stats.malformed[exc.kind] += 1
            if exc.kind not in self._logged_kinds:
                self._logged_kinds.add(exc.kind)
                log.warning("skipping malformed message from %s: %s", self.endpoint, exc)
            return None
        if not self._sequence(message.message_num, message.stream):
            self.stats.duplicates += 1
            return None
        if isinstance(message, TTLEvent):
            self.stats.events += 1
            return message
        self.stats.data_messages += 1
        if isinstance(message, PackedBlock):
            return self._packed(message)
        return self._continuity(message)

    def _within_limits(self, message) -> None:
        """Refuse a message that would make the subscriber keep more streams or channels than its limits."""
        if isinstance(message, TTLEvent):
            return
        keys = [(message.stream, message.channel_num)] if isinstance(message, DataBlock) else \
            [(message.stream, num) for num in message.channel_nums]
        new = [k for k in keys if k not in self.stats.channels]
        if not new:
            return
        if len(self.stats.channels) + len(new) > self._limits.channels:
            raise MalformedMessage("too_many_channels", f"more than {self._limits.channels:,} channels")
        if message.stream not in self._streams:
            if len(self._streams) >= self._limits.streams:
                raise MalformedMessage("too_many_streams", f"more than {self._limits.streams} streams")
            self._streams.add(message.stream)

    def _sequence(self, message_num: int, stream: str) -> bool:
        """Count lost messages and acquisitions; False for a duplicate, which is to be skipped."""
        last = self._last_message_num
        if last is None:
            self.stats.acquisitions = 1
        elif message_num in self._recent and message_num != 1:
            return False  # a 1 is the counter starting again, even after a short acquisition
        elif self._before_drop is not None and message_num != last + 1 and message_num in self._before_drop[2]:
            return False  # after a stray message, a duplicate of the old sequence
        elif message_num > last:
            self.stats.lost_messages += message_num - last - 1
            if self._before_drop is not None and message_num > self._before_drop[0] and message_num != last + 1:
                # the old sequence goes on: the drop was one stray message, not a new acquisition
                old_last, old_lost, old_recent = self._before_drop
                self.stats.lost_messages = old_lost + message_num - old_last - 1
                self.stats.acquisitions -= 1
                self._recent = deque([*old_recent, *self._recent], maxlen=RECENT_MESSAGES)
            self._before_drop = None
        else:
            # a restart: the counter starts again at 1; if it does not, the first ones were lost
            # the old numbers are kept aside: if the old sequence goes on, its duplicates stay recognisable
            self._before_drop = (last, self.stats.lost_messages, tuple(self._recent))
            self._recent.clear()  # the new acquisition numbers its messages from 1 again
            self.stats.acquisitions += 1
            self.stats.lost_messages += message_num - 1
            for channel in self.stats.channels.values():
                if channel.stream == stream:
                    channel.next_sample_num = -1
        self._last_message_num = message_num
        self._recent.append(message_num)
        return True

    def _packed(self, block: PackedBlock) -> ReceivedPacked:
        layout = self._packed_layouts.get(block.stream)
        if layout is not None and layout[0] == block.channel_nums and all(
                c.next_sample_num == block.sample_num and c.sample_rate == block.sample_rate for c in layout[1]):
            # the same channels continuing: count them without judging each again
            for c in layout[1]:
                c.next_sample_num += block.num_samples
                c.samples += block.num_samples
                c.blocks += 1
            continuity = [Continuity.CONTINUOUS] * len(layout[1])
        else:
            continuity = [self._channel_continuity(block.stream, num, name, block.sample_rate, block.sample_num,
                                                   block.num_samples, block.units)
                          for num, name in zip(block.channel_nums, block.channel_names)]
            self._packed_layouts[block.stream] = (block.channel_nums, [self.stats.channels[(block.stream, num)]
                                                                       for num in block.channel_nums])
        if block.units is not None:
            return ReceivedPacked(block, continuity, block.samples, block.units)
        samples = block.samples if self._scale == 1 else block.samples * self._scale
        return ReceivedPacked(block, continuity, samples, self._units)

    def _continuity(self, block: DataBlock) -> Received:
        continuity = self._channel_continuity(block.stream, block.channel_num, block.channel_name, block.sample_rate,
                                              block.sample_num, block.num_samples, block.units)
        if block.units is not None:
            return Received(block, continuity, block.samples, block.units)
        samples = block.samples if self._scale == 1 else block.samples * self._scale
        return Received(block, continuity, samples, self._units)

    def _channel_continuity(self, stream: str, channel_num: int, channel_name: str, sample_rate: float,
                            sample_num: int, num_samples: int, units: str | None) -> Continuity:
        key = (stream, channel_num)
        channel = self.stats.channels.get(key)
        if channel is None:
            channel = ChannelStats(stream, channel_num, channel_name, sample_rate, units or self._units,
                                   next_sample_num=-1)
            self.stats.channels[key] = channel
        if channel.next_sample_num < 0:
            continuity = Continuity.START
            channel.sample_rate = sample_rate
        elif sample_rate != channel.sample_rate:
            continuity = Continuity.START
            channel.rate_changes += 1
            channel.sample_rate = sample_rate
        elif sample_num == channel.next_sample_num:
            continuity = Continuity.CONTINUOUS
        else:
            continuity = Continuity.GAP
            channel.gaps += 1
            channel.lost_samples += max(0, sample_num - channel.next_sample_num)
        channel.channel_name = channel_name
        channel.next_sample_num = sample_num + num_samples
        channel.samples += num_samples
        channel.blocks += 1
        return continuity

    def close(self) -> None:
        """Close every socket before terminating the context (the other order hangs)."""
        if self._heartbeat is not None:
            self._heartbeat.close()
            self._heartbeat = None
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(0)
            self._monitor = None
        if not self._socket.closed:
            self._socket.close(0)
        self._context.term()
