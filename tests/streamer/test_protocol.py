"""Encoding and strict decoding of hand-built messages, per docs/wire-protocol.md."""

import json
import struct

import numpy as np
import pytest

from raphe.streamer.protocol import DataBlock, LegacyFormat, MalformedMessage, TTLEvent, decode, encode_data, encode_ttl


def data_frames(**overrides) -> list[bytes]:
    """A valid DATA message written out by hand (not with encode_data), with fields overridden."""
    samples = overrides.pop("samples", np.arange(4, dtype="<f4"))
    content = {"stream": "rig", "channel_num": 1, "channel_name": "CH2", "num_samples": len(samples),
               "sample_num": 1000, "sample_rate": 40000.0}
    content.update(overrides.pop("content", {}))
    header = {"message_num": 7, "type": "data", "content": content, "data_size": 4 * len(samples),
              "timestamp": 1700000000000}
    header.update(overrides)
    return [b"DATA\x00", json.dumps(header).encode(), np.asarray(samples, "<f4").tobytes()]


def test_hand_built_data_message_decodes():
    block = decode(data_frames())
    assert isinstance(block, DataBlock)
    assert (block.message_num, block.stream, block.channel_num, block.channel_name) == (7, "rig", 1, "CH2")
    assert (block.sample_num, block.sample_rate, block.num_samples, block.units) == (1000, 40000.0, 4, None)
    assert block.samples.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(block.samples, [0, 1, 2, 3])


def test_encode_data_matches_the_documented_layout():
    samples = np.array([1.5, -2.25, 3e-8], dtype=np.float64)
    frames = encode_data(3, "cell", 0, "Im", 42, 25000.0, samples, units="pA", timestamp=123)
    assert frames[0] == b"DATA\x00"
    header = json.loads(frames[1])
    assert header == {"message_num": 3, "type": "data", "data_size": 12, "timestamp": 123,
                      "content": {"stream": "cell", "channel_num": 0, "channel_name": "Im", "num_samples": 3,
                                  "sample_num": 42, "sample_rate": 25000.0, "units": "pA"}}
    assert frames[2] == struct.pack("<3f", *samples.astype(np.float32))
    block = decode(frames)
    assert block.units == "pA"
    np.testing.assert_array_equal(block.samples, samples.astype(np.float32))


def test_ttl_event_round_trip_and_layout():
    frames = encode_ttl(9, "rig", 100, 5555, line=3, state=1, word=0x8, timestamp=1)
    assert frames[0] == b"EVENT\x00"
    assert frames[2] == bytes([3, 1]) + (8).to_bytes(8, "little")
    event = decode(frames)
    assert isinstance(event, TTLEvent)
    assert (event.message_num, event.source_node, event.sample_num, event.line, event.state, event.word) == (
        9, 100, 5555, 3, 1, 8)


