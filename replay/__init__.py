"""Recordings: reading `.abf` files with pyabf (``recording``) and publishing them, paced, on the
Open Ephys ZMQ protocol (``player``). Nothing here knows the classifier."""
