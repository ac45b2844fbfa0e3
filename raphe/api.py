"""raphe from Python: :func:`classify` does what `raphe classify` does, to files, folders, numpy arrays
and neo objects, and :func:`serve` runs what `raphe serve` runs, for a script that acts on each spike.

::

    import raphe
    cells = raphe.classify("cell.abf")            # one CellResult per cell
    cells = raphe.classify(trace, rate=20_000)    # a numpy array, in pA
    raphe.to_dataframe(cells)                     # the rows of `raphe classify --out`, with pandas

The defaults are the command line's, and a file's cells are classified by the same functions on the
same samples, so ``classify(path)[k].as_dict()`` is the line `raphe classify --json` prints for that
cell. Bad input raises :class:`~raphe.core.errors.RapheError` with the command line's one line.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from multiprocessing import get_context
from os import PathLike
from pathlib import Path

import numpy as np
import orjson

from raphe.classifier.runtime.cells import CellState
from raphe.classifier.runtime.cascade import Cascade
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.serving import chosen, for_width, load
from raphe.classifier.runtime.posterior import PosteriorConfig
from raphe.core.errors import RapheError
from raphe.core.specs import DATA_ENDPOINT, MIN_SPIKES
from raphe.detector.config import DetectorConfig, rule_settings
from raphe.outputs.results import columns, flat
from raphe.outputs.wire import Outputs
from raphe.pipelines.live import Service
from raphe.pipelines.offline import chosen_channels, classify_recording, no_current, recording_files
from raphe.pipelines.wiring import ServeOptions, Sinks, subscribe
from raphe.replay.contents import MAX_CHANNELS, SAMPLE_RATE_HZ, sweeps_in_order
from raphe.replay.formats import neo_sweeps
from raphe.replay.recording import RECORDING_SUFFIXES, Channel, Recording

__all__ = ["CellResult", "Update", "Updates", "classify", "serve", "to_dataframe"]

# What serve() binds its outputs to unless told: ports of its own, so a script never takes the
# ports of a `raphe serve` running beside it.
EPHEMERAL = "tcp://127.0.0.1:*"


@dataclass(frozen=True)
class CellResult:
    """One classified cell: its final record and its spikes.

    Attributes
    ----------
    state : the cell's final :class:`~raphe.classifier.runtime.cells.CellState`, which every output of
        raphe renders.
    recording : the file's path as given (a folder's files as found in it), or the in-memory source's name.
    spike_times_s : each spike's time in seconds on the recording's clock (the sample counter over the
        sample rate, so episodic sweeps keep their place), in detection order.
    windows : each spike's window (n spikes x the model's points, 160 by default), float32, as classified.
    novel : per spike, whether its window looked like nothing the model was trained on (it did not
        move the posterior).
    model : the file name of the model that classified it.
    """

    state: CellState
    recording: str
    spike_times_s: np.ndarray
    windows: np.ndarray
    novel: np.ndarray
    model: str

    @property
    def cell(self) -> str:
        """``stream:channel``, e.g. ``cell7:0``."""
        return self.state.cell

    @property
    def decision(self) -> str:
        """A class (``SER``, ``NSER``), ``undecided`` or ``not classifiable``."""
        return self.state.decision

    @property
    def posterior(self) -> dict[str, float]:
        """The deciding posterior, class -> probability."""
        return self.state.by_class(self.state.posterior)

    @property
    def parts(self) -> dict[str, dict[str, float]]:
        """The ``waveform``, ``firing`` and ``joint`` posteriors, each class -> probability."""
        return {name: self.state.by_class(part) for name, part in self.state.parts.items()}

    @property
    def n_spikes(self) -> int:
        return self.state.n_spikes

    @property
    def spikes_to_decision(self) -> int | None:
        """The spikes it took to reach the decision (None while no class is decided)."""
        return self.state.spikes_to_decision

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the cell is not classifiable (empty when it is)."""
        return self.state.reasons

    @property
    def hints(self) -> tuple[str, ...]:
        """What explains a cell without evidence (no spikes, spikes of the other polarity)."""
        return self.state.hints

    def as_dict(self) -> dict:
        """The line `raphe classify --json` prints for this cell (plain values, no spikes)."""
        return {"recording": self.recording, "model": self.model, **self.state.as_dict()}

    def __repr__(self) -> str:
        posterior = ", ".join(f"{c} {p:.3f}" for c, p in self.posterior.items())
        return f"<CellResult {self.cell}: {self.decision} ({posterior}), {self.n_spikes} spikes>"