def malformed_cases():
    good = data_frames()
    header = json.loads(good[1])
    return {
        "one frame": ([b"DATA\x00"], "frames"),
        "four frames": (good + [b"extra"], "frames"),
        "two frames": (good[:2], "frames"),
        "unknown envelope": ([b"SPIKE\x00"] + good[1:], "envelope"),
        "envelope without NUL": ([b"DATA"] + good[1:], "envelope"),
        "garbage header": ([b"DATA\x00", b"\xff\xfe{not json", good[2]], "json"),
        "header is a list": ([b"DATA\x00", b"[1, 2]", good[2]], "json"),
        "missing content key": ([b"DATA\x00", json.dumps({**header, "content": {
                                    k: v for k, v in header["content"].items() if k != "sample_num"}}).encode(),
                                 good[2]], "missing_key"),
        "missing top key": ([b"DATA\x00", json.dumps({k: v for k, v in header.items() if k != "data_size"})
                             .encode(), good[2]], "missing_key"),
        "truncated payload": (good[:2] + [good[2][:-2]], "payload_size"),
        "data_size lies": (data_frames(data_size=8), "payload_size"),
        "num_samples lies": (data_frames(content={"num_samples": 3}), "payload_size"),
        "zero samples": (data_frames(samples=np.zeros(0), content={"num_samples": 0}), "negative"),
        "negative sample_num": (data_frames(content={"sample_num": -5}), "negative"),
        "negative channel": (data_frames(content={"channel_num": -1}), "negative"),
        # NaN and Infinity are not JSON: a header holding them is not a JSON header at all
        "NaN sample rate": ([b"DATA\x00", json.dumps({**header, "content": {**header["content"],
                                                                            "sample_rate": float("nan")}})
                             .encode(), good[2]], "json"),
        "infinite sample rate": ([b"DATA\x00", json.dumps({**header, "content": {**header["content"],
                                                                                 "sample_rate": float("inf")}})
                                  .encode(), good[2]], "json"),
        "sample rate beyond 10 MHz": (data_frames(content={"sample_rate": 1e9}), "sample_rate"),
        "integer of 5,000 digits": ([b"DATA\x00", good[1].replace(b'"sample_num": 1000', b'"sample_num": ' + b"9" * 5000),
                                     good[2]], "number_range"),
        "nested 100,000 deep": ([b"DATA\x00", b"[" * 100_000 + b"]" * 100_000, good[2]], "header_size"),
        "nested 2,000 deep": ([b"DATA\x00", b"[" * 2_000 + b"]" * 2_000, good[2]], "too_deep"),
        "sample_num 2**63": (data_frames(content={"sample_num": 2**63}), "number_range"),
        "sample_num 2**64": (data_frames(content={"sample_num": 2**64}), "bad_value"),
        "message_num 2**62": (data_frames(message_num=2**62), "number_range"),
        "channel 70,000": (data_frames(content={"channel_num": 70_000}), "number_range"),
        "stream name of 10,000 characters": (data_frames(content={"stream": "s" * 10_000}), "name_length"),
        "header of 1 MB": ([b"DATA\x00", json.dumps({**header, "pad": "x" * 1_000_000}).encode(), good[2]],
                           "header_size"),
        "zero sample rate": (data_frames(content={"sample_rate": 0}), "sample_rate"),
        "string sample rate": (data_frames(content={"sample_rate": "40k"}), "sample_rate"),
        "boolean message_num": (data_frames(message_num=True), "bad_value"),
        "float sample_num": (data_frames(content={"sample_num": 1.5}), "bad_value"),
        "event under DATA": (data_frames(type="event"), "type"),
        "content not an object": ([b"DATA\x00", json.dumps({**header, "content": [1]}).encode(), good[2]],
                                  "bad_value"),
        "non-TTL event": ([b"EVENT\x00", json.dumps({"message_num": 1, "type": "event", "data_size": 10,
                                                     "timestamp": 0, "content": {"stream": "s", "source_node": 1,
                                                                                 "type": 5, "sample_num": 0}})
                           .encode(), bytes(10)], "event_type"),
        "short TTL payload": (encode_ttl(1, "s", 1, 0, 0, 1, 1)[:2] + [bytes(9)], "payload_size"),
    }


@pytest.mark.parametrize("case", list(malformed_cases()))
def test_malformed_message_is_refused_with_its_kind(case):
    frames, kind = malformed_cases()[case]
    with pytest.raises(MalformedMessage) as info:
        decode(frames)
    assert info.value.kind == kind


def test_legacy_message_no_format_is_refused_naming_the_version():
    legacy_header = {"message_no": 12, "type": "data", "content": {"n_channels": 2, "n_samples": 3,
                                                                   "n_real_samples": 3, "sample_rate": 30000},
                     "data_size": 24, "timestamp": 0}
    with pytest.raises(LegacyFormat) as info:
        decode([b"DATA", json.dumps(legacy_header).encode(), bytes(24)])
    assert info.value.kind == "legacy"
    assert "0.4/0.5" in str(info.value)


def test_legacy_all_channels_in_one_message_is_refused():
    frames = data_frames(content={"n_channels": 2})
    with pytest.raises(LegacyFormat):
        decode(frames)
