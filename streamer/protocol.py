"""Encoding and strict decoding of the Open Ephys "ZMQ Interface" wire format (GUI 0.6 and later).

See docs/wire-protocol.md. A DATA message is three frames: ``b"DATA\\0"``, a UTF-8 JSON header and
``num_samples`` little-endian float32 values. An EVENT message carries a 10-byte TTL payload.
Decoding never guesses: anything that is not exactly the format raises :class:`MalformedMessage`
with a short ``kind`` naming what was wrong, so a subscriber can count and skip it. Every decode is
bounded (:class:`Limits`): header size, nesting depth, the magnitude of every counter, the number
of samples, the length of names; past a bound a message is malformed, never an exception.
A DATA header, the message of the hot path, is decoded and type-checked in one pass by msgspec into
a typed structure (about 0.5 µs); anything that path does not accept goes through the general
path (orjson, whose 64-bit integers are a bound of their own, and explicit checks), which names
what is wrong. Measured for a DATA header: the standard library's json 3.5 µs to parse, orjson
0.7 µs, msgspec with types 0.5 µs.

Nesting is bounded before anything recursive sees it: msgspec raises RecursionError on ~1,000
levels and orjson parses up to 1,024 into objects that Python's repr cannot print. The typed path
forbids unknown fields, so msgspec refuses a header at its first unexpected key or type, never
descending into the value; the general path measures the depth of the raw bytes first
(:func:`nesting_depth`), and a header deeper than ``Limits.depth`` is malformed (``too_deep``).
Counting brackets settles any real header at once (0.3 µs for a DATA header, 0.4 µs for its typed
decode); only a header with more brackets than the limit is scanned exactly (about 0.2 ms for
64 KiB).
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass

import msgspec
import numpy as np
import orjson

DATA_ENVELOPE = b"DATA\x00"
EVENT_ENVELOPE = b"EVENT\x00"
# raphe's own packed block: every channel of a stream in one message per block (see PackedBlock)
BLOCK_ENVELOPE = b"RAPHE_BLOCK\x00"
BLOCK_VERSION = 1
BLOCK_DTYPES = {"float32": np.dtype("<f4"), "int16": np.dtype("<i2")}
SAMPLE_DTYPE = np.dtype("<f4")
TTL_PAYLOAD = struct.Struct("<BBQ")
TTL_EVENT_TYPE = 3

DATA_CONTENT_KEYS = ("stream", "channel_num", "channel_name", "num_samples", "sample_num", "sample_rate")
EVENT_CONTENT_KEYS = ("stream", "source_node", "type", "sample_num")
BLOCK_CONTENT_KEYS = ("stream", "sample_num", "sample_rate", "num_samples", "num_channels", "dtype")


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of a message raphe accepts, far above any real rig's.

    Parameters
    ----------
    header_bytes : size of the JSON header (default 64 KiB; Open Ephys headers are about 250 bytes).
    counter : ``message_num``, ``sample_num`` and ``timestamp`` stay below this (default 2**62, so
        that sums of them never overflow int64).
    num_samples : samples in one message (default 4,194,304: 16 MB of float32).
    channel_num : the largest channel index (default 65,535).
    name_chars : length of a stream or channel name (default 256).
    sample_rate_hz : the largest sample rate (default 10 MHz).
    block_channels : channels in one packed block (default 4,096).
    streams, channels : distinct streams and (stream, channel) pairs one subscriber keeps (defaults
        256 and 16,384: several Neuropixels probes); a message that would add one more is malformed.
    depth : nesting of objects and arrays in a header (default 16; raphe's own headers nest 3 deep).
    """

    header_bytes: int = 65_536
    counter: int = 2**62
    num_samples: int = 4_194_304
    channel_num: int = 65_535
    name_chars: int = 256
    sample_rate_hz: float = 1e7
    block_channels: int = 4096
    streams: int = 256
    channels: int = 16_384
    depth: int = 16

    @property
    def message_bytes(self) -> int:
        """The largest legal message: a header at its limit and the largest payload."""
        return self.header_bytes + 4 * self.num_samples + 64


DEFAULT_LIMITS = Limits()


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


@dataclass(frozen=True, slots=True)
class PackedBlock:
    """Every channel of a stream over one block, as decoded from a packed BLOCK message.

    ``samples`` is (channels, num_samples) float32, already scaled (an int16 payload times its
    scale); row ``i`` is channel ``channel_nums[i]``, named ``channel_names[i]``.
    """

    message_num: int
    stream: str
    sample_num: int
    sample_rate: float
    channel_nums: tuple[int, ...]
    channel_names: tuple[str, ...]
    samples: np.ndarray
    timestamp: int
    units: str | None = None

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[1])


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
    return [DATA_ENVELOPE, orjson.dumps(header), payload.tobytes()]


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
    return [EVENT_ENVELOPE, orjson.dumps(header), payload]


