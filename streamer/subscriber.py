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

# A publisher refusing this client's key, and a CURVE publisher refusing a plain client (measured
# with libzmq 4.3.5: one HANDSHAKE_FAILED_PROTOCOL event, mechanism mismatch, then a disconnection
# and no retry), both show as one of these on the client's own socket monitor.
HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                      | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
# ZeroMQ makes a lost connection again itself (a CONNECT_RETRIED event follows the DISCONNECTED one)
# except after a protocol error, such as a frame over ZMQ_MAXMSGSIZE: then it stays disconnected
# for good, silently, unless the subscriber connects again.
MONITORED = HANDSHAKE_FAILURES | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED

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
# The most messages one jump of message_num counts as lost, and the most samples one jump of a
# channel's sample_num counts as lost (in seconds at its rate): a PUB queue overflowing for minutes
# stays below both; beyond them a claim is a forged or corrupt counter, not a loss to report.
MAX_LOST_MESSAGES = 2**24
MAX_LOST_S = 86_400.0


@dataclass(frozen=True, slots=True)
class _Break:
    """The sequence just before a message broke it (a jump or a drop of ``message_num``), kept
    until the next message shows whether the old sequence goes on (the break was a stray message)."""

    last: int
    lost: int
    acquisitions: int
    recent: tuple[int, ...]
    stream: str
    stream_last: int | None  # the breaking message's stream's last message_num before it


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
    # (where the channel was to go on, samples counted lost) before its last gap, until the next
    # block shows whether the block after the gap was stray (the channel goes on where it was)
    before_gap: tuple[int, int] | None = None


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
    forgotten_lost_samples: int = 0  # of the channels of forgotten streams

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def counters(self) -> dict:
        """The stream-wide counters as `raphe listen --json` and `raphe serve --json` print them."""
        lost = self.forgotten_lost_samples + sum(c.lost_samples for c in self.channels.values())
        return {"messages": self.messages, "data_messages": self.data_messages, "lost_messages": self.lost_messages,
                "lost_samples": lost, "duplicates": self.duplicates, "acquisitions": self.acquisitions,
                "malformed": dict(self.malformed), "events": self.events}

    def forget_stream(self, stream: str) -> None:
        """Drop the channels of ``stream`` (their lost samples stay counted)."""
        gone = [key for key in self.channels if key[0] == stream]
        for key in gone:
            self.forgotten_lost_samples += self.channels.pop(key).lost_samples


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
        Connect with CURVE to a publisher serving it (default None), its heartbeat too. A publisher
        that refuses the handshake (this key, or a plain client where it serves CURVE) makes the
        next receive or wait raise :class:`EndpointError` with one line saying so.

    A frame larger than the largest legal message (``limits.message_bytes``) is refused by the
    socket itself (``ZMQ_MAXMSGSIZE``: the connection is dropped and made again), so it is never
    buffered whole.
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
        self._before_break: _Break | None = None
        self._stream_last: dict[str, int] = {}  # the last message_num of each stream with channels
        self._logged_kinds: set[str] = set()
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, hwm)
        self._socket.setsockopt(zmq.MAXMSGSIZE, limits.message_bytes)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._heartbeat: HeartbeatClient | None = None
        self._curve = curve
        self._monitor: zmq.Socket | None = self._socket.get_monitor_socket(MONITORED)
        self._abandoned = False  # disconnected, and ZeroMQ will not connect again
        try:
            if curve is not None:
                connect_securely(self._socket, curve)
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise EndpointError(f"cannot connect to {endpoint}: {exc.strerror}") from None
        hb = heartbeat_endpoint(endpoint) if heartbeat else None
        if hb is not None:
            self._heartbeat = HeartbeatClient(self._context, hb, curve=curve)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_connection(self, idle: bool = False) -> None:
        """Raise :class:`EndpointError` for a refused handshake; when ``idle`` (nothing waiting),
        connect again where ZeroMQ dropped the connection for a protocol error and gave up, and
        count that as a malformed message of kind ``protocol``."""
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] & HANDSHAKE_FAILURES:
                self._refused(event)
            self._abandoned = event["event"] == zmq.EVENT_DISCONNECTED
        if idle and self._abandoned:
            self._abandoned = False
            self._count_malformed(MalformedMessage(
                "protocol", "the publisher broke the protocol (a frame over the size limit, or not ZMTP); "
                            "ZeroMQ dropped the connection and raphe connected again"))
            self._socket.disconnect(self.endpoint)
            self._socket.connect(self.endpoint)

    def _refused(self, event: dict) -> None:
        if self._curve is None:
            # a plain client meets a failed handshake only where the publisher demands security
            raise EndpointError(f"{self.endpoint} refused a plain connection (handshake failed, event "
                                f"{event['event']}): it serves CURVE; connect with the rig's public key and a "
                                "key pair (--rig-key, --curve-secret)")
        if event["value"] == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            raise EndpointError(f"{self.endpoint} does not serve CURVE (handshake failed, mechanism mismatch): "
                                "connect without --rig-key")
        raise EndpointError(f"{self.endpoint} refused raphe's key (CURVE handshake failed, event "
                            f"{event['event']}): give the rig raphe's public key, or raphe the rig's")

    def receive(self, timeout_ms: int = 100) -> Received | TTLEvent | None:
        """The next valid message, or None if none arrived within ``timeout_ms``.

        Malformed and legacy messages are counted in ``stats.malformed`` by kind, logged once per
        kind, and skipped: the call goes on waiting for a valid one until the timeout.
        """
        self._check_connection()
        if self._heartbeat is not None:
            self._heartbeat.tick()
        while True:
            try:
                frames = receive_frames(self._socket)
            except zmq.Again:
                # Poll only when the queue is empty: one system call less per message under load.
                if not self._socket.poll(timeout_ms):
                    self._check_connection(idle=True)
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
        self._check_connection()
        if self._heartbeat is not None:
            self._heartbeat.tick()
        if not self._socket.poll(timeout_ms):
            self._check_connection(idle=True)
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
        self._check_connection()
        if self._heartbeat is not None:
            self._heartbeat.tick()
        if self._socket.poll(timeout_ms):
            return True
        self._check_connection(idle=True)
        return False

    def _accept(self, frames: list[bytes]) -> Received | TTLEvent | None:
        self.stats.messages += 1
        try:
            message = decode(frames, self._limits)
            self._within_limits(message)
        except MalformedMessage as exc:
            self._count_malformed(exc)
            return None
        if not self._sequence(message.message_num, message.stream, not isinstance(message, TTLEvent)):
            self.stats.duplicates += 1
            return None
        if isinstance(message, TTLEvent):
            self.stats.events += 1
            return message
        self.stats.data_messages += 1
        if isinstance(message, PackedBlock):
            return self._packed(message)
        return self._continuity(message)

    def _count_malformed(self, exc: MalformedMessage) -> None:
        self.stats.malformed[exc.kind] += 1
        if exc.kind not in self._logged_kinds:
            self._logged_kinds.add(exc.kind)
            log.warning("skipping malformed message from %s: %s", self.endpoint, exc)

    def forget_stream(self, stream: str) -> None:
        """A stream whose cells the service forgot (silent past ``--forget-after``): its channels and
        its slot among the ``Limits.streams`` are freed, so a long day of many streams goes on; if it
        sends again it is a new stream."""
        self.stats.forget_stream(stream)
        self._streams.discard(stream)
        self._stream_last.pop(stream, None)
        self._packed_layouts.pop(stream, None)

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

    def _sequence(self, message_num: int, stream: str, tracked: bool) -> bool:
        """Count lost messages and acquisitions, restart a stream whose own counter went back; False
        for a duplicate, which is to be skipped. ``tracked``: the stream's channels are kept (a
        DATA or packed message), so its own last ``message_num`` is kept too."""
        last = self._last_message_num
        before = self._before_break
        if last is None:
            self.stats.acquisitions = 1
        elif message_num in self._recent and message_num != 1:
            return False  # a 1 is the counter starting again, even after a short acquisition
        elif before is not None and message_num != last + 1 and message_num in before.recent:
            return False  # after a stray message, a duplicate of the old sequence
        elif message_num == last + 1:
            self._before_break = None
        elif before is not None and before.last < message_num and (message_num < last or last < before.last):
            # the old sequence goes on: the break was one stray message, on its own stream only
            self._undo_break(before)
            self.stats.lost_messages += self._plausible_loss(message_num - before.last - 1)
        else:
            self._before_break = _Break(last, self.stats.lost_messages, self.stats.acquisitions,
                                        tuple(self._recent), stream, self._stream_last.get(stream))
            if message_num > last:
                self.stats.lost_messages += self._plausible_loss(message_num - last - 1)
            else:
                # a new acquisition: its counter starts again at 1; if it does not, the first ones were lost
                self.stats.acquisitions += 1
                self.stats.lost_messages += self._plausible_loss(message_num - 1)
                self._recent.clear()  # the new acquisition numbers its messages from 1 again
        if tracked:
            own_last = self._stream_last.get(stream)
            if own_last is not None and message_num <= own_last:
                # the stream's own counter went back: a new acquisition of this stream
                for channel in self.stats.channels.values():
                    if channel.stream == stream:
                        channel.next_sample_num = -1
            self._stream_last[stream] = message_num
        self._last_message_num = message_num
        self._recent.append(message_num)
        return True

    def _undo_break(self, before: _Break) -> None:
        """Forget a stray message's break of the sequence: its losses, its acquisition, its number
        among the recent ones (the real message of that number is still to come) and as the last
        of its stream."""
        self.stats.lost_messages = before.lost
        self.stats.acquisitions = before.acquisitions
        self._recent = deque(before.recent, maxlen=RECENT_MESSAGES)
        if before.stream_last is None:
            self._stream_last.pop(before.stream, None)
        else:
            self._stream_last[before.stream] = before.stream_last
        self._before_break = None

    @staticmethod
    def _plausible_loss(claimed: int) -> int:
        return min(claimed, MAX_LOST_MESSAGES)

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
            before = channel.before_gap
            if before is not None and sample_num == before[0]:
                # the channel goes on where it was before the last gap: that block was stray
                channel.lost_samples -= before[1]
                channel.before_gap = None
            else:
                claimed = min(max(0, sample_num - channel.next_sample_num), int(MAX_LOST_S * sample_rate))
                channel.lost_samples += claimed
                channel.before_gap = (channel.next_sample_num, claimed)
        if continuity is not Continuity.GAP:
            channel.before_gap = None
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
