"""A message's channel blocks as the live service queues them (:class:`Piece`), cut to a size that
never holds the other channels back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raphe.streamer.subscriber import Continuity, Received, ReceivedPacked

# A channel's block is handled in pieces of at most MAX_PIECE_SAMPLES: a 10 MB block no longer holds
# the other channels for seconds.
MAX_PIECE_SAMPLES = 16_384


@dataclass(frozen=True, slots=True)
class Piece:
    """One channel's block, from a DATA message or a row of a packed block (``source``, row ``index``)."""

    key: tuple[str, int]
    continuity: Continuity
    channel_name: str
    units: str | None
    samples: np.ndarray
    sample_num: int
    sample_rate: float
    message_num: int
    source: np.ndarray | None = None
    index: int = 0


def cut(piece: Piece) -> list[Piece]:
    """``piece`` in pieces of at most ``MAX_PIECE_SAMPLES``, each after the first continuing the one before."""
    n = len(piece.samples)
    if n <= MAX_PIECE_SAMPLES:
        return [piece]
    return [Piece(piece.key, piece.continuity if start == 0 else Continuity.CONTINUOUS, piece.channel_name,
                  piece.units, piece.samples[start:start + MAX_PIECE_SAMPLES], piece.sample_num + start,
                  piece.sample_rate, piece.message_num)
            for start in range(0, n, MAX_PIECE_SAMPLES)]


def pieces(message) -> list[Piece]:
    """The channel blocks a message holds (none for a TTL event, which raphe does not use)."""
    if isinstance(message, Received):
        b = message.block
        return [Piece((b.stream, b.channel_num), message.continuity, b.channel_name, message.units, message.samples,
                      b.sample_num, b.sample_rate, b.message_num)]
    if isinstance(message, ReceivedPacked):
        b, samples = message.block, message.samples
        return [Piece((b.stream, num), message.continuity[i], name, message.units, samples[i], b.sample_num,
                      b.sample_rate, b.message_num, samples, i)
                for i, (num, name) in enumerate(zip(b.channel_nums, b.channel_names))]
    return []
