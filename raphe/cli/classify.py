"""`raphe classify`: the offline path over files and folders."""

from __future__ import annotations

import argparse
import json

from .options import Parser, add_detector_options, add_model_options, detector_settings, load_model, positive_int

HELP = "Classify every cell of recordings (.abf, AxoGraph, NWB) or folders offline, as fast as the CPU allows."
EXAMPLE = "raphe classify archive/ --json > cells.jsonl"


def add_arguments(p: Parser) -> None:
    p.add_argument("paths", nargs="+", help="recordings (.abf, .axgd, .axgx, .nwb) or folders (searched recursively)")
    p.add_argument("--json", action="store_true", help="one JSON object per cell per line on stdout")
    p.add_argument("--out", help="also write one CSV row per cell here")
    p.add_argument("--channels", nargs="+", metavar="CH", help="channel indices or names (default: every pA channel)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="files classified at once, each in its own process (default 1)")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   help="classify on a Dask cluster: its scheduler's address (needs raphe[cluster])")
    p.add_argument("--nwb", metavar="DIR", help="also write each recording's results to DIR/<name>.nwb "
                                                "(needs raphe[nwb]); DIR is made if missing")
    p.add_argument("--subject-id", default="unknown", help="NWB: the animal's id (default unknown)")
    p.add_argument("--species", help="NWB: the animal's species, e.g. 'Mus musculus' (nwbinspector asks for it)")
    p.add_argument("--sex", default="U", choices=["M", "F", "U", "O"], help="NWB: the animal's sex (default U)")
    p.add_argument("--age", help="NWB: the animal's age, ISO 8601, e.g. P30D (nwbinspector asks for it)")
    p.add_argument("--experimenter", help="NWB: who recorded, e.g. 'Last, First' (nwbinspector asks for it)")
    p.add_argument("--institution", help="NWB: where it was recorded (nwbinspector asks for it)")
    p.add_argument("--lab", help="NWB: the lab (nwbinspector asks for it)")
    p.add_argument("--report-dir", dest="report", metavar="DIR", help="also draw why each cell ended as it did: DIR/<name>-<channel>.png "
                                                   "(its window against the class averages with an occlusion "
                                                   "saliency, its intervals, each evidence stream over time)")
    add_model_options(p)
    add_detector_options(p)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from raphe.core.staged import check_folder, check_writable
    from raphe.outputs.nwb import NwbMetadata
    from raphe.outputs.results import write_cells_csv
    from raphe.outputs.tables import classify_table
    from raphe.pipelines.offline import classify_paths

    model, wide, posterior = load_model(args)
    if args.out:
        check_writable(args.out)
    if args.nwb:
        nwb_folder(args.nwb)
    if args.report:
        check_folder(args.report, "the report's figures")
    on_row = (lambda row: print(json.dumps(row), flush=True)) if args.json else None
    result = classify_paths(args.paths, model, detector_settings(args), posterior, args.channels, on_row,
                            jobs=args.jobs, scheduler=args.scheduler, nwb_dir=args.nwb,
                            nwb_metadata=NwbMetadata(args.subject_id, args.species, args.sex, args.age, args.experimenter,
                                                     args.institution, args.lab), report_dir=args.report,
                            wide_model=wide)
    if args.out:
        write_cells_csv(args.out, result.rows, result.classes)
    if not args.json and result.rows:
        Console().print(classify_table(result.rows))
    if result.interrupted:
        return 130
    if result.failed:
        # unusable input is exit 2 everywhere; 1 says that some files of many failed
        return 2 if not result.rows and not result.skipped else 1
    return 0


def nwb_folder(folder: str) -> None:
    """Refuse, before any work, an NWB folder that cannot be made or a missing pynwb."""
    import importlib.util

    from raphe.core.errors import RapheError
    from raphe.core.staged import check_folder

    if importlib.util.find_spec("pynwb") is None:
        raise RapheError("--nwb needs pynwb: pip install 'raphe[nwb]' (make test installs it)")
    check_folder(folder, "the NWB files")