def classify(source, *, model: str | Path | Model | Cascade | None = None, rate: float | None = None, units: str = "pA",
             channels: Sequence[int | str] | None = None, evidence: str | None = None,
             threshold: float | None = None, absolute: bool = False, adaptive: float | None = None,
             polarity: str = "neg", refractory_ms: float = 2.0, decision_threshold: float | None = None,
             min_spikes: int = MIN_SPIKES, name: str | None = None, jobs: int = 1) -> list[CellResult]:
    """Classify every cell of ``source`` as `raphe classify` does.

    Parameters
    ----------
    source : what to classify:

        - a recording's path (``.abf``, ``.axgd``, ``.axgx``, ``.nwb``), a folder (searched recursively),
          or a list of either;
        - a numpy array: one channel (1-D) or channels x samples (2-D), gap-free, in ``units``, at ``rate``;
        - a neo ``AnalogSignal``, ``Segment`` or ``Block`` (each segment a sweep, at its ``t_start``;
          currents in pA and voltages in mV, whatever unit they carry);
        - a SpikeInterface recording (duck-typed on ``get_traces`` and ``get_sampling_frequency``;
          spikeinterface itself is not needed by raphe): each segment a sweep, one after another,
          its traces as ``get_traces()`` returns them, in ``units`` (scale raw ADC counts first).
    model : a model's ``.tflite`` or ``.json``, a shipped one's name (``default``, ``ensemble``,
        ``student``, ``cascade``), a cascade's file, or a loaded
        :class:`~raphe.classifier.runtime.model.Model` or :class:`~raphe.classifier.runtime.cascade.Cascade`
        (default: the default model, the ensemble, with the cascade for a recording of more than 4 channels where it
        stands in for the ensemble, as on the command line; ``CellResult.model`` says which).
    rate : the sample rate of an array in Hz (needed for arrays; other sources carry their own).
    units : the units of an array's or a SpikeInterface recording's samples (default ``"pA"``).
    channels : channel indices or names to classify (default: every channel in pA; other channels
        are classified only when named).
    evidence : which posterior decides: ``both``, ``waveform`` or ``firing`` (default: ``both`` where
        the model has a firing model, else ``waveform``).
    threshold : the detector's threshold in the recording's units (default -50, or +50 with
        ``polarity="pos"``), measured from the running baseline unless ``absolute``.
    absolute : measure ``threshold`` from zero instead of the baseline (default False).
    adaptive : threshold at this many times the robust noise from the running median instead (default None).
    polarity : crossing direction, ``neg``, ``pos`` or ``both`` (default ``neg``).
    refractory_ms : minimum time between events in ms (default 2).
    decision_threshold : posterior a class must reach to be decided, one for every class (default: the
        thresholds the model's risk control chose per class, else 0.99).
    min_spikes : spikes before any decision (default 5).
    name : the stream name of an in-memory source, which names its cells (default: a neo object's
        file stem or name, else ``array``).
    jobs : files classified at once, each in a process of its own (default 1: in this process).

    Returns
    -------
    list of CellResult
        One per cell, in file order and channel order.

    Raises
    ------
    RapheError
        Bad input, with the one line the command line prints: an unreadable file, an array without
        ``rate``, a channel that does not exist, a bad setting. Where several files are given and some
        cannot be classified, each of those is a warning and the others' cells are returned; where
        none gives a cell, the first file's line is raised.

    Examples
    --------
    >>> cells = raphe.classify("cell.abf")
    >>> cells[0]
    <CellResult cell:0: SER (SER 0.998, NSER 0.002), 57 spikes>
    >>> abf = pyabf.ABF("cell.abf")
    >>> raphe.classify(abf.sweepY, rate=abf.sampleRate, polarity="pos")
    """
    if not (isinstance(jobs, int) and jobs >= 1):
        raise RapheError(f"jobs must be a whole number >= 1 (got {jobs!r})")
    model, wide, posterior = _model(model, decision_threshold, min_spikes, evidence)
    settings = rule_settings(threshold, absolute, adaptive, polarity, refractory_ms)
    DetectorConfig(window=model.window, **settings)  # bad settings are refused before any file is read
    wanted = None if channels is None else [str(c) for c in channels]
    if _is_paths(source):
        paths = [source] if isinstance(source, (str, PathLike)) else list(source)
        files = recording_files(paths)
        if not files:
            raise RapheError(f"no recordings ({', '.join(RECORDING_SUFFIXES)}) in {', '.join(map(str, paths))}")
        outcomes = _classify_files(files, (model, wide), settings, posterior, wanted, jobs)
    else:
        recording = _in_memory(source, rate, units, name)
        outcomes = [_classify_recording(recording, recording.name, (model, wide), settings, posterior, wanted)]
    results = [cell for cells, _ in outcomes for cell in cells]
    problems = [problem for _, problem in outcomes if problem]
    if problems and not results:
        raise RapheError(problems[0])
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    return results