def encode_block(message_num: int, stream: str, sample_num: int, sample_rate: float, samples: np.ndarray,
                 channel_nums: list[int] | None = None, channel_names: list[str] | None = None,
                 units: str | None = None, dtype: str = "float32", scale: float = 1.0,
                 timestamp: int | None = None) -> list[bytes]:
    """Frames of one packed BLOCK message: ``samples`` (channels, n); as int16, ``samples / scale``
    rounded is sent and the receiver multiplies by ``scale``."""
    samples = np.asarray(samples)
    if dtype == "int16":
        payload = np.clip(np.round(samples / scale), -32768, 32767).astype(BLOCK_DTYPES["int16"])
    else:
        payload = np.asarray(samples, BLOCK_DTYPES["float32"])
    channels, n = payload.shape
    content = {"stream": stream, "sample_num": int(sample_num), "sample_rate": float(sample_rate),
               "num_samples": int(n), "num_channels": int(channels), "dtype": dtype, "scale": float(scale),
               "channel_nums": list(range(channels)) if channel_nums is None else [int(c) for c in channel_nums]}
    if channel_names is not None:
        content["channel_names"] = list(channel_names)
    if units is not None:
        content["units"] = units
    header = {"message_num": message_num, "type": "block", "version": BLOCK_VERSION, "content": content,
              "data_size": payload.nbytes, "timestamp": now_ms() if timestamp is None else timestamp}
    return [BLOCK_ENVELOPE, orjson.dumps(header), np.ascontiguousarray(payload).tobytes()]


# Unknown fields are forbidden so that msgspec refuses them at their key instead of skipping their
# value, which it does recursively (a deep value would raise RecursionError).
class _DataContent(msgspec.Struct, forbid_unknown_fields=True):
    stream: str
    channel_num: int
    channel_name: str
    num_samples: int
    sample_num: int
    sample_rate: float
    units: str | None = None
    n_channels: int | None = None


class _DataHeader(msgspec.Struct, forbid_unknown_fields=True):
    message_num: int
    type: str
    content: _DataContent
    data_size: int
    timestamp: int
    message_no: int | None = None


_DATA_HEADER = msgspec.json.Decoder(_DataHeader)


def _accepted_data(frames: list[bytes], limits: Limits) -> DataBlock | None:
    """A DATA message that is exactly the format, decoded in one typed pass; None for anything else
    (the general path then says what is wrong)."""
    if len(frames) != 3 or bytes(frames[0]) != DATA_ENVELOPE or len(frames[1]) > limits.header_bytes:
        return None
    try:
        h = _DATA_HEADER.decode(frames[1])
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    c = h.content
    payload = frames[2]
    if not (h.type == "data" and h.message_no is None and c.n_channels is None
            and 1 <= h.message_num < limits.counter and 0 <= h.timestamp < limits.counter
            and 0 <= c.channel_num <= limits.channel_num and 0 <= c.sample_num < limits.counter
            and 1 <= c.num_samples <= limits.num_samples and h.data_size == len(payload) == 4 * c.num_samples
            and 0 < c.sample_rate <= limits.sample_rate_hz and math.isfinite(c.sample_rate)
            and len(c.stream) <= limits.name_chars and len(c.channel_name) <= limits.name_chars):
        return None
    units = c.units if c.units is not None and len(c.units) <= limits.name_chars else None
    return DataBlock(h.message_num, c.stream, c.channel_num, c.channel_name, c.sample_num, c.sample_rate,
                     np.frombuffer(payload, dtype=SAMPLE_DTYPE), h.timestamp, units)


def decode(frames: list[bytes], limits: Limits = DEFAULT_LIMITS) -> DataBlock | TTLEvent | PackedBlock:
    """Decode one multipart message; raise :class:`MalformedMessage` if it is not exactly the format."""
    accepted = _accepted_data(frames, limits)
    if accepted is not None:
        return accepted
    if len(frames) < 2:
        raise MalformedMessage("frames", f"{len(frames)} frame(s), expected 3")
    header = _parse_header(frames[1], limits)
    if "message_no" in header:
        raise LegacyFormat("header key 'message_no'")
    envelope = bytes(frames[0])
    if envelope == DATA_ENVELOPE:
        if isinstance(header.get("content"), dict) and "n_channels" in header["content"]:
            raise LegacyFormat("all channels in one message")
        return _decode_data(header, frames, limits)
    if envelope == EVENT_ENVELOPE:
        return _decode_event(header, frames, limits)
    if envelope == BLOCK_ENVELOPE:
        return _decode_block(header, frames, limits)
    raise MalformedMessage("envelope", f"unknown envelope {envelope[:16]!r}")


