"""The offline path: whole recordings, files and folders, detected and classified without sockets.

The detector, cells and posterior are the live service's, fed blocks read straight from the file,
so a cell ends the same way at the desk as at the rig. A file that cannot be read gets one line on
stderr and the others go on; a file with no channel in pA (cell-attached current) is skipped with
one line unless channels are named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from raphe.classifier.runtime.cells import Cell, CellState
from raphe.classifier.runtime.cascade import Cascade
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.serving import for_width, load
from raphe.classifier.runtime.posterior import PosteriorConfig
from raphe.core.errors import RapheError
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Events
from raphe.outputs.nwb import NwbMetadata, write_nwb
from raphe.outputs.report import write_reports
from raphe.replay.player import block_samples
from raphe.replay.recording import RECORDING_SUFFIXES, Channel, Recording

from . import bank
from .bank import Rows

CURRENT_UNITS = ("pA",)


def detect_recording(recording: Recording, channels: list[Channel], config: DetectorConfig,
                     block_ms: float = 1000.0, cells: list[Cell] | None = None) -> tuple[Events, Rows]:
    """Events of ``channels`` over every sweep, fed to the channel bank in blocks of ``block_ms`` on
    the file's sample counter, so that the pauses between sweeps are gaps to the detector as they
    are on the wire. The events do not depend on the block size (the detector is block-invariant);
    the default of 1 s keeps the cost of each call from Python small against the work inside it.
    ``records["channel"]`` is the position in ``channels``; the bank's rows (detector and signal
    checks, a row per channel in that order) come back beside them. ``cells``, if given (one per
    channel), are told of the samples and given the checks' verdicts as `raphe serve` gives them,
    the last at the end of the recording."""
    rows = bank.new_rows(recording.sample_rate, config, [c.units for c in channels])
    step = block_samples(recording.sample_rate, block_ms)
    records, windows = [], []
    row_index = np.arange(len(channels))
    told = list(cells) if cells is not None else [None] * len(channels)
    for sweep in recording.sweeps:
        data = np.stack([sweep.traces[c.num] for c in channels])
        for offset in range(0, sweep.num_samples, step):
            events = bank.feed(rows, data[:, offset:offset + step], row_index, sweep.sample_num + offset, told)
            records.append(events.records)
            windows.append(events.windows)
    if cells is not None:
        last = recording.sweeps[-1]
        bank.conclude(rows, row_index, cells, last.sample_num + last.num_samples)
    return Events(np.concatenate(records), np.concatenate(windows)), rows


@dataclass
class Classified:
    """A recording's cells after every spike, their final states, and the spikes themselves: their
    events (windows included), class probabilities and novelty, in detection order."""

    cells: list[Cell]
    states: list[CellState]
    channels: list[Channel]
    rows: Rows
    events: Events
    probabilities: np.ndarray
    novel: np.ndarray
    posterior_json: dict


def classify_recording(recording: Recording, channels: list[Channel], model: Model, config: DetectorConfig,
                       posterior: PosteriorConfig, block_ms: float = 1000.0,
                       keep_history: bool = False) -> Classified:
    """One :class:`Cell` per channel, after every spike of the recording, classified in batches.

    The spikes are exactly those a live `raphe serve` finds in a replay of the file (the detector
    gives the same events for any block size), and each cell takes them, and the checks' verdicts,
    in the same order at the same samples.
    """
    cells = [Cell(recording.name, c.num, c.name, recording.sample_rate, model.classes, posterior, keep_history)
             for c in channels]
    events, rows = detect_recording(recording, channels, config, block_ms, cells)
    probabilities = model.predict(events.windows) if len(events) else np.empty((0, len(model.classes)))
    novel = model.novel(events.windows)
    for record, p, window, new in zip(events.records, probabilities, events.windows, novel):
        cells[record["channel"]].add_spike(int(record["sample_num"]), p, window, bool(new))
    states = [cell.state(final=True) for cell in cells]
    return Classified(cells, states, list(channels), rows, events, probabilities, novel, posterior.describe())


@dataclass
class ClassifyResult:
    """The cells of many files (one row each, as `classify --json` prints them) and what went wrong."""

    classes: tuple[str, ...]
    rows: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    samples: int = 0
    interrupted: bool = False


def chosen_channels(recording: Recording, channels) -> list[Channel]:
    """The channels named (indices or names), or else every channel in pA (cell-attached current)."""
    return recording.select(list(channels)) if channels else [c for c in recording.channels
                                                              if c.units in CURRENT_UNITS]


def no_current(recording: Recording, label: str, naming: str) -> str:
    """The line for a recording with no channel in pA: what it holds, and how to name channels."""
    units = ", ".join(sorted({c.units for c in recording.channels}))
    return f"{label}: skipped, no channel in pA (it has {units}); name channels with {naming}"


def recording_files(paths: list[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively for recordings (``RECORDING_SUFFIXES``, any
    case), in a stable order."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() in RECORDING_SUFFIXES and p.is_file())
        else:
            found.append(item)
    return found


@dataclass(frozen=True)
class FileJob:
    """What one worker needs to classify one file: plain values, so that it crosses processes."""

    path: str
    model: str
    detector_settings: dict
    posterior: PosteriorConfig
    channels: tuple[str, ...] | None
    nwb_dir: str | None = None
    nwb_metadata: NwbMetadata = NwbMetadata()
    report_dir: str | None = None
    wide: str | None = None  # the model of files of more than ENSEMBLE_MAX_CHANNELS channels, if any


@dataclass(frozen=True)
class FileOutcome:
    """One file's cells (``rows``), and the line to show where it was ``skipped`` or something
    ``failed`` (reading it: no rows; writing its NWB file or figures: its rows are kept)."""

    path: str
    rows: list[dict]
    samples: int = 0
    skipped: str = ""
    failed: str = ""


_WORKER_MODELS: dict[str, Model | Cascade] = {}


def worker_model(path: str) -> Model | Cascade:
    """The model at ``path``, loaded once per process (a cascade shares the ensemble loaded here before it)."""
    model = _WORKER_MODELS.get(path)
    if model is None:
        model = _WORKER_MODELS[path] = load(path, loaded=next(iter(_WORKER_MODELS.values()), None))
    return model


def classify_file(job: FileJob) -> FileOutcome:
    """Classify every cell of one file; never raises for a bad file (its outcome says why). A file
    of more than ``ENSEMBLE_MAX_CHANNELS`` channels goes to the job's wide model, where it has one,
    as `serve` serves such a stream."""
    model = worker_model(job.model)
    config = DetectorConfig(window=model.window, **job.detector_settings)
    try:
        recording = Recording(job.path)
        chosen = chosen_channels(recording, job.channels)
        if not chosen:
            return FileOutcome(job.path, [], skipped=no_current(recording, job.path, "--channels"))
        model = worker_model(for_width(len(chosen), job.model, job.wide))
        classified = classify_recording(recording, chosen, model, config, job.posterior,
                                        keep_history=job.nwb_dir is not None or job.report_dir is not None)
    except RapheError as exc:
        return FileOutcome(job.path, [], failed=str(exc))
    rows = [{"recording": job.path, "model": model.path.name, **state.as_dict()} for state in classified.states]
    failed = write_file_outputs(job, recording, classified, model)
    return FileOutcome(job.path, rows, recording.total_samples * len(chosen), failed=failed)


def write_file_outputs(job: FileJob, recording: Recording, classified: Classified, model: Model) -> str:
    """The file's NWB results and report figures, where asked for; the line saying what could not be
    written (its cells' rows are kept all the same), or empty."""
    problems = []
    if job.nwb_dir is not None:
        path = Path(job.nwb_dir) / f"{recording.name}.nwb"
        try:
            write_nwb(path, recording, classified, model, job.nwb_metadata)
        except (RapheError, OSError, ValueError, TypeError) as exc:
            problems.append(f"{path}: not written ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
    if job.report_dir is not None:
        try:
            write_reports(Path(job.report_dir), recording, classified, model)
        except (RapheError, OSError, ValueError) as exc:
            problems.append(f"{job.report_dir}: the report of {recording.name} not drawn ({str(exc).splitlines()[0]})")
    return "; ".join(problems)


def classify_paths(paths: list[str | Path], model: Model, detector_settings: dict, posterior: PosteriorConfig,
                   channels: list[str] | None = None, on_row=None, console: Console | None = None,
                   jobs: int = 1, scheduler: str | None = None, nwb_dir: str | Path | None = None,
                   nwb_metadata: NwbMetadata = NwbMetadata(), report_dir: str | Path | None = None,
                   wide_model: Cascade | None = None) -> ClassifyResult:
    """Classify every cell of every file; ``on_row`` gets each cell's row as soon as its file is done.

    Parameters
    ----------
    detector_settings : threshold, relative, adaptive_k, polarity, refractory_ms (see DetectorConfig);
        the window is the model's.
    channels : channel indices or names to classify (default: every channel in pA).
    console : where progress and per-file lines go (default stderr).
    jobs : files classified at once, each in a process of its own with its own interpreter (default 1:
        in this process). scheduler : a Dask scheduler's address (``tcp://host:8786``): the files go
        to its workers instead, one interpreter per worker.
    nwb_dir : also write each recording's results to ``nwb_dir/<name>.nwb`` (see ``raphe.pipelines.nwb``),
        with ``nwb_metadata`` as the animal's and the session's metadata.
    report_dir : also draw why each cell ended as it did, ``report_dir/<name>-<channel>.png`` (see
        ``raphe.pipelines.why``).
    wide_model : classifies the files of more than ``ENSEMBLE_MAX_CHANNELS`` channels, in place of
        ``model`` (as `serve` serves such streams; see ``raphe.classifier.runtime.serving.stand_in``).

    The rows, in file order, are the same however the files were spread; ``on_row`` sees them in the
    order files finish. On Ctrl-C the files finished so far are kept.
    """
    console = console or Console(stderr=True)
    DetectorConfig(window=model.window, **detector_settings)  # refuse bad settings before any work
    files = recording_files(paths)
    if not files:
        raise RapheError(f"no recordings ({', '.join(RECORDING_SUFFIXES)}) in {', '.join(map(str, paths))}")
    if nwb_dir is not None or report_dir is not None:
        stems = [f.stem for f in files]
        twice = sorted({stem for stem in stems if stems.count(stem) > 1})
        if twice:
            raise RapheError(f"--nwb and --report-dir name each file by its recording's name, and "
                             f"{', '.join(twice[:3])} occur more than once: classify those folders separately")
    todo = [FileJob(str(f), str(model.path), detector_settings, posterior, tuple(channels) if channels else None,
                    None if nwb_dir is None else str(nwb_dir), nwb_metadata,
                    None if report_dir is None else str(report_dir),
                    None if wide_model is None else str(wide_model.path)) for f in files]
    for loaded in (model, wide_model):
        if loaded is not None:
            _WORKER_MODELS.setdefault(str(loaded.path), loaded)
    outcomes: dict[str, FileOutcome] = {}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, disable=not console.is_terminal, transient=True)
    runner = _on_dask if scheduler else _in_processes if jobs > 1 else _in_order
    with progress:
        task = progress.add_task("classifying", total=len(files))

        def done(outcome: FileOutcome) -> None:
            outcomes[outcome.path] = outcome
            if outcome.skipped or outcome.failed:
                console.print(f"raphe classify: {outcome.skipped or outcome.failed}", soft_wrap=True,
                              highlight=False, markup=False)
            if on_row is not None:
                for row in outcome.rows:
                    on_row(row)
            progress.update(task, advance=1, description=Path(outcome.path).name)

        try:
            runner(todo, done, jobs, scheduler)
        except KeyboardInterrupt:
            console.print(f"raphe classify: interrupted; {len(outcomes)} of {len(files)} files classified",
                          highlight=False, markup=False)
            result = _collect(model.classes, files, outcomes)
            result.interrupted = True
            return result
    return _collect(model.classes, files, outcomes)


def _collect(classes: tuple[str, ...], files: list[Path], outcomes: dict[str, FileOutcome]) -> ClassifyResult:
    result = ClassifyResult(classes)
    for path in map(str, files):
        outcome = outcomes.get(path)
        if outcome is None:
            continue
        result.rows += outcome.rows
        result.samples += outcome.samples
        if outcome.failed:
            result.failed.append(path)
        if outcome.skipped:
            result.skipped.append(path)
    return result


def _in_order(todo: list[FileJob], done, jobs: int, scheduler: str | None) -> None:
    for job in todo:
        done(classify_file(job))


def _in_processes(todo: list[FileJob], done, jobs: int, scheduler: str | None) -> None:
    """``jobs`` worker processes (spawned: no state of this process leaks into them)."""
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(classify_file, job): job for job in todo}
        try:
            for future in concurrent.futures.as_completed(futures):
                try:
                    done(future.result())
                except concurrent.futures.process.BrokenProcessPool:
                    done(FileOutcome(futures[future].path, [], failed=f"{futures[future].path}: its worker "
                                                                       "process died while classifying it"))
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _on_dask(todo: list[FileJob], done, jobs: int, scheduler: str | None) -> None:
    """The files as tasks of a Dask cluster; a worker that dies takes its files' tasks down with it
    after Dask's retries, and those files are reported as failed while the others finish."""
    try:
        from distributed import Client, as_completed
        from distributed.scheduler import KilledWorker
    except ImportError:
        raise RapheError("a Dask scheduler needs dask[distributed]: pip install 'raphe[cluster]'") from None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise RapheError(f"cannot reach the Dask scheduler at {scheduler} ({exc.__class__.__name__})") from None
    with client:
        futures = {client.submit(classify_file, job, pure=False): job for job in todo}
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    done(future.result())
                except KilledWorker:
                    done(FileOutcome(job.path, [], failed=f"{job.path}: the Dask worker classifying it died"))
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise
