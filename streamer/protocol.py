"""Encoding and strict decoding of the Open Ephys "ZMQ Interface" wire format (GUI 0.6 and later).

See docs/wire-protocol.md. A DATA message is three frames: ``b"DATA\\0"``, a UTF-8 JSON header and
``num_samples`` little-endian float32 values. An EVENT message carries a 10-byte TTL payload.
Decoding never guesses: anything that is not exactly the format raises :class:`MalformedMessage`
with a short ``kind`` naming what was wrong, so a subscriber can count and skip it.
"""

from __future__ import annotations

import json
import math
import struct
import time
from dataclasses import dataclass

import numpy as np

DATA_ENVELOPE = b"DATA\x00"
EVENT_ENVELOPE = b"EVENT\x00"
SAMPLE_DTYPE = np.dtype("<f4")
TTL_PAYLOAD = struct.Struct("<BBQ")
TTL_EVENT_TYPE = 3

DATA_CONTENT_KEYS = ("stream", "channel_num", "channel_name", "num_samples", "sample_num", "sample_rate")
EVENT_CONTENT_KEYS = ("stream", "source_node", "type", "sample_num")


class MalformedMessage(ValueError):
    """A message that is not in the protocol. ``kind`` is a short, stable label used for counting."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class LegacyFormat(MalformedMessage):
    """A message in the Open Ephys GUI 0.4/0.5 format, which raphe refuses rather than guess at."""

    def __init__(self, detail: str):
        super().__init__(
            "legacy",
            f"Open Ephys GUI 0.4/0.5 ZMQ format refused ({detail}); "
            "update the rig to GUI 0.6 or later, whose ZMQ Interface sends one message per channel",
        )


@dataclass(frozen=True, slots=True)
class DataBlock:
    """One channel's block of samples, as decoded from a DATA message."""

    message_num: int
    stream: str
    channel_num: int
    channel_name: str
    sample_num: int
    sample_rate: float
    samples: np.ndarray
    timestamp: int
    units: str | None = None

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])


@dataclass(frozen=True, slots=True)
class TTLEvent:
    """A TTL event, as decoded from an EVENT message."""

    message_num: int
    stream: str
    source_node: int
    sample_num: int
    line: int
    state: int
    word: int
    timestamp: int


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def encode_data(
    message_num: int,
    stream: str,
    channel_num: int,
    channel_name: str,
    sample_num: int,
    sample_rate: float,
    samples: np.ndarray,
    units: str | None = None,
    timestamp: int | None = None,
) -> list[bytes]:
    """Frames of one DATA message. ``samples`` is converted to little-endian float32."""
    payload = np.ascontiguousarray(samples, dtype=SAMPLE_DTYPE)
    content = {
        "stream": stream,
        "channel_num": channel_num,
        "channel_name": channel_name,
        "num_samples": int(payload.shape[0]),
        "sample_num": int(sample_num),
        "sample_rate": float(sample_rate),
    }
    if units is not None:
        content["units"] = units
    header = {
        "message_num": message_num,
        "type": "data",
        "content": content,
        "data_size": payload.nbytes,
        "timestamp": now_ms() if timestamp is None else timestamp,
    }
    return [DATA_ENVELOPE, json.dumps(header).encode(), payload.tobytes()]


def encode_ttl(
    message_num: int,
    stream: str,
    source_node: int,
    sample_num: int,
    line: int,
    state: int,
    word: int,
    timestamp: int | None = None,
) -> list[bytes]:
    """Frames of one EVENT message carrying a TTL change."""
    payload = TTL_PAYLOAD.pack(line, state, word)
    header = {
        "message_num": message_num,
        "type": "event",
        "content": {
            "stream": stream,
            "source_node": source_node,
            "type": TTL_EVENT_TYPE,
            "sample_num": int(sample_num),
        },
        "data_size": len(payload),
        "timestamp": now_ms() if timestamp is None else timestamp,
    }
    return [EVENT_ENVELOPE, json.dumps(header).encode(), payload]


