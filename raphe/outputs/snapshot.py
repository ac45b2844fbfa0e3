"""What the live browser view shows (`raphe serve --web`), built from the service a few times a second
(the server that hands it to browsers is ``raphe.outputs.web``).

A snapshot holds the stream's header (counters, per-stage latency, seconds since data last came),
one row per cell (decision, posterior and its parts, rate, novelty, drops), and details for the
cells the browsers ask about (else the first ``DEFAULT_DETAILS``): the posterior of each evidence
stream over recorded time, the mean window the posterior took against the class averages and the
mean of the windows rejected as novel, the histogram of the intervals the firing model read (the
same windows and intervals as `classify --report-dir`). Each row is drawn from the cell's
:class:`~raphe.classifier.runtime.cells.CellState`, as the terminal table's.

Each cell's posterior history is sampled here, when a snapshot finds the cell changed, and kept to
the last ``HISTORY`` points: memory is bounded however long the service runs, at the price of a
history at the snapshot rate, not per spike.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Protocol

import numpy as np

from raphe.classifier.runtime.cells import Cell
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.posterior import PosteriorConfig

from .report import CLASS_ISI_RANGES, ISI_EDGES, scaled_class_means
from .web import WebView

SNAPSHOT_S = 0.5
HISTORY = 600
DEFAULT_DETAILS = 8
# A stream that has sent nothing for this long is shown as lost.
LOST_AFTER_S = 2.0
PARTS = ("joint", "waveform", "firing")


class Watched(Protocol):
    """What the view reads of a live service (``raphe.pipelines.live.Service`` meets it)."""

    model: Model
    posterior: PosteriorConfig
    spikes: int
    last_data_at: float | None

    def counters(self) -> dict: ...

    def cells(self) -> list[tuple[Cell, int]]: ...


def rounded(values, digits: int = 4) -> list[float]:
    """Plain floats, rounded: the page needs no more, and the JSON shrinks by half."""
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


class LiveView:
    """Snapshots of ``service`` for ``web``; call ``tick(seconds)`` as often as you like."""

    def __init__(self, service: Watched, web: WebView, title: str):
        self.service = service
        self.web = web
        self.title = title
        self._history: dict[tuple[str, int], deque] = {}
        self._seen: dict[tuple[str, int], int] = {}
        self._next = 0.0
        self.snapshots = 0
        self.build_s = 0.0
        model = service.model
        # what every snapshot's header says of the model: the same for the whole session
        self._model_header = {"classes": list(model.classes), "evidence": service.posterior.evidence,
                              "threshold": service.posterior.threshold, "model": model.path.name,
                              "window_ms": rounded(model.window.time_ms(), 3), "isi_edges_s": rounded(ISI_EDGES, 5),
                              "isi_ranges_s": {c: list(r) for c, r in CLASS_ISI_RANGES.items() if c in model.classes}}

    def tick(self, seconds: float, final: bool = False) -> None:
        """Publish a snapshot if ``SNAPSHOT_S`` has passed since the last (always when ``final``)."""
        now = time.monotonic()
        if now < self._next and not final:
            return
        self._next = now + SNAPSHOT_S
        started = time.perf_counter()
        snapshot = self.snapshot(seconds, final)
        self.web.publish(snapshot)
        self.build_s += time.perf_counter() - started
        self.snapshots += 1

    def _sample_history(self, cells: list[Cell]) -> None:
        keep = {}
        for cell in cells:
            ident = (cell.id, cell.acquisition)
            history = self._history.get(ident)
            if history is None:
                history = deque(maxlen=HISTORY)
            if cell.n_spikes and self._seen.get(ident) != cell.n_spikes:
                self._seen[ident] = cell.n_spikes
                parts = cell.posterior.parts
                history.append((round(cell.seconds, 3), *(float(parts[p][0]) for p in PARTS)))
            keep[ident] = history
        self._history = keep  # forgotten cells and old acquisitions go
        self._seen = {k: n for k, n in self._seen.items() if k in keep}

    def snapshot(self, seconds: float, final: bool = False) -> dict:
        service = self.service
        cells = service.cells()
        self._sample_history([cell for cell, _ in cells])
        idle = None if service.last_data_at is None else time.monotonic() - service.last_data_at
        stages = {name: {"n": s["n"], "p50_us": round(1e6 * s["p50_s"], 1), "p99_us": round(1e6 * s["p99_s"], 1)}
                  for name, s in service.timings.summary().items() if s["n"]}
        header = {"title": self.title, "seconds": round(seconds, 2), "spikes": service.spikes,
                  "counters": service.counters(), "stages": stages, "idle_s": None if idle is None else round(idle, 2),
                  "lost": idle is not None and idle > LOST_AFTER_S, "ended": final, **self._model_header}
        rows = [self._row(cell, drops) for cell, drops in cells]
        asked = self.web.asked()
        default = [cell.id for cell, _ in cells[:DEFAULT_DETAILS]]
        details = {cell.id: self._details(cell) for cell, _ in cells if cell.id in asked or cell.id in default}
        return {"header": header, "cells": rows, "details": details, "default_details": default}

    @staticmethod
    def _row(cell: Cell, drops: int) -> dict:
        state = cell.state()
        return {"cell": state.cell, "name": state.channel_name, "acquisition": state.acquisition,
                "spikes": state.n_spikes, "rate_hz": round(state.rate_hz, 3), "recorded_s": round(state.recorded_s, 2),
                "decision": state.decision, "decided": state.decided, "withdrawn": state.withdrawn,
                "has_evidence": state.has_evidence, "posterior": rounded(state.posterior),
                "parts": {p: rounded(state.parts[p]) for p in PARTS}, "top": state.top, "leanings": state.leanings,
                "spikes_to_decision": state.spikes_to_decision, "seconds_to_decision": state.seconds_to_decision,
                "novel": state.n_novel, "drops": drops, "reasons": list(state.reasons), "hints": list(state.hints)}

    def _details(self, cell: Cell) -> dict:
        history = self._history.get((cell.id, cell.acquisition), ())
        columns = list(zip(*history)) if history else [[] for _ in range(1 + len(PARTS))]
        mean, novel = cell.mean_window, cell.novel_mean_window
        intervals = cell.train.recent_intervals()
        counts = np.histogram(np.clip(intervals, ISI_EDGES[0], ISI_EDGES[-1]), ISI_EDGES)[0]
        return {"history": {"recorded_s": list(columns[0]), **{p: list(c) for p, c in zip(PARTS, columns[1:])}},
                "mean_window": None if mean is None else rounded(mean, 3),
                "novel_mean_window": None if novel is None else rounded(novel, 3),
                "class_means": {} if mean is None else {c: rounded(w, 3) for c, w in
                                                        scaled_class_means(self.service.model, mean).items()},
                "isi_counts": counts.tolist(), "n_isi": int(len(intervals))}
