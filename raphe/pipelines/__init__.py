"""The two data paths of raphe, side by side, built from the same components:

- live (``live``): a rig's (or a replay's) ZeroMQ stream → subscriber → detector per cell →
  model → cell posterior → POSTERIOR messages, spike events, a JSON-lines log and a live table;
  ``listen`` is the same receive loop (``loop``) with counters only.
- offline (``offline``): recordings read from files → the same detector → the same model in
  batches → the same cell posterior → JSON lines, CSV, a table; ``events_io`` writes detected
  events for `raphe detect`.

The demo (``demo``) runs the live path on a simulated rig. ``timings`` keeps per-stage histograms.
"""
