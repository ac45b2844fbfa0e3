"""Online spike detection: ``config`` (the rule and the window: what counts as a spike), ``kernels``
(numba loops over preallocated arrays) and ``online`` (the stateful wrapper: ``Detector``, ``Events``)."""
