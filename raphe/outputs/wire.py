"""raphe's outputs on the wire (docs/wire-protocol.md, "raphe's outputs"): POSTERIOR messages and
Event Broadcaster spike events, each on its own socket, never on the data socket.

POSTERIOR: two frames, the envelope ``POSTERIOR`` (no NUL) and a JSON header; there is no payload
frame. Events: two frames, a little-endian uint16 type code (1 = spike) and a JSON object, which the
official ``open_ephys.streaming.EventListener`` consumes unchanged. Both are built here, from one
:class:`SpikeUpdate`, so the two never disagree about a spike.
"""

from __future__ import annotations

import struct
import time

import orjson
import zmq

from raphe.core.errors import RapheError
from raphe.core.specs import EVENTS_ENDPOINT, POSTERIOR_ENDPOINT

from raphe.streamer.publisher import EndpointError, bind
from raphe.streamer.security import Curve, authenticator, serve_securely

from .update import SpikeUpdate

POSTERIOR_ENVELOPE = b"POSTERIOR"
# 2: ``posterior`` is the deciding one (joint by default); ``evidence``, ``n_isi``,
# ``waveform_posterior``, ``firing_posterior`` and ``seconds_to_decision`` added.
# 3: ``has_evidence``, ``hints`` and ``withdrawn`` (a class the cell no longer holds) added.
POSTERIOR_SCHEMA_VERSION = 3
SPIKE_EVENT = struct.pack("<H", 1)
NOBLOCK = int(zmq.NOBLOCK)


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
        return socket, bind(socket, endpoint)

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
