"""Conflict cells: each cell's own spikes, re-timed with the firing of a cell of another class.

An atypical SER cell (narrow spikes, slow regular firing) and a slow, regular 5-HT-negative cell
give the same pattern of evidence: the shape says one class and the firing the other. Conflict
cells make that pattern on purpose, so that the rule for it can be fitted and judged: the windows
(and so the shape evidence) are one cell's, its label is that cell's, and its spike times are those
of a cell of the other class, so the firing evidence points the wrong way by construction. A rule
that lets the firing outvote the shape decides these cells wrongly; one that abstains where the
two disagree does not.
"""

from __future__ import annotations

import numpy as np

from raphe.classifier.runtime import windows as ws


def conflict_cells(data: ws.WindowSet, seed: int = 0) -> tuple[ws.WindowSet, np.ndarray]:
    """One conflict cell per cell of ``data`` that has spike times: its first windows, timed by the
    spikes of a cell of another class (partners drawn with ``seed``, cycling where one class has
    fewer cells), as many as both have. Returns the set and, per window, the row of ``data`` it came
    from (so the model's probabilities of ``data`` serve both). A set without spike times, or with
    one class only, gives an empty set."""
    rows_of = {name: np.flatnonzero(data.cell == name) for name in np.unique(data.cell)}
    timed = {name: rows for name, rows in rows_of.items() if np.isfinite(data.time_s[rows]).all()}
    by_class = {k: sorted(n for n, rows in timed.items() if data.y[rows[0]] == k) for k in range(len(data.classes))}
    rng = np.random.default_rng(seed)
    partners_of = {k: list(rng.permutation(names)) for k, names in by_class.items()}
    rows, times, names = [], [], []
    for k, cells in by_class.items():
        others = [n for j, names_j in partners_of.items() if j != k for n in names_j]
        if not others:
            continue
        for i, name in enumerate(cells):
            partner = others[i % len(others)]
            own, theirs = timed[name], timed[partner]
            n = min(len(own), len(theirs))
            partner_times = data.time_s[theirs[:n]]
            rows.append(own[:n])
            times.append(partner_times - partner_times[0] + data.time_s[own[0]])
            names += [f"{name} timed as {partner}"] * n
    if not rows:
        empty = np.zeros(0, dtype=int)
        return data.subset(np.zeros(len(data), dtype=bool)), empty
    index = np.concatenate(rows)
    conflict = ws.WindowSet(data.X[index], data.y[index], data.classes, np.array(names), data.day[index],
                            data.udi_ms[index], np.concatenate(times))
    return conflict, index