def to_dataframe(results: Sequence[CellResult]):
    """A pandas DataFrame of ``results``, one row per cell, with the columns of `raphe classify --out`:
    the cell's fields, then the deciding posterior, each part's and the mean spike probability one
    column per class (``posterior_SER``, ``waveform_posterior_SER``, ...), then the reasons and hints
    ('; '-joined). Needs pandas."""
    try:
        import pandas
    except ImportError:
        raise RapheError("to_dataframe needs pandas: pip install pandas") from None
    classes = tuple(dict.fromkeys(c for r in results for c in r.state.classes))
    if any(r.state.classes != classes for r in results):
        raise RapheError(f"to_dataframe needs cells of one model's classes (got {', '.join(classes)} mixed)")
    rows = []
    for result in results:
        fields, probabilities, texts = flat(result.as_dict(), classes)
        rows.append(fields + probabilities + texts)
    return pandas.DataFrame(rows, columns=columns(classes))


@dataclass(frozen=True)
class Update:
    """One classified spike of one cell, as `raphe serve` publishes it.

    Attributes
    ----------
    cell : ``stream:channel``.
    sample_num : the spike's sample on its stream's counter.
    n_spikes : the cell's spikes so far, this one included.
    novel : this window looks like nothing the model was trained on (it did not move the posterior).
    decision : a class, ``undecided`` or ``not classifiable``, after this spike.
    posterior : the deciding posterior after this spike, class -> probability.
    withdrawn : a class the cell held before this spike and no longer holds, else None.
    content : everything the POSTERIOR message carries (docs/wire-protocol.md): spike probabilities,
        the waveform and firing posteriors, reasons, hints, the model...
    """

    cell: str
    sample_num: int
    n_spikes: int
    novel: bool
    decision: str
    posterior: dict[str, float]
    withdrawn: str | None
    content: dict

    @classmethod
    def from_content(cls, content: dict) -> Update:
        return cls(content["cell"], content["sample_num"], content["n_spikes"], content["novel"], content["decision"],
                   dict(zip(content["classes"], content["posterior"])), content["withdrawn"], content)

    def __repr__(self) -> str:
        posterior = ", ".join(f"{c} {p:.3f}" for c, p in self.posterior.items())
        return f"<Update {self.cell} spike {self.n_spikes} at {self.sample_num}: {self.decision} ({posterior})>"


