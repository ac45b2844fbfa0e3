"""Judging a model: ``metrics`` (pure functions), ``outcomes`` (each cell replayed through the running
cell), ``evaluate`` (the `raphe evaluate` run), ``matrix`` (models × data sets), ``report`` (markdown
and JSON), ``figures`` (PNG), ``calibration`` (the cell posterior's fit)."""
