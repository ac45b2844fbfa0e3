"""The `raphe` command: one entry point, one subcommand per job.

Bad input ends in one line on stderr and exit code 2; an interrupted command exits with 130.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys

from rich.console import Console

from raphe.errors import RapheError

EXAMPLES = {
    "info": "raphe info recording.abf",
    "replay": "raphe replay recording.abf --speed 10 --block-ms 2 --channels 0 1",
    "listen": "raphe listen --connect tcp://127.0.0.1:5556",
    "demo": "raphe demo --report demo.png",
    "detect": "raphe detect recording.abf --adaptive 5 --out spikes.csv --windows windows.npz",
    "synth": "raphe synth --cells 40 --days 4 --seed 1 --out synthetic/",
    "train": "raphe train synthetic/ --out my-model/ --name lab-model",
    "evaluate": "raphe evaluate my-model/lab-model-dynamic.tflite held-out/ --out report/",
    "export": "raphe export synthetic/windows.npz spikes-csv/",
    "calibrate": "raphe calibrate my-model/ held-out-cells/",
    "serve": "raphe serve --connect tcp://127.0.0.1:5556 --log cells.jsonl",
    "classify": "raphe classify archive/ --json > cells.jsonl",
    "bench": "raphe bench --quick -k latency",
}

# pytest-benchmark options of `raphe bench --quick`: one short round each
QUICK_BENCHMARK_OPTIONS = ["--benchmark-min-rounds=1", "--benchmark-max-time=0.05", "--benchmark-warmup=off"]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage block followed by the error."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def speed_value(text: str) -> float:
    if text == "max":
        return math.inf
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"speed must be > 0 or 'max' (got {text})") from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (got {text!r})") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number > 0 (got {text})")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 (got {text})")
    return value


def fraction(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1] (got {text})")
    return value


def kernel_range(text: str) -> tuple[int, ...]:
    try:
        if "-" in text:
            low, high = (int(x) for x in text.split("-", 1))
            kernels = tuple(range(low, high + 1))
        else:
            kernels = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected kernels like 20-30 or 20,25,30 (got {text!r})") from None
    if not kernels or min(kernels) < 1 or max(kernels) > 60:
        raise argparse.ArgumentTypeError(f"kernel sizes must be 1..60 (got {text!r})")
    return kernels


def add_detector_options(p: Parser) -> None:
    how = p.add_mutually_exclusive_group()
    how.add_argument("--threshold", type=float, default=-50.0,
                     help="absolute threshold in the recording's units (default -50, the seed's -50 pA)")
    how.add_argument("--adaptive", type=positive_float, metavar="K",
                     help="threshold at K x robust noise (MAD / 0.6745) from the running median instead")
    p.add_argument("--polarity", choices=["neg", "pos", "both"], default="neg", help="crossing direction (default neg)")
    p.add_argument("--refractory-ms", type=float, default=2.0, help="minimum time between events (default 2)")


def detector_settings(args: argparse.Namespace) -> dict:
    return {"threshold": args.threshold, "adaptive_k": args.adaptive, "polarity": args.polarity,
            "refractory_ms": args.refractory_ms}


def add_model_options(p: Parser) -> None:
    p.add_argument("--model", help="a model's .tflite or .json (default: the model shipped with raphe)")
    p.add_argument("--decision-threshold", type=float, default=0.99,
                   help="posterior a class must reach to be decided (default 0.99)")
    p.add_argument("--min-spikes", type=positive_int, default=5, help="spikes before any decision (default 5)")


def load_model(args: argparse.Namespace):
    from raphe.classifier.runtime import Model

    model = Model(args.model)
    return model, model.posterior_config(args.decision_threshold, args.min_spikes)


def build_parser() -> Parser:
    parser = Parser(prog="raphe", description="Real-time identification of serotonergic neurons.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name: str, help_text: str) -> Parser:
        return sub.add_parser(name, help=help_text, description=help_text,
                              epilog=f"example: {EXAMPLES[name]}")

    p = command("info", "Show what an .abf recording holds.")
    p.add_argument("file", help="an ABF1 or ABF2 file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(run=run_info)

    p = command("replay", "Publish an .abf recording on the Open Ephys ZMQ protocol, paced.")
    p.add_argument("file", help="an ABF1 or ABF2 file")
    p.add_argument("--speed", type=speed_value, default=1.0,
                   help="1 = real time (default), N = N times faster, max = as fast as possible")
    p.add_argument("--block-ms", type=positive_float, default=10.0, help="block duration in ms (default 10)")
    p.add_argument("--channels", nargs="+", metavar="CH", help="channel indices or names (default all)")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5556",
                   help="where to bind the data socket (default tcp://127.0.0.1:5556; heartbeat on port+1)")
    p.add_argument("--loop", action="store_true", help="start again at the end, as a new acquisition")
    p.add_argument("--lossless", action="store_true",
                   help="XPUB with XPUB_NODROP: wait for a subscriber, then never drop (for raphe's consumers)")
    p.set_defaults(run=run_replay)

    p = command("listen", "Live per-channel table of a ZMQ data stream (the rig-side diagnostic).")
    p.add_argument("--connect", default="tcp://127.0.0.1:5556", help="publisher endpoint (default %(default)s)")
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--idle", type=positive_float, help="stop when data stops for this many seconds")
    p.add_argument("--units", help="units of channels whose header has none (Open Ephys sends µV or V)")
    p.add_argument("--scale", type=float, default=1.0, help="factor for samples of such channels (default 1)")
    p.add_argument("--json", action="store_true", help="print the final counters as one JSON object")
    p.set_defaults(run=run_listen)

    p = command("detect", "Detect spikes in an .abf recording; write a CSV of events and their windows.")
    p.add_argument("file", help="an ABF1 or ABF2 file")
    add_detector_options(p)
    p.add_argument("--channels", nargs="+", metavar="CH", help="channel indices or names (default all)")
    p.add_argument("--out", required=True, help="CSV of events to write")
    p.add_argument("--windows", help="also write the 160-point windows to this .npz")
    p.set_defaults(run=run_detect)

    p = command("serve", "Classify cells live: subscribe, detect, classify, publish posteriors and spike events.")
    p.add_argument("--connect", default="tcp://127.0.0.1:5556", help="the rig's data endpoint (default %(default)s)")
    p.add_argument("--posterior-endpoint", default="tcp://127.0.0.1:5570",
                   help="where POSTERIOR messages are published (default %(default)s)")
    p.add_argument("--events-endpoint", default="tcp://127.0.0.1:5571",
                   help="where Event Broadcaster spike events are published (default %(default)s)")
    p.add_argument("--log", help="append one JSON object per line: every spike's update, restarts, final summaries")
    add_model_options(p)
    add_detector_options(p)
    p.add_argument("--units", help="units of channels whose header has none (Open Ephys sends µV or V)")
    p.add_argument("--scale", type=float, default=1.0, help="factor for samples of such channels (default 1)")
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--idle", type=positive_float, help="stop when data stops for this many seconds")
    p.add_argument("--json", action="store_true", help="print the final cells and timings as one JSON object")
    p.set_defaults(run=run_serve)

    p = command("classify", "Classify every cell of .abf files or folders offline, as fast as the CPU allows.")
    p.add_argument("paths", nargs="+", help=".abf files or folders (searched recursively)")
    p.add_argument("--json", action="store_true", help="one JSON object per cell per line on stdout")
    p.add_argument("--out", help="also write one CSV row per cell here")
    p.add_argument("--channels", nargs="+", metavar="CH", help="channel indices or names (default: every pA channel)")
    add_model_options(p)
    add_detector_options(p)
    p.set_defaults(run=run_classify)

    p = command("bench", "Run the benchmark suite of a source checkout; print and write the report.")
    p.add_argument("--quick", action="store_true", help="short cases and few rounds (what CI runs)")
    p.add_argument("--out", default="build/bench", help="folder for summary.md, results.json, latency.png "
                                                         "(default %(default)s)")
    p.add_argument("-k", dest="select", metavar="EXPR", help="only the benchmarks whose names match (pytest -k)")
    p.set_defaults(run=run_bench)

    p = command("synth", "Generate labelled synthetic SER/NSER recordings (ABF), a manifest and a window set.")
    p.add_argument("--cells", type=positive_int, required=True, help="number of cells")
    p.add_argument("--days", type=positive_int, default=1, help="recording days, each with its own rig noise (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed; also names the days (default 0)")
    p.add_argument("--out", required=True, help="a new or empty folder")
    p.add_argument("--rate", type=positive_float, default=40_000.0, help="sample rate in Hz (default 40000)")
    p.add_argument("--duration", type=positive_float, default=60.0, help="seconds per recording (default 60)")
    p.add_argument("--ser-fraction", type=fraction, default=0.5, help="share of SER cells (default 0.5)")
    p.add_argument("--noise-from", nargs="+", metavar="ABF",
                   help="recordings whose spike-free current stretches replace the synthetic baseline noise")
    p.add_argument("--no-abf", action="store_true", help="write only the manifest and the window set")
    p.set_defaults(run=run_synth)

    p = command("train", "Train the CNN ensemble on labelled windows; export float32, dynamic-range and int8 .tflite.")
    p.add_argument("data", nargs="+", help="window sets: .npz, `raphe synth` folders, or folders of class folders of CSVs")
    p.add_argument("--out", required=True, help="folder for NAME-{float32,dynamic,int8}.tflite and their .json")
    p.add_argument("--name", default="model", help="model name (default model)")
    p.add_argument("--kernels", type=kernel_range, default=tuple(range(20, 31)),
                   help="kernel sizes of the ensemble, e.g. 20-30 or 20,25,30 (default 20-30)")
    p.add_argument("--epochs", type=positive_int, default=25, help="at most this many epochs per member (default 25)")
    p.add_argument("--patience", type=positive_int, default=3, help="early-stopping patience in epochs (default 3)")
    p.add_argument("--max-per-cell", type=positive_int, default=700, help="windows kept per cell (default 700)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(run=run_train)

    p = command("evaluate", "Evaluate a model (or every model in a folder) on labelled windows; write a report.")
    p.add_argument("model", help="a model's .tflite or .json, a folder of models, or 'default' (the shipped one)")
    p.add_argument("data", nargs="+", help="labelled window sets: .npz, `raphe synth` folders or CSV class folders")
    p.add_argument("--out", help="folder for report.md, metrics.json and the PNG figures")
    p.set_defaults(run=run_evaluate)

    p = command("calibrate", "Refit the cell posterior of a model (or every model in a folder) on held-out cells.")
    p.add_argument("model", help="a model's .tflite or .json, or a folder of models")
    p.add_argument("data", nargs="+", help="labelled window sets of cells the model never saw")
    p.set_defaults(run=run_calibrate)

    p = command("export", "Convert a window set between .npz and the seed's per-spike CSV folders.")
    p.add_argument("source", help="a window set: .npz, `raphe synth` folder, or CSV class folders")
    p.add_argument("target", help="a .npz file, or a new folder for CLASS/CELL/spike_NNNNNN.csv")
    p.set_defaults(run=run_export)

    p = command("demo", "Classify a simulated rig of synthetic cells live with the shipped model; report against the truth.")
    p.add_argument("--seconds", type=positive_float, default=40.0, help="length of the simulated recording (default 40)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the synthetic cells (default 7)")
    p.add_argument("--report", default="raphe-demo.png", help="PNG report to write (default %(default)s)")
    p.add_argument("--model", help="a model's .tflite or .json (default: the model shipped with raphe)")
    p.set_defaults(run=run_demo)
    return parser


def run_info(args: argparse.Namespace) -> int:
    from raphe.replay import Recording

    rec = Recording(args.file)
    description = {
        "file": str(rec.path),
        "abf_version": rec.abf_version,
        "mode": rec.mode,
        "sample_rate_hz": rec.sample_rate,
        "channels": [{"num": c.num, "name": c.name, "units": c.units} for c in rec.channels],
        "sweeps": len(rec.sweeps),
        "samples_per_channel": rec.total_samples,
        "recorded_s": rec.recorded_s,
        "sweep_start_samples": [s.sample_num for s in rec.sweeps],
        "sweep_lengths": [s.num_samples for s in rec.sweeps],
    }
    if args.json:
        print(json.dumps(description))
        return 0
    console = Console()
    console.print(f"[bold]{rec.path.name}[/]  ABF {rec.abf_version}, {rec.mode}, {rec.sample_rate:g} Hz")
    for c in rec.channels:
        console.print(f"  channel {c.num}: {c.name} ({c.units})")
    lengths = sorted({s.num_samples for s in rec.sweeps})
    console.print(f"  {len(rec.sweeps)} sweep(s) of {', '.join(map(str, lengths))} samples; "
                  f"{rec.recorded_s:.3f} s recorded over a span of {rec.span_samples / rec.sample_rate:.3f} s")
    if len(rec.sweeps) > 1:
        starts = ", ".join(f"{s.sample_num / rec.sample_rate:g}" for s in rec.sweeps[:8])
        more = ", ..." if len(rec.sweeps) > 8 else ""
        console.print(f"  sweep starts (s): {starts}{more}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from raphe.replay import Recording, replay
    from raphe.streamer import Publisher

    rec = Recording(args.file)
    channels = rec.select(args.channels)
    err = Console(stderr=True)
    with Publisher(args.endpoint, lossless=args.lossless) as pub:
        err.print(f"replaying {rec.name} ({len(channels)} channel(s), {rec.sample_rate:g} Hz) on {pub.endpoint}"
                  + (f", heartbeat on {pub.heartbeat_endpoint}" if pub.heartbeat_endpoint else ""))
        if args.lossless:
            err.print("lossless: waiting for a subscriber ...")
            pub.wait_for_subscribers(1)
        progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TimeRemainingColumn(), console=err, disable=not err.is_terminal or args.loop)
        with progress:
            task = progress.add_task(rec.name, total=rec.total_samples)
            summary = replay(rec, pub, channels=channels, block_ms=args.block_ms, speed=args.speed,
                             loop=args.loop, on_block=lambda n: progress.advance(task, n))
    print(f"sent {summary.messages:,} messages, {summary.samples:,} samples per channel in "
          f"{summary.seconds:.2f} s ({summary.samples_per_s * len(channels):,.0f} samples/s)")
    return 0


def run_listen(args: argparse.Namespace) -> int:
    from raphe.listen import listen

    result = listen(args.connect, duration_s=args.duration, idle_s=args.idle, units=args.units,
                    scale=args.scale, console=Console(stderr=args.json))
    if args.json:
        s = result.stats
        print(json.dumps({
            "seconds": result.seconds, "messages": s.messages, "lost_messages": s.lost_messages,
            "acquisitions": s.acquisitions, "events": s.events, "malformed": dict(s.malformed),
            "channels": [{"stream": c.stream, "channel_num": c.channel_num, "channel_name": c.channel_name,
                          "units": c.units, "sample_rate": c.sample_rate, "samples": c.samples,
                          "blocks": c.blocks, "gaps": c.gaps, "lost_samples": c.lost_samples}
                         for c in s.channels.values()],
        }))
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from raphe.detector import DetectorConfig
    from raphe.replay import Recording
    from raphe.replay.offline import detect_recording
    from raphe.spikes_io import write_events_csv, write_windows_npz
    from raphe.staged import check_writable

    for path in filter(None, (args.out, args.windows)):
        check_writable(path)
    config = DetectorConfig(**detector_settings(args))
    rec = Recording(args.file)
    channels = rec.select(args.channels)
    events, detector = detect_recording(rec, channels, config)
    write_events_csv(args.out, events, channels, rec.sample_rate)
    if args.windows:
        write_windows_npz(args.windows, events, channels, rec.sample_rate, config)
    dropped = ", ".join(f"{n} {why}" for why, n in detector.dropped().items())
    print(f"{rec.name}: {len(events)} spikes on {len(channels)} channel(s) written to {args.out} "
          f"(not emitted: {dropped}; still pending at the end: {detector.pending})", file=sys.stderr)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from raphe.serve import Service, run
    from raphe.streamer.outputs import Outputs

    model, posterior = load_model(args)
    settings = detector_settings(args)
    model.detector_config(**settings)  # refuse bad settings before any socket is bound
    log = open(args.log, "a", buffering=1) if args.log else None
    err = Console(stderr=True)
    try:
        with Outputs(args.posterior_endpoint, args.events_endpoint) as outputs:
            service = Service(args.connect, model, settings, posterior, outputs, log, args.units, args.scale)
            try:
                err.print(f"serving {args.connect} with {model!r}; posteriors on {outputs.posterior_endpoint}, "
                          f"spike events on {outputs.events_endpoint}")
                seconds = run(service, duration_s=args.duration, idle_s=args.idle,
                              console=Console(stderr=args.json))
            finally:
                service.close()
    finally:
        if log is not None:
            log.close()
    if args.json:
        print(json.dumps({"seconds": seconds, "spikes": service.spikes, "timings": service.timings.summary(),
                          "cells": [c.cell.summary() for c in service.channels.values()]}))
    return 0


def run_classify(args: argparse.Namespace) -> int:
    from raphe.classify import classify_paths, print_table, write_csv

    from raphe.staged import check_writable

    model, posterior = load_model(args)
    if args.out:
        check_writable(args.out)
    on_row = (lambda row: print(json.dumps(row), flush=True)) if args.json else None
    result = classify_paths(args.paths, model, detector_settings(args), posterior, args.channels, on_row)
    if args.out:
        write_csv(args.out, result.rows, model.classes)
    if not args.json:
        print_table(result.rows, model.classes, Console())
    return 1 if result.failed else 0


def run_bench(args: argparse.Namespace) -> int:
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "conftest.py").is_file():
        raise RapheError(f"raphe bench runs the benchmarks/ of a source checkout; none beside {root}")
    out = Path(args.out).resolve()
    env = {**os.environ, "RAPHE_BENCH_OUT": str(out), "RAPHE_BENCH_QUICK": "1" if args.quick else "0"}
    command = [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", "-q"]
    if args.quick:
        command += QUICK_BENCHMARK_OPTIONS
    if args.select:
        command += ["-k", args.select]
    code = subprocess.call(command, cwd=root, env=env)
    if (out / "summary.md").is_file():
        print((out / "summary.md").read_text())
    return 0 if code == 0 else 1


def run_synth(args: argparse.Namespace) -> int:
    from raphe.classifier.synth import synthesize

    summary = synthesize(args.out, cells=args.cells, days=args.days, seed=args.seed, sample_rate=args.rate,
                         duration_s=args.duration, ser_fraction=args.ser_fraction, write_abf=not args.no_abf,
                         noise_from=args.noise_from)
    counts = ", ".join(f"{c} {n}" for c, n in summary.per_class.items())
    print(f"{summary.cells} cells over {args.days} day(s): {summary.windows} windows ({counts}), "
          f"{summary.abf_files} ABF files, manifest.csv and windows.npz in {args.out}", file=sys.stderr)
    return 0


def load_windows(paths: list[str]):
    from raphe.classifier import windows

    sets = [windows.load(p) for p in paths]
    return sets[0] if len(sets) == 1 else windows.concatenate(sets)


def quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ and Python chatter turned down; a clear error if it is missing."""
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", module="tensorflow")
    try:
        import tensorflow as tf
    except ImportError:
        raise RapheError("training needs TensorFlow: pip install 'raphe[train]' (or make setup-train)") from None
    tf.get_logger().setLevel("ERROR")


