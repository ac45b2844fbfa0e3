"""Everything that leaves raphe, each output rendering the same record of a cell
(``raphe.classifier.runtime.cells.CellState``) and recomputing no rule:

- ``update``: the update every live output renders (a spike and its cell's state after it) and the
  two protocols a live sink meets;
- ``wire``: POSTERIOR messages and Event Broadcaster spike events on raphe's own sockets;
- ``lsl``: Lab Streaming Layer outlets; ``log``: the JSON-lines log;
- ``web`` (the server), ``webpage/`` (the page) and ``snapshot`` (what it shows): the live browser view;
- ``tables``: the terminal's tables; ``results``: `classify --out` CSV; ``detections``: `detect`'s
  CSV and window file; ``nwb``: NWB files; ``report``: the per-cell figures.

Import from the module that holds what you need.
"""
