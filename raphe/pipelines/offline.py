"""The offline path: whole recordings, files and folders, detected and classified without sockets.

The detector, cells and posterior are the live service's, fed blocks read straight from the file,
so a cell ends the same way at the desk as at the rig. A file that cannot be read gets one line on
stderr and the others go on; a file with no channel in pA (cell-attached current) is skipped with
one line unless channels are named.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from raphe.classifier.runtime.cells import Cell
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.posterior import PosteriorConfig, leanings, top_class
from raphe.core.errors import RapheError
from raphe.core.staged import staged
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector, Events
from raphe.detector.plausibility import SignalChecks
from raphe.replay.player import block_samples
from raphe.replay.recording import RECORDING_SUFFIXES, Channel, Recording

from .nwb import Subject, write_nwb
from .why import write_reports

CURRENT_UNITS = ("pA",)
CSV_COLUMNS = ["recording", "stream", "channel_num", "channel_name", "recorded_s", "n_spikes", "n_novel", "rate_hz",
               "n_isi", "evidence", "decision", "spikes_to_decision", "seconds_to_decision"]
PARTS = ("waveform", "firing", "joint")


def detect_recording(recording: Recording, channels: list[Channel], config: DetectorConfig,
                     block_ms: float = 1000.0, checks: SignalChecks | None = None) -> tuple[Events, Detector]:
    """Events of ``channels`` over every sweep, fed in blocks of ``block_ms`` on the file's sample
    counter, so that the pauses between sweeps are gaps to the detector as they are on the wire.
    The events do not depend on the block size (the detector is block-invariant); the default of
    1 s keeps the cost of each call from Python small against the work inside it.
    ``records["channel"]`` is the position in ``channels``; ``checks`` (a row per channel, in that
    order), if given, see the same blocks and events."""
    detector = Detector(len(channels), recording.sample_rate, config)
    step = block_samples(recording.sample_rate, block_ms)
    records, windows = [], []
    rows = np.arange(len(channels))
    for sweep in recording.sweeps:
        data = np.stack([sweep.traces[c.num] for c in channels])
        for offset in range(0, sweep.num_samples, step):
            start, block = sweep.sample_num + offset, data[:, offset:offset + step]
            events = detector.process(block, start)
            records.append(events.records)
            windows.append(events.windows)
            if checks is not None:
                checks.add_block(detector.row_stats, rows, np.full(len(rows), start), block.shape[1])
                for k in np.unique(events.records["channel"]):
                    checks.add_events(int(k), events.records["sample_num"][events.records["channel"] == k])
    return Events(np.concatenate(records), np.concatenate(windows)), detector


@dataclass
class Classified:
    """A recording's cells after every spike, and the spikes themselves: their events (windows
    included), class probabilities and novelty, in detection order."""

    cells: list[Cell]
    channels: list[Channel]
    detector: Detector
    events: Events
    probabilities: np.ndarray
    novel: np.ndarray
    posterior_json: dict


def classify_recording(recording: Recording, channels: list[Channel], model: Model, config: DetectorConfig,
                       posterior: PosteriorConfig, block_ms: float = 1000.0,
                       keep_history: bool = False) -> Classified:
    """One :class:`Cell` per channel, after every spike of the recording, classified in batches.

    The spikes are exactly those a live `raphe serve` finds in a replay of the file (the detector
    gives the same events for any block size), and each cell's posterior takes them in the same order.
    """
    checks = SignalChecks(recording.sample_rate, config, [c.units for c in channels])
    events, detector = detect_recording(recording, channels, config, block_ms, checks)
    probabilities = model.predict(events.windows) if len(events) else np.empty((0, len(model.classes)))
    novel = model.novel(events.windows)
    cells = [Cell(recording.name, c.num, c.name, recording.sample_rate, model.classes, posterior, keep_history)
             for c in channels]
    for k, cell in enumerate(cells):
        cell.samples = recording.total_samples
        cell.origin = recording.sweeps[0].sample_num
        for before, sweep in zip(recording.sweeps, recording.sweeps[1:]):
            if sweep.sample_num != before.sample_num + before.num_samples:  # a gap to the detector, as on the wire
                cell.train.gap(sweep.sample_num / recording.sample_rate)
        cell.signal_reasons = checks.reasons(k)
    for record, p, window, new in zip(events.records, probabilities, events.windows, novel):
        cells[record["channel"]].add_spike(int(record["sample_num"]), p, window, bool(new))
    return Classified(cells, list(channels), detector, events, probabilities, novel, posterior.describe())


@dataclass
class ClassifyResult:
    """The cells of many files (one row each, as `classify --json` prints them) and what went wrong."""

    classes: tuple[str, ...]
    rows: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    samples: int = 0
    interrupted: bool = False

    def table(self) -> Table:
        """The people's view: one line per cell."""
        table = Table(title="raphe classify", title_justify="left")
        for column in ("recording", "channel", "spikes", "novel", "rate Hz", "posterior", "w/f", "decision",
                       "spikes to decision", "mean spike p"):
            table.add_column(column, justify="right" if column in ("spikes", "novel", "rate Hz", "spikes to decision")
                             else "left")
        why = []
        for row in self.rows:
            posterior = [row["posterior"][c] for c in self.classes]
            mean = [row["mean_spike_probability"][c] for c in self.classes]
            table.add_row(Path(row["recording"]).name, f"{row['channel_num']} {row['channel_name']}",
                          str(row["n_spikes"]), str(row["n_novel"]), f"{row['rate_hz']:.2f}",
                          top_class(self.classes, posterior), leanings(self.classes, row["parts"]), row["decision"],
                          str(row["spikes_to_decision"] or "-"),
                          top_class(self.classes, mean))
            why += [f"{Path(row['recording']).name} {row['channel_num']}: {reason}" for reason in row["reasons"]]
        if why:
            table.caption = "not classifiable:\n" + "\n".join(why)
            table.caption_justify = "left"
        return table

    def write_csv(self, path: str | Path) -> None:
        """One row per cell; the deciding posterior, each part's and the mean spike probability one column
        per class. Written atomically."""
        columns = (CSV_COLUMNS + [f"posterior_{c}" for c in self.classes]
                   + [f"{part}_posterior_{c}" for part in PARTS for c in self.classes]
                   + [f"mean_spike_probability_{c}" for c in self.classes] + ["reasons"])
        with staged(path) as partial, partial.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in self.rows:
                writer.writerow([row[c] if row[c] is not None else "" for c in CSV_COLUMNS]
                                + [f"{row['posterior'][c]:.6g}" for c in self.classes]
                                + [f"{row['parts'][part][c]:.6g}" for part in PARTS for c in self.classes]
                                + [f"{row['mean_spike_probability'][c]:.6g}" for c in self.classes]
                                + ["; ".join(row["reasons"])])


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
    subject: Subject = Subject()
    report_dir: str | None = None


