"""What every live output renders: one classified spike and its cell's state after it, and the two
protocols an output meets.

A live output is told of each :class:`SpikeUpdate` and draws everything it shows from it (the
cell's :class:`~raphe.classifier.runtime.cells.CellState` holds the rules of showing: the decided
class, "no evidence", the most probable class as text); none recomputes a rule. The wire's
serialization (:func:`raphe.outputs.wire.serialized`) is done once per update and reused by the
log; a sharded service's workers forward those bytes to one coordinator, which is why the two
protocols take bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from raphe.classifier.runtime.cells import CellState


@dataclass(frozen=True, slots=True)
class SpikeUpdate:
    """One classified spike of one cell and the cell's state after it.

    ``source_message_num`` is the DATA message that completed the spike's window; ``novel``: this
    window looks like nothing the model was trained on (it did not move the posterior);
    ``spike_probabilities``: the model's output for this window; ``model``: name, variant, sha256.
    """

    state: CellState
    sample_num: int
    source_message_num: int
    sample_rate: float
    amplitude: float
    threshold: float
    novel: bool
    spike_probabilities: np.ndarray
    model: dict


class Publishing(Protocol):
    """Where serialized updates go: raphe's two output sockets, or a worker's line to its coordinator.
    ``dropped`` counts per output the messages lost (summed over subscribers), ``dropped_by`` per
    output and subscriber."""

    dropped: dict[str, int]
    dropped_by: dict[str, dict[str, int]]

    def publish_serialized(self, content: bytes, event: bytes) -> None: ...


class RecordWriting(Protocol):
    """Where log records go (one JSON object each, without its newline)."""

    def write(self, record: bytes) -> None: ...