def nesting_depth(raw: bytes, limit: int) -> int:
    """How deep JSON text ``raw`` nests objects and arrays, brackets inside strings not counted; any
    value up to ``limit`` when the text has at most ``limit`` brackets in all (the common case,
    settled by counting them).

    The exact scan is vectorized over the bytes: a quote preceded by an odd run of backslashes is
    inside its string, and a bracket lies inside a string when an odd number of real quotes
    precede it. Where the text is not JSON, the result is exact up to the first error, which is as
    far as a parser goes.
    """
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return 0
    codes = np.frombuffer(raw, np.uint8)
    quotes = codes == ord('"')
    if b"\\" in raw:
        index = np.arange(len(codes))
        # the last byte at or before each position that is not a backslash
        last_other = np.maximum.accumulate(np.where(codes == ord("\\"), -1, index))
        quotes[1:] &= (index[:-1] - last_other[:-1]) % 2 == 0
    outside = (np.cumsum(quotes, dtype=np.int32) & 1) == 0
    folded = codes | 0x20  # "[" and "]" fold onto "{" and "}"; no other byte does
    steps = ((folded == ord("{")) & outside).view(np.int8) - ((folded == ord("}")) & outside).view(np.int8)
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def _parse_header(raw: bytes, limits: Limits) -> dict:
    if len(raw) > limits.header_bytes:
        raise MalformedMessage("header_size", f"header of {len(raw):,} bytes (limit {limits.header_bytes:,})")
    raw = bytes(raw)
    depth = nesting_depth(raw, limits.depth)
    if depth > limits.depth:
        raise MalformedMessage("too_deep", f"header nests {depth:,} levels deep (limit {limits.depth})")
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        kind = "number_range" if "number" in str(exc) else "json"
        raise MalformedMessage(kind, f"header is not UTF-8 JSON ({str(exc).split(':')[0]})") from None
    if not isinstance(header, dict):
        raise MalformedMessage("json", "header is not a JSON object")
    return header


