"""The Open Ephys ZMQ Interface protocol and raphe's outputs.

``protocol`` encodes and strictly decodes messages (numpy only), ``publisher`` and ``subscriber``
carry them over ZeroMQ, ``heartbeat`` answers and sends heartbeats, ``outputs`` publishes raphe's
POSTERIOR messages and spike events. Import from the module that holds what you need.
"""