class _Queued:
    """The service's wire: raphe's output sockets, as `raphe serve` has them, and a copy of every
    update for the script (the serialized POSTERIOR content, which meets the ``Publishing`` protocol
    of ``raphe.outputs.update`` without touching the service)."""

    def __init__(self, outputs: Outputs):
        self.outputs = outputs
        self.queue: deque[bytes] = deque()

    @property
    def dropped(self) -> dict[str, int]:
        return self.outputs.dropped

    def publish_serialized(self, content: bytes, event: bytes) -> None:
        self.outputs.publish_serialized(content, event)
        self.queue.append(content)


class Updates:
    """The updates of a running service, in the order it publishes them; iterating runs the service.

    Attributes
    ----------
    posterior_endpoint, events_endpoint : where its POSTERIOR messages and spike events are bound,
        for other clients.
    """

    def __init__(self, service: Service, wire: _Queued, duration: float | None, idle: float | None):
        self._service, self._wire = service, wire
        self._duration, self._idle = duration, idle
        self._started = time.monotonic()
        self._last_data: float | None = None
        self.posterior_endpoint = wire.outputs.posterior_endpoint
        self.events_endpoint = wire.outputs.events_endpoint

    def __iter__(self) -> Updates:
        return self

    def __next__(self) -> Update:
        # the service runs only while the script waits for its next update, so it needs no thread;
        # samples that arrive meanwhile wait in ZeroMQ's queue (100,000 messages; beyond, they are
        # lost and the cells see a gap, as a slow `raphe serve` would)
        while not self._wire.queue:
            now = time.monotonic()
            if self._duration is not None and now - self._started >= self._duration:
                raise StopIteration
            if self._idle is not None and self._last_data is not None and now - self._last_data >= self._idle:
                raise StopIteration
            if self._service.step(50):
                self._last_data = time.monotonic()
        return Update.from_content(orjson.loads(self._wire.queue.popleft()))


@contextmanager
def serve(connect: str = DATA_ENDPOINT, *, model: str | Path | Model | Cascade | None = None, units: str | None = None,
          scale: float = 1.0, evidence: str | None = None, threshold: float | None = None, absolute: bool = False,
          adaptive: float | None = None, polarity: str = "neg", refractory_ms: float = 2.0,
          decision_threshold: float | None = None, min_spikes: int = MIN_SPIKES,
          duration: float | None = None, idle: float | None = None, posterior_endpoint: str = EPHEMERAL,
          events_endpoint: str = EPHEMERAL) -> Iterator[Updates]:
    """Classify a rig's stream live, as `raphe serve` does, and hand each spike's update to the script.

    The service is `raphe serve`'s own (the same detector, cells and posterior, so a cell ends as
    :func:`classify` ends it) and publishes on its own output sockets as well, for other clients.

    Parameters
    ----------
    connect : the rig's data endpoint (default tcp://127.0.0.1:5556, where `raphe replay` publishes).
    model : as for :func:`classify` (default: the default model, the ensemble, with the cascade for
        a stream of more than 4 channels where it stands in for the ensemble, as `raphe serve` does).
    evidence, decision_threshold, min_spikes : as for :func:`classify` (defaults: by the model, the model's, 5).
    threshold, absolute, adaptive, polarity, refractory_ms : as for :func:`classify` (defaults: -50, or
        +50 with polarity ``pos``, from the baseline; None; ``neg``; 2 ms).
    units : units of channels whose messages carry none (default None: as they come).
    scale : factor for the samples of such channels (default 1).
    duration : stop after this many seconds (default None: never).
    idle : stop once data has come and then none for this many seconds (default None: never).
    posterior_endpoint, events_endpoint : where the POSTERIOR messages and spike events are published
        (default: ephemeral ports on 127.0.0.1, given by ``updates.posterior_endpoint`` and
        ``updates.events_endpoint``).

    Yields
    ------
    Updates
        An iterator of :class:`Update`, one per classified spike, which ends after ``duration`` or
        ``idle`` (and never without either: break out of the loop). Leaving the ``with`` block
        closes the subscription and the output sockets.

    Examples
    --------
    >>> with raphe.serve("tcp://127.0.0.1:5556", idle=5) as updates:
    ...     for update in updates:
    ...         if update.decision == "SER":
    ...             print(update.cell, "is serotonergic after", update.n_spikes, "spikes")
    ...             break
    """
    model, wide, posterior = _model(model, decision_threshold, min_spikes, evidence)
    settings = rule_settings(threshold, absolute, adaptive, polarity, refractory_ms)
    DetectorConfig(window=model.window, **settings)  # bad settings are refused before any socket is bound
    with Outputs(posterior_endpoint, events_endpoint) as outputs:
        wire = _Queued(outputs)
        source = subscribe(connect, units, scale)
        try:
            service = Service(source, model, posterior, Sinks(wire), ServeOptions(settings), wide)
            yield Updates(service, wire, duration, idle)
        finally:
            source.close()  # the service's subscription: closing it is all Service.close does


