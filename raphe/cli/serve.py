"""`raphe serve`: the live path on a rig's stream."""

from __future__ import annotations

import argparse
import json

from raphe.core.specs import DATA_ENDPOINT, ENSEMBLE_MAX_CHANNELS, EVENTS_ENDPOINT, MAX_CELLS, POSTERIOR_ENDPOINT

from .options import (Parser, add_detector_options, add_model_options, add_security_options, add_stop_options,
                      add_units_options, curves, detector_settings, load_model, positive_float, positive_int)

HELP = "Classify cells live: subscribe, detect, classify, publish posteriors and spike events."
EXAMPLE = "raphe serve --connect tcp://127.0.0.1:5556 --log cells.jsonl"


def add_arguments(p: Parser) -> None:
    p.add_argument("--connect", default=DATA_ENDPOINT, help="the rig's data endpoint (default %(default)s)")
    p.add_argument("--posterior-endpoint", default=POSTERIOR_ENDPOINT,
                   help="where POSTERIOR messages are published (default %(default)s)")
    p.add_argument("--events-endpoint", default=EVENTS_ENDPOINT,
                   help="where Event Broadcaster spike events are published (default %(default)s)")
    p.add_argument("--log", help="append one JSON object per line: every spike's update, restarts, final summaries")
    p.add_argument("--lossless-outputs", action="store_true",
                   help="wait for slow subscribers of the outputs instead of dropping (for recording clients)")
    p.add_argument("--max-cells", type=positive_int, default=MAX_CELLS,
                   help="cells kept at most; blocks of further channels are counted and refused (default %(default)d)")
    p.add_argument("--forget-after", type=positive_float, metavar="S",
                   help="summarise (in the log) and forget a cell that has sent nothing for S seconds")
    p.add_argument("--lsl-source", metavar="NAME",
                   help="take the samples from the Lab Streaming Layer stream NAME (regular rate) instead of "
                        "--connect; needs raphe[lsl]")
    p.add_argument("--lsl-timeout", type=positive_float, default=10.0, metavar="S",
                   help="how long --lsl-source waits for its stream to appear (default 10 s)")
    p.add_argument("--lsl", metavar="NAME", help="also publish on Lab Streaming Layer: NAME-posteriors (one sample "
                                                 "per spike) and NAME-decisions (markers); needs raphe[lsl]")
    p.add_argument("--web", nargs="?", const="127.0.0.1:8765", metavar="HOST:PORT",
                   help="serve a live view for a browser at HOST:PORT (default 127.0.0.1:8765: this machine "
                        "only; 0.0.0.0:PORT lets the lab's network see it, unencrypted and without login)")
    add_security_options(p, serving=True, connecting=True)
    add_model_options(p)
    add_detector_options(p)
    add_units_options(p)
    add_stop_options(p)
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="serve with N worker processes, each owning the channels whose number %% N is its own "
                        "(default 1: this process; not with --web, --lsl or --lsl-source)")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="interpreter threads (default 1; on a two-core machine 2 cut the p99 at 64 channels "
                        "and raised it at one: docs/performance.md)")
    p.add_argument("--json", action="store_true", help="print the final cells and timings as one JSON object")
    p.add_argument("--config", metavar="FILE",
                   help="a TOML file of the rig's standing options, keys as the options without their dashes "
                        "(connect = \"tcp://rig:5556\", units = \"pA\", scale = 2000, model = \"lab.tflite\"); "
                        "options on the command line override it")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from raphe.core.errors import RapheError
    from raphe.detector.config import DetectorConfig
    from raphe.outputs.snapshot import LiveView
    from raphe.outputs.web import WebView
    from raphe.outputs.wire import Outputs
    from raphe.pipelines.live import Service
    from raphe.pipelines.wiring import ServeOptions, Sinks, subscribe
    from raphe.pipelines.loop import serve, settle_collector
    from raphe.streamer.security import check_exposure

    if args.workers > 1:
        given = [option for option, value in (("--web", args.web), ("--lsl", args.lsl),
                                              ("--lsl-source", args.lsl_source)) if value]
        if given:
            raise RapheError(f"--workers {args.workers} cannot be combined with {', '.join(given)} yet; "
                             "serve with one process for those")
    model, wide, posterior = load_model(args, args.threads)
    settings = detector_settings(args)
    DetectorConfig(window=model.window, **settings)  # refuse bad settings before any socket is bound
    serving, connecting = curves(args)
    err = Console(stderr=True)
    warning = check_exposure([args.posterior_endpoint, args.events_endpoint], serving, args.insecure)
    if warning:
        err.print(warning, highlight=False, markup=False)
    web = WebView(args.web) if args.web else None  # a port in use: one line before anything else starts
    log = open_log(args.log) if args.log else None
    lsl = lsl_outputs(args.lsl, model.classes) if args.lsl else None
    source = lsl_source(args.lsl_source, args.units, args.lsl_timeout) if args.lsl_source else None
    try:
        with Outputs(args.posterior_endpoint, args.events_endpoint, lossless=args.lossless_outputs,
                     curve=serving) as outputs:
            if args.workers > 1:
                return serve_in_workers(args, model, wide, posterior.evidence, settings, connecting, outputs, log, err)
            options = ServeOptions(settings, max_cells=args.max_cells, forget_after_s=args.forget_after)
            service = Service(source or subscribe(args.connect, args.units, args.scale, connecting), model, posterior,
                              Sinks(outputs, log, lsl), options, wide)
            settle_collector()
            try:
                err.print(f"serving {source.endpoint if source else args.connect} with {model!r}{wide_note(wide)}; posteriors on {outputs.posterior_endpoint}, "
                          f"spike events on {outputs.events_endpoint}" + (f"; live view on {web.url}" if web else ""),
                          soft_wrap=True)  # one line, whatever the terminal's width: scripts read the endpoints
                live_view = LiveView(service, web, "raphe serve " + (source.endpoint if source else args.connect)) \
                    if web else None
                seconds = serve(service, duration_s=args.duration, idle_s=args.idle, console=Console(stderr=args.json),
                                web=live_view)
            finally:
                service.close()
    finally:
        if log is not None:
            log.close()
        if lsl is not None:
            lsl.close()
        if web is not None:
            web.close()
    if args.json:
        print(json.dumps(service.summary(seconds)))
    return 0


