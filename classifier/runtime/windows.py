"""Labelled window sets: what training and evaluation read, as .npz or as the seed's per-spike CSVs.

A window set holds N windows of 160 points (4 ms on the model's 40 kHz grid), the class of each, the
cell it came from and the recording day of that cell, so that splits can be made by cell and by day.

On disk:

- ``.npz`` with ``X`` (N, 160) float32, ``y`` (N,) int, ``classes`` (C,) str, ``cell`` (N,) str,
  ``day`` (N,) str and, when known, ``udi_ms`` (N,) float (the cell's UDI, NaN where unknown) and
  ``time_s`` (N,) float (when the spike's threshold crossing came, in seconds from the start of the
  cell's recording; NaN where unknown), from which the firing model reads the cell's intervals.
- the seed's layout: ``ROOT/CLASS/CELL/*.csv`` (or ``ROOT/CLASS/*.csv``), one spike per file, a header
  row, 160 rows of (time in s, current in pA). A cell name such as ``A131024#089`` gives its day as
  the part before ``#``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raphe.core.errors import RapheError
from raphe.core.specs import SEED_WINDOW
from raphe.core.staged import staged

N_POINTS = SEED_WINDOW.n_points
STEP_S = SEED_WINDOW.step_s
UNKNOWN_DAY = "unknown"


@dataclass(frozen=True)
class WindowSet:
    """Windows, their labels and where they came from."""

    X: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    cell: np.ndarray
    day: np.ndarray
    udi_ms: np.ndarray
    time_s: np.ndarray = field(default=None)

    def __post_init__(self):
        n = len(self.X)
        if self.time_s is None:
            object.__setattr__(self, "time_s", np.full(n, np.nan))
        if self.X.ndim != 2 or self.X.shape[1] != N_POINTS:
            raise RapheError(f"windows must have {N_POINTS} points (got shape {self.X.shape})")
        if any(len(a) != n for a in (self.y, self.cell, self.day, self.udi_ms, self.time_s)):
            raise RapheError("window set arrays X, y, cell, day, udi_ms, time_s differ in length")
        if n and (self.y.min() < 0 or self.y.max() >= len(self.classes)):
            raise RapheError(f"labels must be 0..{len(self.classes) - 1} for classes {list(self.classes)}")
        if not np.isfinite(self.X).all():
            raise RapheError("windows hold NaN or infinite values")

    def __len__(self) -> int:
        return len(self.X)

    @property
    def has_times(self) -> bool:
        """Every window carries its spike's time: the set can feed the firing model."""
        return bool(np.isfinite(self.time_s).all())

    def __repr__(self) -> str:
        counts = ", ".join(f"{c} {int((self.y == i).sum())}" for i, c in enumerate(self.classes))
        return (f"WindowSet({len(self)} windows: {counts}; {len(np.unique(self.cell))} cells, "
                f"{len(np.unique(self.day))} days)")

    def subset(self, mask: np.ndarray) -> WindowSet:
        return WindowSet(self.X[mask], self.y[mask], self.classes, self.cell[mask], self.day[mask],
                         self.udi_ms[mask], self.time_s[mask])

    def in_classes(self, classes: tuple[str, ...]) -> WindowSet:
        """The same windows labelled in the order of ``classes`` (a model's); a class of the data that
        is not among them is an error."""
        unknown = [c for k, c in enumerate(self.classes) if c not in classes and (self.y == k).any()]
        if unknown:
            raise RapheError(f"data has classes {unknown} that the model ({'/'.join(classes)}) does not know")
        return make(self.X, np.asarray(self.classes)[self.y], self.cell, self.day, self.udi_ms, classes,
                    self.time_s)

    def require_classes(self, minimum: int = 2) -> None:
        present = [c for i, c in enumerate(self.classes) if (self.y == i).any()]
        if len(present) < minimum:
            raise RapheError(f"need windows of at least {minimum} classes (found {present or 'none'})")


def make(X, labels, cell, day, udi_ms=None, classes=None, time_s=None) -> WindowSet:
    """A window set from arrays, with ``labels`` as class names; classes sorted unless given."""
    labels = np.asarray(labels, dtype=str)
    classes = tuple(classes) if classes is not None else tuple(sorted(set(labels.tolist())))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(labels.tolist()) - set(classes))
    if unknown:
        raise RapheError(f"labels {unknown} are not among the classes {list(classes)}")
    y = np.array([index[c] for c in labels.tolist()], dtype=np.int64)
    n = len(labels)
    udi = np.full(n, np.nan) if udi_ms is None else np.asarray(udi_ms, dtype=np.float64)
    times = np.full(n, np.nan) if time_s is None else np.asarray(time_s, dtype=np.float64)
    return WindowSet(np.asarray(X, dtype=np.float32).reshape(n, -1) if n else np.zeros((0, N_POINTS), np.float32),
                     y, classes, np.asarray(cell, dtype=str), np.asarray(day, dtype=str), udi, times)


