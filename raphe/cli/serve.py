"""`raphe serve`: the live path on a rig's stream."""

from __future__ import annotations

import argparse
import json

from raphe.core.specs import DATA_ENDPOINT, EVENTS_ENDPOINT, POSTERIOR_ENDPOINT

from .options import (Parser, add_detector_options, add_model_options, add_stop_options, add_units_options,
                      detector_settings, load_model)

HELP = "Classify cells live: subscribe, detect, classify, publish posteriors and spike events."
EXAMPLE = "raphe serve --connect tcp://127.0.0.1:5556 --log cells.jsonl"


def add_arguments(p: Parser) -> None:
    p.add_argument("--connect", default=DATA_ENDPOINT, help="the rig's data endpoint (default %(default)s)")
    p.add_argument("--posterior-endpoint", default=POSTERIOR_ENDPOINT,
                   help="where POSTERIOR messages are published (default %(default)s)")
    p.add_argument("--events-endpoint", default=EVENTS_ENDPOINT,
                   help="where Event Broadcaster spike events are published (default %(default)s)")
    p.add_argument("--log", help="append one JSON object per line: every spike's update, restarts, final summaries")
    add_model_options(p)
    add_detector_options(p)
    add_units_options(p)
    add_stop_options(p)
    p.add_argument("--json", action="store_true", help="print the final cells and timings as one JSON object")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from raphe.core.staged import check_writable
    from raphe.detector.config import DetectorConfig
    from raphe.pipelines.live import Service, serve
    from raphe.pipelines.records import RecordLog
    from raphe.streamer.outputs import Outputs

    model, posterior = load_model(args)
    settings = detector_settings(args)
    DetectorConfig(window=model.window, **settings)  # refuse bad settings before any socket is bound
    log = RecordLog(check_writable(args.log)) if args.log else None
    err = Console(stderr=True)
    try:
        with Outputs(args.posterior_endpoint, args.events_endpoint) as outputs:
            service = Service(args.connect, model, settings, posterior, outputs, log, args.units, args.scale)
            try:
                err.print(f"serving {args.connect} with {model!r}; posteriors on {outputs.posterior_endpoint}, "
                          f"spike events on {outputs.events_endpoint}")
                seconds = serve(service, duration_s=args.duration, idle_s=args.idle, console=Console(stderr=args.json))
            finally:
                service.close()
    finally:
        if log is not None:
            log.close()
    if args.json:
        print(json.dumps(service.summary(seconds)))
    return 0
