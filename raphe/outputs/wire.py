"""raphe's outputs on the wire (docs/wire-protocol.md, "raphe's outputs"): POSTERIOR messages and
Event Broadcaster spike events, each on its own socket, never on the data socket.

POSTERIOR: two frames, the envelope ``POSTERIOR`` (no NUL) and a JSON header; there is no payload
frame. Events: two frames, a little-endian uint16 type code (1 = spike) and a JSON object, which the
official ``open_ephys.streaming.EventListener`` consumes unchanged. Both are built here, from one
:class:`SpikeUpdate`, so the two never disagree about a spike.

Each output endpoint keeps a queue of its own for every subscriber (:class:`Fanout`): a subscriber
that stops reading loses messages once its queue is full, the others lose none, and what each one
lost is counted under its name.
"""

from __future__ import annotations

import errno
import queue
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import orjson
import zmq

from raphe.core.errors import RapheError
from raphe.core.specs import EVENTS_ENDPOINT, POSTERIOR_ENDPOINT

from raphe.streamer.publisher import SUBSCRIPTION_BYTES, EndpointError, bind
from raphe.streamer.security import Curve, authenticator, serve_securely

from .update import SpikeUpdate

POSTERIOR_ENVELOPE = b"POSTERIOR"
# 2: ``posterior`` is the deciding one (joint by default); ``evidence``, ``n_isi``,
# ``waveform_posterior``, ``firing_posterior`` and ``seconds_to_decision`` added.
# 3: ``has_evidence``, ``hints`` and ``withdrawn`` (a class the cell no longer holds) added.
POSTERIOR_SCHEMA_VERSION = 3
SPIKE_EVENT = struct.pack("<H", 1)
NOBLOCK = int(zmq.NOBLOCK)
# Bytes moved per read between a client and its own socket; the kernel's buffers hold the rest.
RELAY_CHUNK = 65536
# How long closing waits for what is still on its way to the clients (the sockets linger as long).
LINGER_MS = 1000


def posterior_content(update: SpikeUpdate) -> dict:
    """The ``content`` of the POSTERIOR message (and of the log's ``spike`` record)."""
    s = update.state
    return {"stream": s.stream, "channel_num": s.channel_num, "channel_name": s.channel_name, "cell": s.cell,
            "acquisition": s.acquisition, "sample_num": update.sample_num,
            "source_message_num": update.source_message_num, "sample_rate": update.sample_rate,
            "amplitude": update.amplitude, "threshold": update.threshold, "n_spikes": s.n_spikes,
            "novel": update.novel, "n_novel": s.n_novel, "classes": s.classes,
            "spike_probabilities": update.spike_probabilities, "posterior": s.posterior,
            "has_evidence": s.has_evidence, "decision": s.decision, "withdrawn": s.withdrawn,
            "reasons": s.reasons, "hints": s.hints, "spikes_to_decision": s.spikes_to_decision,
            "mean_spike_probability": s.mean_spike_probability, "model": update.model, "evidence": s.evidence,
            "waveform_posterior": s.parts["waveform"], "firing_posterior": s.parts["firing"], "n_isi": s.n_isi,
            "seconds_to_decision": s.seconds_to_decision}


def spike_event(update: SpikeUpdate) -> dict:
    """The Event Broadcaster spike object; ``sorted_id`` is 1 + the decided class, 0 while undecided."""
    s = update.state
    return {"event_type": "spike", "stream": s.stream, "source_node": 0, "electrode": s.channel_name,
            "num_channels": 1, "sample_rate": update.sample_rate, "sample_number": update.sample_num,
            "sorted_id": s.decided_index, "amp1": update.amplitude, "cell": s.cell, "channel_num": s.channel_num,
            "classes": s.classes, "spike_probabilities": update.spike_probabilities, "posterior": s.posterior,
            "decision": s.decision, "withdrawn": s.withdrawn, "novel": update.novel, "n_spikes": s.n_spikes}


