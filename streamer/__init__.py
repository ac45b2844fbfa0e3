"""The inputs and the wire: the Open Ephys ZMQ Interface protocol and the Lab Streaming Layer input.

``protocol`` encodes and strictly decodes messages (numpy only), ``publisher`` and ``subscriber``
carry them over ZeroMQ, ``heartbeat`` answers and sends heartbeats, ``security`` holds CURVE keys
and the loopback rule, ``lsl`` reads an LSL stream of samples as an input. Nothing here serves HTTP
or publishes raphe's results: those are ``raphe.outputs``. Import from the module that holds what
you need.
"""