def _model(model: str | Path | Model | Cascade | None, decision_threshold: float | None, min_spikes: int,
           evidence: str | None) -> tuple[Model | Cascade, Cascade | None, PosteriorConfig]:
    """The model, the model of wide recordings (or None) and the posterior, as the command line's
    ``--model``, ``--decision-threshold``, ``--min-spikes`` and ``--evidence`` give them."""
    if not (isinstance(min_spikes, int) and min_spikes >= 1):
        raise RapheError(f"min_spikes must be a whole number >= 1 (got {min_spikes!r})")
    model, wide = chosen(model)
    return model, wide, model.posterior_config(decision_threshold, min_spikes, evidence)


def _is_paths(source) -> bool:
    if isinstance(source, (str, PathLike)):
        return True
    return isinstance(source, (list, tuple)) and all(isinstance(s, (str, PathLike)) for s in source)


_Outcome = tuple[list[CellResult], str]  # a file's cells, and the line saying why it gave none (or "")
# The model, and the one for files of more than ENSEMBLE_MAX_CHANNELS channels (or None).
_Models = tuple[Model | Cascade, Cascade | None]


def _classify_files(files: list[Path], models: _Models, settings: dict, posterior: PosteriorConfig,
                    channels: list[str] | None, jobs: int) -> list[_Outcome]:
    """Each file's outcome, in file order: here, or in ``jobs`` spawned processes."""
    if jobs == 1 or len(files) == 1:
        return [_classify_file(f, models, settings, posterior, channels) for f in files]
    paths = tuple(None if m is None else str(m.path) for m in models)
    with ProcessPoolExecutor(min(jobs, len(files)), mp_context=get_context("spawn"), initializer=_load_worker_models,
                             initargs=paths) as pool:
        try:
            return list(pool.map(_classify_in_worker, files, repeat(settings), repeat(posterior), repeat(channels)))
        except BrokenProcessPool:
            raise RapheError("a worker process died while classifying; classify with jobs=1 to see which file") from None


_worker_models: _Models | None = None  # a worker process's models, loaded once by its initializer


def _load_worker_models(path: str, wide: str | None) -> None:
    global _worker_models
    model = load(path)
    _worker_models = (model, None if wide is None else load(wide, loaded=model))


def _classify_in_worker(path: Path, settings: dict, posterior: PosteriorConfig,
                        channels: list[str] | None) -> _Outcome:
    return _classify_file(path, _worker_models, settings, posterior, channels)


def _classify_file(path: Path, models: _Models, settings: dict, posterior: PosteriorConfig,
                   channels: list[str] | None) -> _Outcome:
    """One file as ``raphe.pipelines.offline.classify_file`` classifies it; a file that cannot be
    read gives its line instead of raising, so that the others go on."""
    try:
        recording = Recording(path)
    except RapheError as exc:
        return [], str(exc)
    return _classify_recording(recording, str(path), models, settings, posterior, channels)