def posterior_frames(message_num: int, content: bytes) -> list[bytes]:
    """The frames of a POSTERIOR message around its already serialized ``content``."""
    header = (b'{"message_num":%d,"type":"posterior","schema_version":%d,"timestamp":%d,"content":'
              % (message_num, POSTERIOR_SCHEMA_VERSION, int(time.time() * 1000)))
    return [POSTERIOR_ENVELOPE, header + content + b"}"]


def serialized(update: SpikeUpdate) -> tuple[bytes, bytes]:
    """The POSTERIOR content and the spike event of ``update``, each serialized once."""
    return (orjson.dumps(posterior_content(update), option=orjson.OPT_SERIALIZE_NUMPY),
            orjson.dumps(spike_event(update), option=orjson.OPT_SERIALIZE_NUMPY))


def decode_posterior(frames: list[bytes]) -> dict:
    """The header of a POSTERIOR message (for clients and tests); ValueError if it is not one."""
    if len(frames) != 2 or frames[0] != POSTERIOR_ENVELOPE:
        raise ValueError("not a POSTERIOR message")
    header = orjson.loads(frames[1])
    if header.get("type") != "posterior":
        raise ValueError("not a POSTERIOR message")
    return header


@dataclass(eq=False)
class Subscriber:
    """One client of an output: its connection, and the socket of its own that serves it on loopback.

    ``own`` is used by the publishing thread only; the relay threads touch ``client`` and ``inner``.
    """

    name: str
    own: zmq.Socket
    client: socket.socket
    inner: socket.socket
    gone: threading.Event = field(default_factory=threading.Event)
    relays: list[threading.Thread] = field(default_factory=list)