def run_train(args: argparse.Namespace) -> int:
    data = load_windows(args.data)
    data.require_classes(2)
    quiet_tensorflow()
    from raphe.classifier.train import TrainConfig, train

    config = TrainConfig(kernels=args.kernels, epochs=args.epochs, patience=args.patience,
                         max_per_cell=args.max_per_cell, seed=args.seed)
    recipe = "raphe " + shlex.join(args.argv)
    result = train(data, args.out, config, name=args.name, data_description=f"{data!r} from {', '.join(args.data)}",
                   recipe=recipe)
    print(f"wrote {', '.join(str(p) for p in result.models.values())}", file=sys.stderr)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from raphe.classifier.evaluate import evaluate, markdown
    from raphe.classifier.runtime import DEFAULT_MODEL

    data = load_windows(args.data)
    summary = evaluate(DEFAULT_MODEL if args.model == "default" else args.model, data, args.out, data_name=", ".join(args.data))
    print(markdown(summary))
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from raphe.classifier.calibrate import calibrate

    data = load_windows(args.data)
    data.require_classes(2)
    for name, (alpha, beta) in calibrate(args.model, data, ", ".join(args.data)).items():
        print(f"{name}: cell posterior alpha {alpha:.4f}, beta {beta:.4f} "
              f"(fitted on {len(set(data.cell.tolist()))} cells)", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from raphe.classifier import windows

    data = windows.load(args.source)
    if args.target.endswith(".npz"):
        windows.save_npz(data, args.target)
    else:
        windows.export_csv_folder(data, Path(args.target))
    print(f"wrote {data!r} to {args.target}", file=sys.stderr)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from raphe.demo import demo

    from raphe.staged import check_writable

    check_writable(args.report)
    return demo(seconds=args.seconds, seed=args.seed, report=args.report, model_path=args.model)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="raphe: %(message)s")
    try:
        return args.run(args)
    except RapheError as exc:
        print(f"raphe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