@dataclass(frozen=True)
class FileOutcome:
    """One file's cells (``rows``), or why it gave none: ``skipped`` or ``failed`` holds the line to show."""

    path: str
    rows: list[dict]
    samples: int = 0
    skipped: str = ""
    failed: str = ""


_WORKER_MODELS: dict[str, Model] = {}


def classify_file(job: FileJob) -> FileOutcome:
    """Classify every cell of one file; never raises for a bad file (its outcome says why)."""
    model = _WORKER_MODELS.get(job.model)
    if model is None:
        model = _WORKER_MODELS[job.model] = Model(job.model)
    config = DetectorConfig(window=model.window, **job.detector_settings)
    try:
        recording = Recording(job.path)
        chosen = recording.select(list(job.channels)) if job.channels else [
            c for c in recording.channels if c.units in CURRENT_UNITS]
        if not chosen:
            units = ", ".join(sorted({c.units for c in recording.channels}))
            return FileOutcome(job.path, [], skipped=f"{job.path}: skipped, no channel in pA (it has {units}); "
                                                     "name channels with --channels")
        classified = classify_recording(recording, chosen, model, config, job.posterior,
                                        keep_history=job.nwb_dir is not None or job.report_dir is not None)
        if job.nwb_dir is not None:
            write_nwb(Path(job.nwb_dir) / f"{recording.name}.nwb", recording, classified, model, job.subject)
        if job.report_dir is not None:
            write_reports(Path(job.report_dir), recording, classified, model)
    except RapheError as exc:
        return FileOutcome(job.path, [], failed=str(exc))
    return FileOutcome(job.path, [{"recording": job.path, **cell.summary()} for cell in classified.cells],
                       recording.total_samples * len(chosen))


def classify_paths(paths: list[str | Path], model: Model, detector_settings: dict, posterior: PosteriorConfig,
                   channels: list[str] | None = None, on_row=None, console: Console | None = None,
                   jobs: int = 1, scheduler: str | None = None, nwb_dir: str | Path | None = None,
                   subject: Subject = Subject(), report_dir: str | Path | None = None) -> ClassifyResult:
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
        with ``subject`` as the animal's metadata.
    report_dir : also draw why each cell ended as it did, ``report_dir/<name>-<channel>.png`` (see
        ``raphe.pipelines.why``).

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
            raise RapheError(f"--nwb and --report name each file by its recording's name, and "
                             f"{', '.join(twice[:3])} occur more than once: classify those folders separately")
    todo = [FileJob(str(f), str(model.path), detector_settings, posterior, tuple(channels) if channels else None,
                    None if nwb_dir is None else str(nwb_dir), subject,
                    None if report_dir is None else str(report_dir)) for f in files]
    _WORKER_MODELS.setdefault(str(model.path), model)
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