def _require(mapping: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise MalformedMessage("missing_key", f"{where} lacks {', '.join(missing)}")


def _int(value, name: str, minimum: int, maximum: int) -> int:
    # bool is an int subclass in Python; JSON true/false is never a count.
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedMessage("bad_value", f"{name} is not an integer: {_short(value)}")
    if value < minimum:
        raise MalformedMessage("negative", f"{name} = {value} (must be >= {minimum})")
    if value >= maximum:
        raise MalformedMessage("number_range", f"{name} = {value} (must be < {maximum})")
    return value


def _str(value, name: str, limits: Limits) -> str:
    if not isinstance(value, str):
        raise MalformedMessage("bad_value", f"{name} is not a string: {_short(value)}")
    if len(value) > limits.name_chars:
        raise MalformedMessage("name_length", f"{name} has {len(value)} characters (limit {limits.name_chars})")
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_top(header: dict, frames: list[bytes], expected_type: str, limits: Limits) -> tuple[dict, bytes]:
    if len(frames) != 3:
        raise MalformedMessage("frames", f"{len(frames)} frames, expected 3")
    _require(header, ("message_num", "type", "content", "data_size", "timestamp"), "header")
    if header["type"] != expected_type:
        raise MalformedMessage("type", f"type {_short(header['type'])} under a {expected_type.upper()} envelope")
    content = header["content"]
    if not isinstance(content, dict):
        raise MalformedMessage("bad_value", "content is not a JSON object")
    payload = bytes(frames[2])
    data_size = _int(header["data_size"], "data_size", 0, 4 * limits.num_samples + 1)
    if len(payload) != data_size:
        raise MalformedMessage("payload_size", f"payload has {len(payload)} bytes, data_size says {data_size}")
    return content, payload


def _decode_data(header: dict, frames: list[bytes], limits: Limits) -> DataBlock:
    content, payload = _check_top(header, frames, "data", limits)
    _require(content, DATA_CONTENT_KEYS, "content")
    num_samples = _int(content["num_samples"], "num_samples", 1, limits.num_samples + 1)
    if len(payload) != 4 * num_samples:
        raise MalformedMessage(
            "payload_size", f"payload has {len(payload)} bytes for {num_samples} float32 samples"
        )
    rate = content["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0 \
            or rate > limits.sample_rate_hz:
        raise MalformedMessage("sample_rate", f"sample_rate is not a finite positive number up to "
                                              f"{limits.sample_rate_hz:g}: {_short(rate)}")
    units = content.get("units")
    return DataBlock(
        message_num=_int(header["message_num"], "message_num", 1, limits.counter),
        stream=_str(content["stream"], "stream", limits),
        channel_num=_int(content["channel_num"], "channel_num", 0, limits.channel_num + 1),
        channel_name=_str(content["channel_name"], "channel_name", limits),
        sample_num=_int(content["sample_num"], "sample_num", 0, limits.counter),
        sample_rate=float(rate),
        samples=np.frombuffer(payload, dtype=SAMPLE_DTYPE),
        timestamp=_int(header["timestamp"], "timestamp", 0, limits.counter),
        units=units if isinstance(units, str) and len(units) <= limits.name_chars else None,
    )


def _decode_event(header: dict, frames: list[bytes], limits: Limits) -> TTLEvent:
    content, payload = _check_top(header, frames, "event", limits)
    _require(content, EVENT_CONTENT_KEYS, "content")
    event_type = content["type"]
    if event_type != TTL_EVENT_TYPE:
        raise MalformedMessage("event_type", f"event type {_short(event_type)} is not TTL ({TTL_EVENT_TYPE})")
    if len(payload) != TTL_PAYLOAD.size:
        raise MalformedMessage("payload_size", f"TTL payload has {len(payload)} bytes, expected 10")
    line, state, word = TTL_PAYLOAD.unpack(payload)
    return TTLEvent(
        message_num=_int(header["message_num"], "message_num", 1, limits.counter),
        stream=_str(content["stream"], "stream", limits),
        source_node=_int(content["source_node"], "source_node", 0, limits.counter),
        sample_num=_int(content["sample_num"], "sample_num", 0, limits.counter),
        line=line,
        state=state,
        word=word,
        timestamp=_int(header["timestamp"], "timestamp", 0, limits.counter),
    )


def _decode_block(header: dict, frames: list[bytes], limits: Limits) -> PackedBlock:
    content, payload = _check_top(header, frames, "block", limits)
    if header.get("version") != BLOCK_VERSION:
        raise MalformedMessage("block_version", f"packed block version {_short(header.get('version'))} "
                                                f"(this raphe reads version {BLOCK_VERSION})")
    _require(content, BLOCK_CONTENT_KEYS, "content")
    channels = _int(content["num_channels"], "num_channels", 1, limits.block_channels + 1)
    n = _int(content["num_samples"], "num_samples", 1, limits.num_samples // channels + 1)
    dtype = BLOCK_DTYPES.get(content["dtype"]) if isinstance(content["dtype"], str) else None
    if dtype is None:
        raise MalformedMessage("bad_value", f"dtype {_short(content['dtype'])} (float32 or int16)")
    if len(payload) != channels * n * dtype.itemsize:
        raise MalformedMessage("payload_size", f"payload has {len(payload)} bytes for {channels} x {n} {dtype.name}")
    scale = content.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise MalformedMessage("bad_value", f"scale is not a finite positive number: {_short(scale)}")
    rate = content["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0 \
            or rate > limits.sample_rate_hz:
        raise MalformedMessage("sample_rate", f"sample_rate is not a finite positive number up to "
                                              f"{limits.sample_rate_hz:g}: {_short(rate)}")
    nums = _channel_list(content.get("channel_nums", list(range(channels))), channels, limits)
    names = content.get("channel_names", [f"CH{c}" for c in nums])
    if not isinstance(names, list) or len(names) != channels or not all(
            isinstance(name, str) and len(name) <= limits.name_chars for name in names):
        raise MalformedMessage("bad_value", f"channel_names must name {channels} channels, each a string of at most "
                                            f"{limits.name_chars} characters")
    samples = np.frombuffer(payload, dtype=dtype).reshape(channels, n)
    samples = samples.astype(np.float32) * np.float32(scale) if dtype.kind == "i" else samples
    units = content.get("units")
    return PackedBlock(
        message_num=_int(header["message_num"], "message_num", 1, limits.counter),
        stream=_str(content["stream"], "stream", limits),
        sample_num=_int(content["sample_num"], "sample_num", 0, limits.counter),
        sample_rate=float(rate), channel_nums=nums, channel_names=tuple(names),
        samples=samples, timestamp=_int(header["timestamp"], "timestamp", 0, limits.counter),
        units=units if isinstance(units, str) and len(units) <= limits.name_chars else None)


def _channel_list(nums, channels: int, limits: Limits) -> tuple[int, ...]:
    """``channel_nums`` of a packed block, checked in one pass: distinct integers in range."""
    if not isinstance(nums, list) or len(nums) != channels:
        raise MalformedMessage("bad_value", f"channel_nums must list {channels} channels")
    if not all(type(c) is int for c in nums):
        raise MalformedMessage("bad_value", "channel_nums must be integers")
    values = np.asarray(nums, dtype=object).astype(np.float64)
    if values.min() < 0 or values.max() > limits.channel_num:
        raise MalformedMessage("number_range", f"channel_nums must lie in 0..{limits.channel_num}")
    if len(set(nums)) != channels:
        raise MalformedMessage("bad_value", "channel_nums repeat a channel")
    return tuple(nums)