def decode(frames: list[bytes]) -> DataBlock | TTLEvent:
    """Decode one multipart message; raise :class:`MalformedMessage` if it is not exactly the format."""
    if len(frames) < 2:
        raise MalformedMessage("frames", f"{len(frames)} frame(s), expected 3")
    header = _parse_header(frames[1])
    if "message_no" in header:
        raise LegacyFormat("header key 'message_no'")
    envelope = bytes(frames[0])
    if envelope == DATA_ENVELOPE:
        if isinstance(header.get("content"), dict) and "n_channels" in header["content"]:
            raise LegacyFormat("all channels in one message")
        return _decode_data(header, frames)
    if envelope == EVENT_ENVELOPE:
        return _decode_event(header, frames)
    raise MalformedMessage("envelope", f"unknown envelope {envelope[:16]!r}")


def _parse_header(raw: bytes) -> dict:
    try:
        header = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage("json", f"header is not UTF-8 JSON ({exc.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise MalformedMessage("json", "header is not a JSON object")
    return header


def _require(mapping: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise MalformedMessage("missing_key", f"{where} lacks {', '.join(missing)}")


def _int(value, name: str, minimum: int) -> int:
    # bool is an int subclass in Python; JSON true/false is never a count.
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedMessage("bad_value", f"{name} is not an integer: {value!r}")
    if value < minimum:
        raise MalformedMessage("negative", f"{name} = {value} (must be >= {minimum})")
    return value


def _str(value, name: str) -> str:
    if not isinstance(value, str):
        raise MalformedMessage("bad_value", f"{name} is not a string: {value!r}")
    return value


def _check_top(header: dict, frames: list[bytes], expected_type: str) -> tuple[dict, bytes]:
    if len(frames) != 3:
        raise MalformedMessage("frames", f"{len(frames)} frames, expected 3")
    _require(header, ("message_num", "type", "content", "data_size", "timestamp"), "header")
    if header["type"] != expected_type:
        raise MalformedMessage("type", f"type {header['type']!r} under a {expected_type.upper()} envelope")
    content = header["content"]
    if not isinstance(content, dict):
        raise MalformedMessage("bad_value", "content is not a JSON object")
    payload = bytes(frames[2])
    data_size = _int(header["data_size"], "data_size", 0)
    if len(payload) != data_size:
        raise MalformedMessage("payload_size", f"payload has {len(payload)} bytes, data_size says {data_size}")
    return content, payload


def _decode_data(header: dict, frames: list[bytes]) -> DataBlock:
    content, payload = _check_top(header, frames, "data")
    _require(content, DATA_CONTENT_KEYS, "content")
    num_samples = _int(content["num_samples"], "num_samples", 1)
    if len(payload) != 4 * num_samples:
        raise MalformedMessage(
            "payload_size", f"payload has {len(payload)} bytes for {num_samples} float32 samples"
        )
    rate = content["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise MalformedMessage("sample_rate", f"sample_rate is not a finite positive number: {rate!r}")
    units = content.get("units")
    return DataBlock(
        message_num=_int(header["message_num"], "message_num", 1),
        stream=_str(content["stream"], "stream"),
        channel_num=_int(content["channel_num"], "channel_num", 0),
        channel_name=_str(content["channel_name"], "channel_name"),
        sample_num=_int(content["sample_num"], "sample_num", 0),
        sample_rate=float(rate),
        samples=np.frombuffer(payload, dtype=SAMPLE_DTYPE),
        timestamp=_int(header["timestamp"], "timestamp", 0),
        units=units if isinstance(units, str) else None,
    )


def _decode_event(header: dict, frames: list[bytes]) -> TTLEvent:
    content, payload = _check_top(header, frames, "event")
    _require(content, EVENT_CONTENT_KEYS, "content")
    event_type = content["type"]
    if event_type != TTL_EVENT_TYPE:
        raise MalformedMessage("event_type", f"event type {event_type!r} is not TTL ({TTL_EVENT_TYPE})")
    if len(payload) != TTL_PAYLOAD.size:
        raise MalformedMessage("payload_size", f"TTL payload has {len(payload)} bytes, expected 10")
    line, state, word = TTL_PAYLOAD.unpack(payload)
    return TTLEvent(
        message_num=_int(header["message_num"], "message_num", 1),
        stream=_str(content["stream"], "stream"),
        source_node=_int(content["source_node"], "source_node", 0),
        sample_num=_int(content["sample_num"], "sample_num", 0),
        line=line,
        state=state,
        word=word,
        timestamp=_int(header["timestamp"], "timestamp", 0),
    )