def concatenate(sets: list[WindowSet]) -> WindowSet:
    """One window set from several; classes are the union of theirs, in order of appearance."""
    classes: list[str] = []
    for s in sets:
        classes += [c for c in s.classes if c not in classes]
    labels = np.concatenate([np.asarray(s.classes)[s.y] for s in sets]) if sets else np.array([], str)
    return make(np.concatenate([s.X for s in sets]), labels, np.concatenate([s.cell for s in sets]),
                np.concatenate([s.day for s in sets]), np.concatenate([s.udi_ms for s in sets]), classes,
                np.concatenate([s.time_s for s in sets]))


def load(path: str | Path) -> WindowSet:
    """A window set from an .npz file, a folder of class folders of CSVs, or a `raphe synth` folder."""
    path = Path(path)
    if path.is_dir() and (path / "windows.npz").is_file():
        return load_npz(path / "windows.npz")
    if path.is_dir():
        return load_csv_folder(path)
    if not path.exists():
        raise RapheError(f"{path}: no such file or folder")
    return load_npz(path)


def load_npz(path: str | Path) -> WindowSet:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("X", "y", "cell", "day") if k not in data.files]
            if missing:
                raise RapheError(f"{path}: not a window set (missing {', '.join(missing)})")
            X, y = data["X"], data["y"]
            classes = tuple(data["classes"].tolist()) if "classes" in data.files else tuple(
                str(i) for i in range(int(y.max()) + 1 if len(y) else 0))
            udi = data["udi_ms"] if "udi_ms" in data.files else np.full(len(y), np.nan)
            times = data["time_s"] if "time_s" in data.files else np.full(len(y), np.nan)
            if X.ndim != 2 or not np.issubdtype(X.dtype, np.number):
                raise RapheError(f"{path}: X must be a numeric (N, {N_POINTS}) array (got {X.dtype} {X.shape})")
            if not np.issubdtype(y.dtype, np.integer):
                raise RapheError(f"{path}: y must hold integer class indices (got {y.dtype})")
            return WindowSet(X.astype(np.float32), y.astype(np.int64), classes, data["cell"].astype(str),
                             data["day"].astype(str), udi.astype(np.float64), times.astype(np.float64))
    except (OSError, ValueError) as exc:
        raise RapheError(f"{path}: not a readable .npz window set ({exc})") from None


def save_npz(windows: WindowSet, path: str | Path) -> None:
    """Write atomically: the file appears whole or not at all."""
    with staged(path) as partial, partial.open("wb") as fh:
        np.savez_compressed(fh, X=windows.X, y=windows.y, classes=np.asarray(windows.classes),
                            cell=windows.cell, day=windows.day, udi_ms=windows.udi_ms, time_s=windows.time_s)


def day_of(cell: str) -> str:
    return cell.split("#", 1)[0] if "#" in cell else UNKNOWN_DAY


def flat_cell_name(stem: str) -> str:
    """``A131024#089_0012`` -> ``A131024#089``: files laid flat in a class folder are grouped by
    their name without the trailing spike number."""
    return re.sub(r"[_\-\s]*\d+$", "", stem) or stem


def read_spike_csv(path: Path) -> np.ndarray:
    """The current column of one spike file, checked: a header row, then 160 numeric rows."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RapheError(f"{path}: cannot read ({exc})") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise RapheError(f"{path}: empty file")
    dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t") if re.search(r"[,;\t]", lines[0]) else None
    if dialect is None:
        raise RapheError(f"{path}: expected two columns (time, current) separated by commas")
    rows = list(csv.reader(lines[1:], dialect))
    if len(rows) != N_POINTS:
        raise RapheError(f"{path}: a window must have {N_POINTS} rows after the header (got {len(rows)})")
    try:
        current = np.array([float(row[1]) for row in rows], dtype=np.float32)
    except (ValueError, IndexError):
        raise RapheError(f"{path}: non-numeric or missing current value (need columns time, current)") from None
    if not np.isfinite(current).all():
        raise RapheError(f"{path}: NaN or infinite current value")
    return current


def load_csv_folder(root: str | Path) -> WindowSet:
    """The seed's layout: ``root/CLASS/CELL/*.csv`` or ``root/CLASS/*.csv``; class names are folder names."""
    root = Path(root)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        raise RapheError(f"{root}: no class folders (expected {root}/CLASS/CELL/*.csv)")
    X, labels, cells = [], [], []
    for class_dir in class_dirs:
        files = sorted(class_dir.rglob("*.csv"))
        if not files:
            raise RapheError(f"{class_dir}: class folder holds no .csv windows")
        for f in files:
            X.append(read_spike_csv(f))
            labels.append(class_dir.name)
            cells.append(f.parent.name if f.parent != class_dir else flat_cell_name(f.stem))
    windows = make(np.stack(X), labels, cells, [day_of(c) for c in cells])
    windows.require_classes(2)
    return windows


def export_csv_folder(windows: WindowSet, root: str | Path) -> int:
    """Write the seed's layout ``root/CLASS/CELL/spike_NNNNN.csv``; returns the number of files."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise RapheError(f"{root}: folder exists and is not empty; choose a new one")
    time = np.arange(N_POINTS) * STEP_S
    for i in range(len(windows)):
        folder = root / windows.classes[windows.y[i]] / windows.cell[i].replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        rows = "\n".join(f"{t:.6f},{v:.6g}" for t, v in zip(time, windows.X[i]))
        (folder / f"spike_{i:06d}.csv").write_text(f"time,current\n{rows}\n")
    return len(windows)
