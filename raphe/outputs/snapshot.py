"""What the live browser view shows (`raphe serve --web`), built from the service a few times a second.

A snapshot holds the stream's header (counters, per-stage latency, seconds since data last came),
one row per cell (decision, posterior and its parts, rate, novelty, drops), and details for the
cells the browsers ask about (else the first ``DEFAULT_DETAILS``): the posterior of each evidence
stream over recorded time, the mean window against the class averages, the ISI histogram. Cells
are independent of the terminal table's: both read the same service.

Each cell's posterior history is sampled here, when a snapshot finds the cell changed, and kept to
the last ``HISTORY`` points: memory is bounded however long the service runs, at the price of a
history at the snapshot rate, not per spike.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from raphe.classifier.runtime.posterior import NOT_CLASSIFIABLE, UNDECIDED, leanings, top_class
from raphe.streamer.web import WebView

from .live import Channel, Service
from .why import CLASS_ISI_RANGES, scaled_class_means

SNAPSHOT_S = 0.5
HISTORY = 600
DEFAULT_DETAILS = 8
# A stream that has sent nothing for this long is shown as lost.
LOST_AFTER_S = 2.0
# ISI histogram bins (s), log-spaced as in `classify --report`.
ISI_EDGES = np.logspace(np.log10(0.004), np.log10(10.0), 41)
PARTS = ("joint", "waveform", "firing")


def rounded(values, digits: int = 4) -> list[float]:
    """Plain floats, rounded: the page needs no more, and the JSON shrinks by half."""
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


class LiveView:
    """Snapshots of ``service`` for ``web``; call ``tick(seconds)`` as often as you like."""

    def __init__(self, service: Service, web: WebView, title: str):
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

    def _sample_history(self) -> None:
        keep = {}
        for key, channel in self.service.channels.items():
            cell = channel.cell
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
        self._sample_history()
        idle = None if service.last_data_at is None else time.monotonic() - service.last_data_at
        counters = service.counters()
        stages = {name: {"n": s["n"], "p50_us": round(1e6 * s["p50_s"], 1), "p99_us": round(1e6 * s["p99_s"], 1)}
                  for name, s in service.timings.summary().items() if s["n"]}
        header = {"title": self.title, "seconds": round(seconds, 2), "spikes": service.spikes,
                  "counters": counters, "stages": stages, "idle_s": None if idle is None else round(idle, 2),
                  "lost": idle is not None and idle > LOST_AFTER_S, "ended": final, **self._model_header}
        keys = sorted(service.channels)
        rows = [self._row(service.channels[k]) for k in keys]
        asked = self.web.asked()
        default = [service.channels[k].cell.id for k in keys[:DEFAULT_DETAILS]]
        details = {service.channels[k].cell.id: self._details(service.channels[k]) for k in keys
                   if service.channels[k].cell.id in asked or service.channels[k].cell.id in default}
        return {"header": header, "cells": rows, "details": details, "default_details": default}

    def _row(self, channel: Channel) -> dict:
        cell = channel.cell
        wire = self.service.subscriber.stats.channels.get((cell.stream, cell.channel_num))
        decision = cell.decision
        return {"cell": cell.id, "name": cell.channel_name, "acquisition": cell.acquisition,
                "spikes": cell.n_spikes, "rate_hz": round(cell.rate_hz, 3), "recorded_s": round(cell.seconds, 2),
                "decision": decision, "decided": decision not in (UNDECIDED, NOT_CLASSIFIABLE),
                "posterior": rounded(cell.posterior.posterior),
                "parts": {p: rounded(cell.posterior.parts[p]) for p in PARTS},
                "top": top_class(cell.classes, cell.posterior.posterior),
                "leanings": leanings(cell.classes, cell.posterior.parts),
                "spikes_to_decision": cell.posterior.spikes_to_decision if decision == cell.posterior.decision
                else None, "seconds_to_decision": cell.seconds_to_decision, "novel": cell.n_novel,
                "dropped_windows": self.service.dropped(channel), "lost_samples": wire.lost_samples if wire else 0,
                "reasons": cell.reasons}

    def _details(self, channel: Channel) -> dict:
        cell = channel.cell
        history = self._history.get((cell.id, cell.acquisition), ())
        columns = list(zip(*history)) if history else [[] for _ in range(1 + len(PARTS))]
        mean = cell.mean_window
        intervals = cell.train.recent_intervals()
        counts = np.histogram(np.clip(intervals, ISI_EDGES[0], ISI_EDGES[-1]), ISI_EDGES)[0]
        return {"history": {"recorded_s": list(columns[0]), **{p: list(c) for p, c in zip(PARTS, columns[1:])}},
                "mean_window": None if mean is None else rounded(mean, 3),
                "class_means": {} if mean is None else {c: rounded(w, 3) for c, w in
                                                        scaled_class_means(self.service.model, mean).items()},
                "isi_counts": counts.tolist(), "n_isi": int(len(intervals))}
