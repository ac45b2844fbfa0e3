"""Online spike detection: ``config`` (the rule and the window: what counts as a spike), ``kernels``
(numba loops over preallocated arrays), ``online`` (the stateful wrapper: ``Detector``, ``Events``)
and ``plausibility`` (the signal checks: whether a channel carries cell-attached current at all)."""