def _classify_recording(recording: Recording, label: str, models: _Models, settings: dict,
                        posterior: PosteriorConfig, channels: list[str] | None) -> _Outcome:
    """Every chosen channel's cell, with its spikes; ``label`` is its ``recording`` (a file's path as given)."""
    model, wide = models
    try:
        chosen = chosen_channels(recording, channels)
        if not chosen:
            return [], no_current(recording, label, "channels=[...]")
        model = for_width(len(chosen), model, wide)
        classified = classify_recording(recording, chosen, model, DetectorConfig(window=model.window, **settings),
                                        posterior)
    except RapheError as exc:
        return [], str(exc)
    events = classified.events.records
    results = []
    for k, state in enumerate(classified.states):
        mine = events["channel"] == k
        results.append(CellResult(state, label, events["sample_num"][mine] / recording.sample_rate,
                                  classified.events.windows[mine], np.asarray(classified.novel, bool)[mine],
                                  model.path.name))
    return results, ""


def _in_memory(source, rate: float | None, units: str, name: str | None) -> Recording:
    """A recording of an array, a neo object or a SpikeInterface recording."""
    neo = sys.modules.get("neo")  # a neo object's module is loaded already; raphe never loads it for one
    if neo is not None and isinstance(source, (neo.Block, neo.Segment, neo.AnalogSignal)):
        return _neo_recording(source, name)
    if hasattr(source, "get_traces") and hasattr(source, "get_sampling_frequency"):
        return _spikeinterface_recording(source, units, name)
    if rate is None:
        raise RapheError("an array needs its sample rate: classify(array, rate=HZ)")
    try:
        traces = np.asarray(source, dtype=np.float32)
    except (TypeError, ValueError):
        raise RapheError(f"cannot classify a {type(source).__name__}: give a path, a folder, a list of paths, a "
                         "numpy array with rate=, or a neo AnalogSignal, Segment or Block") from None
    if traces.ndim == 1:
        traces = traces[np.newaxis, :]
    if traces.ndim != 2:
        raise RapheError(f"an array must be one channel (1-D) or channels x samples (2-D); got shape {traces.shape}")
    if traces.size == 0:
        raise RapheError(f"the array holds no samples (shape {traces.shape})")
    if traces.shape[0] > MAX_CHANNELS:
        raise RapheError(f"an array of shape {traces.shape} has {traces.shape[0]} channels (raphe reads "
                         f"1..{MAX_CHANNELS}): give channels x samples (array.T?)")
    channels = [Channel(k, f"ch{k}", units) for k in range(traces.shape[0])]
    return Recording.from_traces(name or "array", _checked_rate(rate), channels, list(traces))


def _checked_rate(rate) -> float:
    low, high = SAMPLE_RATE_HZ
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise RapheError(f"rate must be a number of Hz (got {rate!r})") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise RapheError(f"rate must be a sample rate in Hz within {low:g}..{high:g} (got {rate!r})")
    return value


def _neo_recording(source, name: str | None) -> Recording:
    """Each segment a sweep at its ``t_start``, each signal's columns channels, in pA or mV (as raphe
    reads AxoGraph files through neo)."""
    import neo

    segments = source.segments if isinstance(source, neo.Block) else [source] if isinstance(source, neo.Segment) \
        else None
    signals = [[source]] if segments is None else [list(s.analogsignals) for s in segments]
    if not signals or not signals[0]:
        raise RapheError("the neo object holds no analog signals")
    origin = getattr(source, "file_origin", None)
    label = name or (Path(origin).stem if origin else None) or source.name or "neo"
    rate, channels, sweeps = neo_sweeps(label, signals)
    return Recording.from_sweeps(label, rate, channels, sweeps)


def _spikeinterface_recording(source, units: str, name: str | None) -> Recording:
    """Each segment a sweep, one after another (one sample apart, so no interval spans two),
    channels named by their ids."""
    rate = _checked_rate(source.get_sampling_frequency())
    found = [(0.0, tuple(np.asarray(source.get_traces(segment_index=k), dtype=np.float32).T))
             for k in range(source.get_num_segments())]
    if not found or not found[0][1] or found[0][1][0].size == 0:
        raise RapheError("the SpikeInterface recording holds no samples")
    channels = [Channel(k, str(c), units) for k, c in enumerate(source.get_channel_ids())]
    return Recording.from_sweeps(name or "recording", rate, channels, sweeps_in_order(found, rate))
