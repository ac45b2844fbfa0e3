"""The paths of raphe, built from the same components and handing their results to ``raphe.outputs``:

- live: ``live`` (the service: a rig's or a replay's stream → the channel bank → the model → the
  cells → the sinks), ``wiring`` (its options and sinks), ``pieces`` (a message's channel blocks,
  cut to size), ``shards`` (`serve --workers N`), ``loop`` (the one receive loop, and ``serve``),
  ``listen`` (the same loop with counters only), ``timings`` (per-stage histograms);
- offline: ``offline`` (files and folders → the same bank, model and cells, in batches, over
  processes or a Dask cluster);
- both: ``bank`` (detector rows, the signal checks they feed and the cells they tell);
- ``demo`` (the live path on a simulated rig) and ``labelled_recordings`` (a lab's labelled
  recordings cut into window sets for training, as the runtime's detector cuts them).

Nothing here formats what leaves raphe: every output renders a cell's ``CellState``.
"""
