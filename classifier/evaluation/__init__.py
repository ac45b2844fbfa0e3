"""Judging a model: ``metrics`` (pure functions), ``evaluate`` (the `raphe evaluate` run),
``report`` (markdown and JSON), ``figures`` (PNG), ``calibration`` (the cell posterior's fit)."""