def wide_note(wide) -> str:
    """What the start line says of the model of wide streams, where there is one."""
    return "" if wide is None else f" (streams of more than {ENSEMBLE_MAX_CHANNELS} channels: {wide!r})"


def serve_in_workers(args: argparse.Namespace, model, wide, evidence: str, settings: dict, connecting, outputs, log,
                     err) -> int:
    """`raphe serve --workers N`: the coordinator here, N workers spawned (see ``raphe.pipelines.shards``);
    exit code 1 if a worker died while serving (the summary printed is the others')."""
    from rich.console import Console

    from raphe.pipelines.shards import WorkerSpec, serve_sharded

    spec = WorkerSpec(args.connect, str(model.path), args.decision_threshold, args.min_spikes, args.evidence,
                      settings, args.units, args.scale, args.max_cells, args.forget_after, connecting, args.duration,
                      args.idle, log is not None, wide=None if wide is None else str(wide.path),
                      threads=args.threads)
    summary = serve_sharded(spec, args.workers, outputs, log, evidence, Console(stderr=args.json),
        f"raphe serve {args.connect} ({args.workers} workers)", on_ready=lambda pids: err.print(
            f"serving {args.connect} with {model!r}{wide_note(wide)} in {args.workers} worker processes (pids "
            f"{', '.join(map(str, pids))}); posteriors on {outputs.posterior_endpoint}, spike events on "
            f"{outputs.events_endpoint}", soft_wrap=True))
    if args.json:
        print(json.dumps(summary))
    return 1 if summary["workers_lost"] else 0


def open_log(path: str):
    """The log, appended to; one line where it cannot be (a folder, a read-only file, ``/proc``)."""
    from raphe.core.errors import RapheError
    from raphe.core.staged import check_writable
    from raphe.outputs.log import RecordLog

    try:
        return RecordLog(check_writable(path))
    except OSError as exc:
        raise RapheError(f"cannot write the log {path}: {exc.strerror or exc}") from None


def lsl_outputs(name: str, classes: tuple[str, ...]):
    """The LSL outlets, or one line where pylsl (or its liblsl) is missing."""
    from raphe.outputs.lsl import LslOutputs

    return with_lsl("--lsl", lambda: LslOutputs(name, classes))


def lsl_source(name: str, units: str | None, timeout_s: float):
    """The LSL stream to serve, or one line where it cannot be had."""
    from raphe.streamer.lsl import LslSource

    return with_lsl("--lsl-source", lambda: LslSource(name, units or "pA", timeout_s))


def with_lsl(option: str, make):
    import importlib.util

    from raphe.core.errors import RapheError

    if importlib.util.find_spec("pylsl") is None:
        raise RapheError(f"{option} needs pylsl: pip install 'raphe[lsl]' (make test installs it)")
    try:
        return make()
    except (RuntimeError, OSError) as exc:  # pylsl raises these when its liblsl cannot be loaded
        raise RapheError(f"{option}: Lab Streaming Layer is not usable here ({exc})") from None