class Fanout:
    """One output endpoint that keeps a queue for each subscriber and counts, per subscriber, what it lost.

    ZeroMQ's PUB socket keeps a queue per subscriber but drops silently for one whose queue is full,
    and ``XPUB_NODROP`` refuses the send to every subscriber once any one is full; neither says
    whose queue it was, and libzmq 4.3 (without its draft API) offers no other way to ask. So the
    endpoint is a plain TCP listener, and each client's connection is relayed, byte for byte, to a
    PUB socket of its own on loopback: the client speaks ZeroMQ (and CURVE) to that socket
    unchanged, and a send that socket refuses (``XPUB_NODROP``, one peer) is a message that client,
    and no other, did not get.

    Parameters
    ----------
    context : the ZeroMQ context of the sockets (its authenticator, if any, serves them).
    endpoint : ``tcp://HOST:PORT``; ``*`` as the port binds an ephemeral one, ``*`` as the host every
        interface. The bound endpoint is in ``endpoint`` afterwards.
    hwm : messages queued per subscriber before one is dropped (or waited for); the relay's
        kernel buffers hold some more.
    lossless : wait for a subscriber whose queue is full instead of dropping.
    curve : serve each subscriber's socket with CURVE.
    """

    def __init__(self, context: zmq.Context, endpoint: str, hwm: int, lossless: bool, curve: Curve | None):
        self._context, self._hwm, self._curve, self.lossless = context, hwm, curve, lossless
        self.subscribers: list[Subscriber] = []
        self.dropped: dict[str, int] = {}  # per subscriber's name, kept after it leaves
        self._arrivals: queue.SimpleQueue[Subscriber] = queue.SimpleQueue()
        self._listener = listen(endpoint)
        host, port = self._listener.getsockname()[:2]
        self.endpoint = f"tcp://{host}:{port}"
        self._accepting = threading.Thread(target=self._accept, name=f"raphe-outputs-{port}", daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, address = self._listener.accept()
            except OSError:
                return  # the listener was shut down: the outputs are closing
            try:
                self._arrivals.put(self._serve(client, f"{address[0]}:{address[1]}"))
            except (OSError, zmq.ZMQError):
                client.close()  # out of descriptors or ports: this client is refused, the others served

    def _serve(self, client: socket.socket, name: str) -> Subscriber:
        """A PUB socket for ``client`` alone, and two threads relaying between them."""
        own = self._context.socket(zmq.PUB)
        own.setsockopt(zmq.LINGER, LINGER_MS)
        own.setsockopt(zmq.SNDHWM, self._hwm)
        own.setsockopt(zmq.XPUB_NODROP, 1)  # refused, so counted, rather than dropped unseen
        own.setsockopt(zmq.MAXMSGSIZE, SUBSCRIPTION_BYTES)  # clients only send their subscriptions
        if self._curve is not None:
            serve_securely(own, self._curve)
        try:
            port = int(bind(own, "tcp://127.0.0.1:*").rsplit(":", 1)[1])
            inner = socket.create_connection(("127.0.0.1", port))
        except (EndpointError, OSError):
            own.close(0)
            raise OSError(f"no loopback socket for {name}") from None
        for relayed in (client, inner):
            # no Nagle: a small message held for the peer's delayed ACK cost 40 ms at the p95
            relayed.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        subscriber = Subscriber(name, own, client, inner)
        subscriber.relays = [threading.Thread(target=relay, args=(a, b, subscriber), daemon=True,
                                              name=f"raphe-relay-{name}") for a, b in ((client, inner), (inner, client))]
        for thread in subscriber.relays:
            thread.start()
        return subscriber

    def names(self) -> list[str]:
        """The subscribers connected now (host:port of their end)."""
        self._admit()
        return [s.name for s in self.subscribers]

    def _admit(self) -> None:
        # asked before every send: an empty queue's exception would cost more than the send, cold
        while not self._arrivals.empty():
            try:
                subscriber = self._arrivals.get_nowait()
            except queue.Empty:  # another thread took it between the two
                return
            self.subscribers.append(subscriber)
            self.dropped.setdefault(subscriber.name, 0)

    def send(self, frames: list[bytes]) -> None:
        """``frames`` to every subscriber: those whose queue is full lose it (counted), or are waited for."""
        self._admit()
        for subscriber in list(self.subscribers):
            if subscriber.gone.is_set():
                self.subscribers.remove(subscriber)
                subscriber.own.close(0)
                release(subscriber)
                continue
            while True:
                try:
                    subscriber.own.send_multipart(frames, NOBLOCK)
                    break
                except zmq.Again:
                    if not self.lossless or subscriber.gone.is_set():
                        self.dropped[subscriber.name] += 1
                        break
                    subscriber.own.poll(100, zmq.POLLOUT)

    def close_sockets(self) -> None:
        """Stop accepting and close every subscriber's socket (they linger to deliver what is queued)."""
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        self._accepting.join()
        self._admit()
        for subscriber in self.subscribers:
            subscriber.own.close()

    def close_relays(self) -> None:
        """Once the sockets are closed and the context ended: let the relays deliver what they hold,
        then end them."""
        deadline = time.monotonic() + LINGER_MS / 1000
        for subscriber in self.subscribers:
            for thread in subscriber.relays:
                thread.join(max(0.0, deadline - time.monotonic()))
            release(subscriber)
        self.subscribers = []


def listen(endpoint: str) -> socket.socket:
    """A TCP listener on ``endpoint`` (``tcp://HOST:PORT``, ``*`` for any port or every interface)."""
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    if not endpoint.startswith("tcp://") or not host or not (port == "*" or port.isdigit()):
        raise EndpointError(f"cannot bind {endpoint}: raphe's outputs take tcp://HOST:PORT (PORT may be *)")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ's listeners do
    try:
        listener.bind(("0.0.0.0" if host == "*" else host, 0 if port == "*" else int(port)))
        listener.listen(64)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise EndpointError(f"{endpoint} is already in use; choose another port") from None
        raise EndpointError(f"cannot bind {endpoint}: {exc.strerror or exc}") from None
    return listener


def relay(source: socket.socket, target: socket.socket, subscriber: Subscriber) -> None:
    """Copy ``source`` to ``target`` until either closes. Blocking here is the point: a client that
    does not read stops this copy, then its own socket's queue fills, and only its sends are refused."""
    while True:
        try:
            data = source.recv(RELAY_CHUNK)
            if not data:
                break
            target.sendall(data)
        except OSError:
            break
    end(subscriber)


def end(subscriber: Subscriber) -> None:
    """End both of a subscriber's connections (each relay wakes and returns) and mark it gone."""
    subscriber.gone.set()
    for connection in (subscriber.client, subscriber.inner):
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already shut, or never connected


def release(subscriber: Subscriber) -> None:
    """End a subscriber's relays and close its connections."""
    end(subscriber)
    for thread in subscriber.relays:
        thread.join()
    subscriber.client.close()
    subscriber.inner.close()


class Outputs:
    """The two output sockets, bound at construction and closed by ``close()``.

    Parameters
    ----------
    posterior_endpoint : where POSTERIOR messages go (default tcp://127.0.0.1:5570).
    events_endpoint : where Event Broadcaster spike events go (default tcp://127.0.0.1:5571).
    A ``*`` port binds an ephemeral one; the bound endpoints are in ``posterior_endpoint`` and
    ``events_endpoint`` afterwards.
    lossless : wait for a slow subscriber instead of dropping (default False: at the rig, the
        service must not wait on a client).
    hwm : messages queued per subscriber before one is dropped, or waited for (default 100,000).
    curve : serve with CURVE (see ``security``): only clients with the keys it admits connect.

    Each subscriber has a queue of its own (:class:`Fanout`): one that cannot keep up loses the
    messages that do not fit in its queue, the others lose none. ``dropped_by`` counts, per output,
    the messages each subscriber lost, under its name (host:port of its end); ``dropped`` (the
    service's ``outputs_dropped``) sums them per output: a message two subscribers lost counts twice.
    """

    def __init__(self, posterior_endpoint: str = POSTERIOR_ENDPOINT, events_endpoint: str = EVENTS_ENDPOINT,
                 lossless: bool = False, hwm: int = 100_000, curve: Curve | None = None):
        self._context = zmq.Context()
        self._fanouts: dict[str, Fanout] = {}
        self._authenticator = None
        self.lossless = lossless
        self.message_num = 0
        try:
            if curve is not None:
                self._authenticator = authenticator(self._context, curve)
            for output, endpoint in (("posterior", posterior_endpoint), ("events", events_endpoint)):
                self._fanouts[output] = Fanout(self._context, endpoint, hwm, lossless, curve)
        except (EndpointError, RapheError):
            self.close()
            raise
        self.posterior_endpoint = self._fanouts["posterior"].endpoint
        self.events_endpoint = self._fanouts["events"].endpoint

    @property
    def dropped(self) -> dict[str, int]:
        """Messages lost per output, summed over its subscribers."""
        return {output: sum(fanout.dropped.values()) for output, fanout in self._fanouts.items()}

    @property
    def dropped_by(self) -> dict[str, dict[str, int]]:
        """Messages lost per output and subscriber (every subscriber seen, gone or not)."""
        return {output: dict(fanout.dropped) for output, fanout in self._fanouts.items()}

    def subscribers(self, output: str) -> list[str]:
        """The names of ``output``'s subscribers connected now."""
        return self._fanouts[output].names()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def publish_serialized(self, content: bytes, event: bytes) -> None:
        """One POSTERIOR message around ``content`` and one spike event of ``event``, both already
        serialized (by a worker of a sharded service): numbered here, in the order they are published."""
        self.message_num += 1
        self._fanouts["posterior"].send(posterior_frames(self.message_num, content))
        self._fanouts["events"].send([SPIKE_EVENT, event])

    def close(self) -> None:
        for fanout in self._fanouts.values():
            fanout.close_sockets()
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()
        for fanout in self._fanouts.values():
            fanout.close_relays()
