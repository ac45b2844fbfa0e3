"""What several commands share: argparse with one-line errors, argument types, and option groups
(the detector's rule, the model and its decision rule, the units of channels without any)."""

from __future__ import annotations

import argparse
import math
import sys

from raphe.core.specs import DECISION_THRESHOLD, ENSEMBLE_MAX_CHANNELS, MIN_SPIKES
from raphe.detector.config import DetectorConfig, rule_settings

DETECTOR_DEFAULTS = DetectorConfig()


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage block followed by the error, and an
    option is only ever its whole name (``--out`` is never taken for ``--out-dir``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


def add_detector_options(p: Parser) -> None:
    p.add_argument("--threshold", type=float,
                   help="threshold in the recording's units, from the running baseline (the median of each "
                        f"0.5 s), so a holding current or a drifting seal cannot fool it (default "
                        f"{DETECTOR_DEFAULTS.threshold:g}, the seed's -50 pA; {-DETECTOR_DEFAULTS.threshold:g} "
                        "with --polarity pos)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--absolute", action="store_true",
                     help="measure --threshold from zero instead of the baseline (the seed's own rule)")
    how.add_argument("--adaptive", type=positive_float, metavar="K",
                     help="threshold at K x robust noise (MAD / 0.6745) from the running median instead")
    p.add_argument("--polarity", choices=["neg", "pos", "both"], default=DETECTOR_DEFAULTS.polarity,
                   help="crossing direction (default %(default)s)")
    p.add_argument("--refractory-ms", type=float, default=DETECTOR_DEFAULTS.refractory_ms,
                   help="minimum time between events (default %(default)g)")


def detector_settings(args: argparse.Namespace) -> dict:
    """The detector options as DetectorConfig keywords (the window comes with the model)."""
    return rule_settings(args.threshold, args.absolute, args.adaptive, args.polarity, args.refractory_ms)


def named(text: str) -> tuple[str, str]:
    """An option's NAME=PATH."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH (got {text!r})")
    return name, path


def add_model_options(p: Parser) -> None:
    p.add_argument("--model", help="a model's .tflite or .json, a cascade's .json, or a shipped one: default, ensemble, "
                        f"student, cascade (default: default, the ensemble; a stream or file of more than "
                        f"{ENSEMBLE_MAX_CHANNELS} channels gets the cascade where it stands in for the ensemble)")
    p.add_argument("--decision-threshold", type=float,
                   help="posterior a class must reach to be decided, one for every class (default: the "
                        f"thresholds the model's risk control chose per class, else {DECISION_THRESHOLD:g})")
    p.add_argument("--min-spikes", type=positive_int, default=MIN_SPIKES,
                   help="spikes before any decision (default %(default)d)")
    p.add_argument("--evidence", choices=["both", "waveform", "firing"],
                   help="which posterior decides: both (the joint of the spikes' shapes and the cell's firing), "
                        "waveform or firing alone (default: both where the model has a firing model, else "
                        "waveform); every output shows all three")


def load_model(args: argparse.Namespace, threads: int = 1):
    """The model of ``--model`` (its interpreters on ``threads`` threads), the model of wide streams
    where ``--model`` is left to raphe (see ``serving.stand_in``; else None), and the posterior of
    ``--decision-threshold``, ``--min-spikes`` and ``--evidence``."""
    from raphe.classifier.runtime.serving import chosen

    model, wide = chosen(args.model, threads)
    posterior = model.posterior_config(args.decision_threshold, args.min_spikes, args.evidence)
    if model.posterior_note:
        print(model.posterior_note, file=sys.stderr)
    return model, wide, posterior


def add_units_options(p: Parser) -> None:
    p.add_argument("--units", help="units of channels whose header has none (Open Ephys sends µV or V)")
    p.add_argument("--scale", type=float, default=1.0, help="factor for samples of such channels (default 1)")


def add_stop_options(p: Parser) -> None:
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--idle", type=positive_float, help="stop when data stops for this many seconds")


def load_windows(paths: list[str], channel: str | None = None):
    """One window set from several, merged: window sets (.npz, `raphe synth` folders, CSV class
    folders) and labelled recordings (class folders of recordings, CSV manifests), the latter cut by
    the detector; a line on stderr for each warning about them."""
    import sys
    from pathlib import Path

    from raphe.classifier.runtime import windows
    from raphe.pipelines.labelled_recordings import is_labelled_folder, load_labelled

    sets = []
    for p in map(Path, paths):
        if p.suffix.lower() == ".csv" or is_labelled_folder(p):
            data, warnings = load_labelled(p, channel)
            for warning in warnings:
                print(f"warning: {warning}", file=sys.stderr)
            sets.append(data)
        else:
            sets.append(windows.load(p))
    return sets[0] if len(sets) == 1 else windows.concatenate(sets)


def add_labelled_options(p: Parser) -> None:
    p.add_argument("--channels", metavar="CH", dest="channel",
                   help="labelled recordings: the cell's channel in each file (index or name; default: its one pA channel)")


def add_security_options(p: Parser, serving: bool, connecting: bool) -> None:
    """CURVE for what this command serves (its outputs, its data socket) and what it connects to."""
    p.add_argument("--curve-secret", metavar="NAME.key_secret",
                   help="this side's key pair (made by `raphe keys`): serve and connect with CURVE")
    if serving:
        p.add_argument("--curve-clients", metavar="DIR",
                       help="admit only the clients whose public keys (.key) lie in DIR (default: any client "
                            "that knows this side's public key)")
        p.add_argument("--insecure", action="store_true",
                       help="allow binding beyond 127.0.0.1 without CURVE (prints a warning)")
    if connecting:
        p.add_argument("--rig-key", metavar="NAME.key", help="the rig's public key: connect to it with CURVE")


def curves(args: argparse.Namespace):
    """(serving, connecting) CURVE settings of the security options, None where not asked for."""
    from pathlib import Path

    from raphe.core.errors import RapheError
    from raphe.streamer.security import Curve

    secret = getattr(args, "curve_secret", None)
    rig_key = getattr(args, "rig_key", None)
    if rig_key and not secret:
        raise RapheError("--rig-key needs this side's key pair too (--curve-secret)")
    if not secret:
        return None, None
    clients = getattr(args, "curve_clients", None)
    serving = Curve(Path(secret), Path(clients) if clients else None)
    connecting = Curve(Path(secret), server_file=Path(rig_key)) if rig_key else None
    return serving, connecting


def with_config(argv: list[str]) -> list[str]:
    """``argv`` with the options of ``serve --config FILE`` put before those of the command line,
    which thus override them. FILE is TOML: keys are the long options without their dashes
    (``connect = "tcp://rig:5556"``, ``lossless-outputs = true``, ``scale = 2000``); a list gives
    an option several values; ``false`` leaves a flag out."""
    import tomllib
    from pathlib import Path

    from raphe.core.errors import RapheError

    if not argv or argv[0] != "serve":
        return argv
    rest, path = [], None
    items = iter(argv[1:])
    for item in items:
        if item == "--config":
            path = next(items, None)
            if path is None:
                raise RapheError("--config needs a file")
        elif item.startswith("--config="):
            path = item.partition("=")[2]
        else:
            rest.append(item)
    if path is None:
        return argv
    try:
        settings = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise RapheError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RapheError(f"{path}: not a TOML file ({exc})") from None
    tokens = []
    for key, value in settings.items():
        option = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            tokens += [option] if value else []
        elif isinstance(value, (str, int, float)):
            tokens += [option, str(value)]
        elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            tokens += [option, *map(str, value)]
        else:
            raise RapheError(f"{path}: {key} must be a string, a number, true/false or a list of them")
    return [argv[0], *tokens, *rest]
