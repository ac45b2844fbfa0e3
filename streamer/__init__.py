"""The Open Ephys ZMQ Interface protocol: encoding, strict decoding, publisher, subscriber, heartbeat."""

from .protocol import DataBlock, LegacyFormat, MalformedMessage, TTLEvent, decode, encode_data, encode_ttl
from .publisher import DEFAULT_ENDPOINT, EndpointError, Publisher
from .subscriber import ChannelStats, Continuity, Received, StreamStats, Subscriber

__all__ = [
    "DEFAULT_ENDPOINT", "ChannelStats", "Continuity", "DataBlock", "EndpointError", "LegacyFormat",
    "MalformedMessage", "Publisher", "Received", "StreamStats", "Subscriber", "TTLEvent", "decode",
    "encode_data", "encode_ttl",
]
