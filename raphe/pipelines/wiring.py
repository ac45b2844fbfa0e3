"""What a live service is built from besides its model and posterior: its source (:func:`subscribe`), how it runs
(:class:`ServeOptions`) and where its updates go (:class:`Sinks`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from raphe.core.specs import ENSEMBLE_MAX_CHANNELS, MAX_CELLS
from raphe.outputs.update import Publishing, RecordWriting
from raphe.streamer.security import Curve
from raphe.streamer.subscriber import Subscriber

# Messages drained per wake-up at most, and queued by ZeroMQ before it drops: a second of a
# 384-channel probe in 10 ms blocks fits in either.
DRAIN_LIMIT = 8192
RECEIVE_HWM = 100_000
# The model is touched at least this often (seconds) between spikes: see Service._keep_warm.
KEEP_WARM_S = 0.04


@dataclass(frozen=True)
class ServeOptions:
    """How a service runs.

    Parameters
    ----------
    detector_settings : threshold, relative, adaptive_k, polarity, refractory_ms (see DetectorConfig).
    keep_history : keep each cell's posterior after every spike (for the demo's figure).
    drain_limit : messages handled per wake-up at most (default 8192; 1 handles them one by one).
    max_cells : cells kept at most (default 4,096); blocks of further channels are counted and refused.
    forget_after_s : a cell silent this long is summarised (in the log) and forgotten (default: never).
    keep_warm_s : touch the model at least this often between spikes (default 0.04 s; None: never).
    shard : ``(k, n)``: serve only the channels whose ``channel_num % n == k`` (one of n worker
        processes, see ``raphe.pipelines.shards``); the others are received, counted and left alone.
    wide_channels : a stream of more than this many channels is served by the service's wide model,
        where it has one (default 4: see ``raphe.core.specs.ENSEMBLE_MAX_CHANNELS``).
    """

    detector_settings: dict = field(default_factory=dict)
    keep_history: bool = False
    drain_limit: int = DRAIN_LIMIT
    max_cells: int = MAX_CELLS
    forget_after_s: float | None = None
    keep_warm_s: float | None = KEEP_WARM_S
    shard: tuple[int, int] | None = None
    wide_channels: int = ENSEMBLE_MAX_CHANNELS


@dataclass
class Sinks:
    """Where each update goes: the wire (raphe's output sockets, or a worker's coordinator), the
    JSON-lines log, Lab Streaming Layer (``raphe.outputs.lsl.LslOutputs``)."""

    wire: Publishing
    log: RecordWriting | None = None
    lsl: object | None = None


def subscribe(connect: str, units: str | None = None, scale: float = 1.0, curve: Curve | None = None) -> Subscriber:
    """A service's subscription to a rig's data endpoint (units and scale for channels without any)."""
    return Subscriber(connect, units=units, scale=scale, hwm=RECEIVE_HWM, curve=curve)
