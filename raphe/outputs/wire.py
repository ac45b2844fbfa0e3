"""raphe's own outputs (wire-protocol.md, "raphe's outputs"): POSTERIOR messages and Event Broadcaster
spike events, each on its own PUB socket, never on the data socket.

POSTERIOR: two frames, the envelope ``POSTERIOR`` (no NUL) and a JSON header; there is no payload
frame. Events: two frames, a little-endian uint16 type code (1 = spike) and a JSON object, which the
official ``open_ephys.streaming.EventListener`` consumes unchanged. Both are built here, from one
:class:`SpikeUpdate`, so the two never disagree about a spike.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

import orjson
import zmq

from raphe.core.errors import RapheError
from raphe.core.specs import EVENTS_ENDPOINT, POSTERIOR_ENDPOINT

from .publisher import EndpointError
from .security import Curve, authenticator, serve_securely

POSTERIOR_ENVELOPE = b"POSTERIOR"
# 2: ``posterior`` is the deciding one (joint by default); ``evidence``, ``n_isi``,
# ``waveform_posterior``, ``firing_posterior`` and ``seconds_to_decision`` added.
POSTERIOR_SCHEMA_VERSION = 2
SPIKE_EVENT = struct.pack("<H", 1)
NOBLOCK = int(zmq.NOBLOCK)


@dataclass(frozen=True, slots=True)
class SpikeUpdate:
    """One classified spike of one cell and the cell's state after it: what every output says.

    Plain values only (lists of floats per class), so the streamer knows nothing of the classifier.
    ``source_message_num`` is the DATA message that completed the spike's window. ``novel``: this
    window looks like nothing the model was trained on (it did not move the posterior); ``reasons``:
    why the cell is not classifiable, when ``decision`` says so. ``posterior`` is the one that decides
    (``evidence``: both, waveform or firing); the waveform's and the firing's alone come beside it.
    """

    stream: str
    channel_num: int
    channel_name: str
    cell: str
    acquisition: int
    sample_num: int
    source_message_num: int
    sample_rate: float
    amplitude: float
    threshold: float
    n_spikes: int
    novel: bool
    n_novel: int
    classes: list[str]
    spike_probabilities: list[float]
    posterior: list[float]
    decision: str
    reasons: list[str]
    spikes_to_decision: int | None
    mean_spike_probability: list[float]
    model: dict
    evidence: str = "waveform"
    waveform_posterior: list[float] | None = None
    firing_posterior: list[float] | None = None
    n_isi: int = 0
    seconds_to_decision: float | None = None

    def posterior_content(self) -> dict:
        """The ``content`` of the POSTERIOR message (and of the log's ``spike`` record)."""
        return {"stream": self.stream, "channel_num": self.channel_num, "channel_name": self.channel_name,
                "cell": self.cell, "acquisition": self.acquisition, "sample_num": self.sample_num,
                "source_message_num": self.source_message_num, "sample_rate": self.sample_rate,
                "amplitude": self.amplitude, "threshold": self.threshold, "n_spikes": self.n_spikes,
                "novel": self.novel, "n_novel": self.n_novel, "classes": self.classes,
                "spike_probabilities": self.spike_probabilities, "posterior": self.posterior,
                "decision": self.decision, "reasons": self.reasons, "spikes_to_decision": self.spikes_to_decision,
                "mean_spike_probability": self.mean_spike_probability, "model": self.model,
                "evidence": self.evidence, "waveform_posterior": self.waveform_posterior,
                "firing_posterior": self.firing_posterior, "n_isi": self.n_isi,
                "seconds_to_decision": self.seconds_to_decision}

    def spike_event(self) -> dict:
        """The Event Broadcaster spike object; ``sorted_id`` is 1 + the decided class, 0 while undecided."""
        sorted_id = self.classes.index(self.decision) + 1 if self.decision in self.classes else 0
        return {"event_type": "spike", "stream": self.stream, "source_node": 0, "electrode": self.channel_name,
                "num_channels": 1, "sample_rate": self.sample_rate, "sample_number": self.sample_num,
                "sorted_id": sorted_id, "amp1": self.amplitude, "cell": self.cell,
                "channel_num": self.channel_num, "classes": self.classes,
                "spike_probabilities": self.spike_probabilities, "posterior": self.posterior,
                "decision": self.decision, "novel": self.novel, "n_spikes": self.n_spikes}


def posterior_frames(message_num: int, content: bytes) -> list[bytes]:
    """The frames of a POSTERIOR message around its already serialized ``content``."""
    header = (b'{"message_num":%d,"type":"posterior","schema_version":%d,"timestamp":%d,"content":'
              % (message_num, POSTERIOR_SCHEMA_VERSION, int(time.time() * 1000)))
    return [POSTERIOR_ENVELOPE, header + content + b"}"]


def serialized(update: SpikeUpdate) -> tuple[bytes, bytes]:
    """The POSTERIOR content and the spike event of ``update``, each serialized once."""
    return orjson.dumps(update.posterior_content()), orjson.dumps(update.spike_event())


def decode_posterior(frames: list[bytes]) -> dict:
    """The header of a POSTERIOR message (for clients and tests); ValueError if it is not one."""
    if len(frames) != 2 or frames[0] != POSTERIOR_ENVELOPE:
        raise ValueError("not a POSTERIOR message")
    header = orjson.loads(frames[1])
    if header.get("type") != "posterior":
        raise ValueError("not a POSTERIOR message")
    return header


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

    The sockets are XPUBs that refuse rather than silently drop when a subscriber's queue is full,
    so every message not delivered is counted, per output (``dropped``).
    """

    def __init__(self, posterior_endpoint: str = POSTERIOR_ENDPOINT, events_endpoint: str = EVENTS_ENDPOINT,
                 lossless: bool = False, hwm: int = 100_000, curve: Curve | None = None):
        self._context = zmq.Context()
        self._sockets: list[zmq.Socket] = []
        self._authenticator = None
        self.lossless = lossless
        self.message_num = 0
        self.dropped = {"posterior": 0, "events": 0}
        try:
            if curve is not None:
                self._authenticator = authenticator(self._context, curve)
            self._posterior, self.posterior_endpoint = self._bind(posterior_endpoint, hwm, curve)
            self._events, self.events_endpoint = self._bind(events_endpoint, hwm, curve)
        except (EndpointError, RapheError):
            self.close()
            raise

    def _bind(self, endpoint: str, hwm: int, curve: Curve | None) -> tuple[zmq.Socket, str]:
        socket = self._context.socket(zmq.XPUB)
        socket.setsockopt(zmq.LINGER, 1000)
        socket.setsockopt(zmq.SNDHWM, hwm)
        socket.setsockopt(zmq.XPUB_NODROP, 1)
        self._sockets.append(socket)
        if curve is not None:
            serve_securely(socket, curve)
        try:
            socket.bind(endpoint)
        except zmq.ZMQError as exc:
            raise EndpointError(f"cannot bind {endpoint}: {exc.strerror}") from None
        return socket, socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def publish(self, update: SpikeUpdate) -> bytes:
        """One POSTERIOR message and one spike event for ``update``; returns the POSTERIOR content as
        serialized (a JSON object), for a log to reuse rather than serialize again."""
        content, event = serialized(update)
        self.publish_serialized(content, event)
        return content

    def publish_serialized(self, content: bytes, event: bytes) -> None:
        """One POSTERIOR message around ``content`` and one spike event of ``event``, both already
        serialized (by a worker of a sharded service): numbered here, in the order they are published."""
        self.message_num += 1
        self._send(self._posterior, posterior_frames(self.message_num, content), "posterior")
        self._send(self._events, [SPIKE_EVENT, event], "events")

    def _send(self, socket: zmq.Socket, frames: list[bytes], output: str) -> None:
        while True:
            try:
                socket.send_multipart(frames, NOBLOCK)
                return
            except zmq.Again:
                if not self.lossless:
                    self.dropped[output] += 1
                    return
                socket.poll(100, zmq.POLLOUT)

    def close(self) -> None:
        for socket in self._sockets:
            socket.close()
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()
