"""raphe's results beside a lab's data: one NWB file per classified recording (pynwb).

The file holds a Units table, one row per cell (channel): its spike times (seconds from the
recording's first sample), and per spike its window (160 points, pA), its class probabilities, the
running posterior after it and whether it was novel; per cell its final posterior, decision, spikes
to the decision, the reasons it is not classifiable or the hints why it has no evidence, and the
seed's rule alongside. A recording where no channel fired has the same per-cell rows in a table
``cells`` of the processing module ``ecephys`` instead (NWB's checkers refuse a Units table without
spike times and misread one whose spike columns are all empty). The model's
name, variant and checksum, the detector's rule and the posterior's tempering are in the file's
notes (JSON) and the table's description. Subject metadata the recording does not hold comes from
the command line; without species and age, nwbinspector reports them missing.
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raphe.classifier.runtime.model import Model
from raphe.core.errors import RapheError
from raphe.core.staged import staged
from raphe.replay.formats import RESULTS_DESCRIPTION
from raphe.replay.recording import Recording


@dataclass(frozen=True)
class NwbMetadata:
    """What NWB asks about the animal and the session that the recording does not hold, as the user
    gives it (without species, age, experimenter, institution and lab, nwbinspector asks for them)."""

    subject_id: str = "unknown"
    species: str | None = None
    sex: str = "U"
    age: str | None = None
    experimenter: str | None = None
    institution: str | None = None
    lab: str | None = None


def session_start(recording: Recording) -> datetime.datetime:
    """The recording's start from its header; ABF keeps the rig's local time without a zone, so it is
    stored as if UTC (the clock reading is kept; docs/formats.md says so). Without one: the file's
    modification time, which is about when the recording ended (for samples held in memory, now)."""
    if recording.started_at is None:
        path = Path(recording.path)
        when = path.stat().st_mtime if path.is_file() else datetime.datetime.now().timestamp()
        return datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return recording.started_at.replace(tzinfo=datetime.timezone.utc)


def write_nwb(path: Path, recording: Recording, classified, model: Model, metadata: NwbMetadata) -> None:
    """``classified`` (:class:`raphe.pipelines.offline.Classified`) of ``recording`` into ``path``,
    written under a temporary name and renamed when whole: a crash leaves no broken file."""
    try:
        from hdmf.common import DynamicTable
        from pynwb import NWBHDF5IO, NWBFile
        from pynwb.file import Subject as NWBSubject
        from pynwb.misc import Units
    except ImportError:
        raise RapheError("writing NWB needs pynwb: pip install 'raphe[nwb]' (make test installs it)") from None
    if path.exists():
        raise RapheError(f"{path}: exists (nothing overwritten; recordings of the same name need separate --nwb folders)")
    named = model.identity
    identity = {"model": named["name"], "variant": named["variant"], "sha256": named["sha256"],
                "classes": list(model.classes),
                "detector": model.metadata.get("detector", {}), "posterior": classified.posterior_json,
                "recording": str(recording.path)}
    nwbfile = NWBFile(session_description=RESULTS_DESCRIPTION + recording.path.name,
                      identifier=str(uuid.uuid4()), session_start_time=session_start(recording),
                      experiment_description="SER/NSER identification by raphe from cell-attached action currents",
                      keywords=["serotonergic", "dorsal raphe", "cell-attached", "raphe"],
                      notes=json.dumps(identity), experimenter=metadata.experimenter,
                      institution=metadata.institution, lab=metadata.lab,
                      subject=NWBSubject(subject_id=metadata.subject_id, species=metadata.species, sex=metadata.sex,
                                         age=metadata.age, description="the animal the recording came from, as "
                                                                        "given to raphe classify"))
    description = (f"one row per cell (channel) classified by raphe model {identity['model']} "
                   f"({identity['variant']}, sha256 {identity['sha256']})")
    columns = {"channel_num": "the channel's index in the recording", "channel_name": "the channel's name",
               "decision": "the final decision: a class, undecided or not classifiable",
               "spikes_to_decision": "spikes the decision took (-1: none)",
               "reasons": "why the cell is not classifiable ('; '-joined; empty if it is)",
               "hints": "why a cell has no evidence, where it has none ('; '-joined)",
               "final_posterior": f"the posterior after the last spike ({', '.join(model.classes)})",
               "mean_spike_probability": "the seed's rule: the mean of the spike probabilities"}
    rows = [{"channel_num": channel.num, "channel_name": channel.name, "decision": state.decision,
             "spikes_to_decision": state.spikes_to_decision or -1, "reasons": "; ".join(state.reasons),
             "hints": "; ".join(state.hints), "final_posterior": state.posterior,
             "mean_spike_probability": state.mean_spike_probability}
            for state, channel in zip(classified.states, classified.channels)]
    if len(classified.events):
        units = Units(name="units", resolution=1.0 / recording.sample_rate, description=description)
        nwbfile.units = units
        add_spike_columns(units, classified, model, recording, columns, rows)
    else:
        # no channel fired: no Units table (one without spike times, or with only empty ones, is
        # refused or misread by NWB's checkers) but the same per-cell rows in a table of their own
        cells = DynamicTable(name="cells", description=description + "; no channel of the recording fired")
        for name, text in columns.items():
            cells.add_column(name, text)
        for row in rows:
            cells.add_row(row)
        nwbfile.create_processing_module("ecephys", "raphe's results per cell").add(cells)
    with staged(path) as partial, NWBHDF5IO(str(partial), "w") as io:
        io.write(nwbfile)


def add_spike_columns(units, classified, model: Model, recording: Recording, columns: dict, rows: list[dict]) -> None:
    """The cells as units: their per-cell ``columns`` (``rows``), spike times, and per spike its
    window, class probabilities, running posteriors and novelty."""
    for name, description in columns.items():
        units.add_column(name, description)
    n_classes = len(model.classes)
    per_spike = {"spike_windows": "each spike's window, pA, 160 points on the 40 kHz grid (1 ms before to 3 ms "
                                  "after the crossing)",
                 "spike_probabilities": f"each spike's class probabilities ({', '.join(model.classes)})",
                 "running_posterior": "the cell's deciding posterior after each spike",
                 "running_waveform_posterior": "the posterior of the waveform evidence alone after each spike",
                 "running_firing_posterior": "the posterior of the firing evidence alone after each spike "
                                             "(uniform until the firing model speaks)",
                 "novel": "whether each spike's window looked like nothing the model was trained on"}
    for name, description in per_spike.items():
        units.add_column(name, description, index=True)
    records = classified.events.records
    for k, (cell, row) in enumerate(zip(classified.cells, rows)):
        mine = records["channel"] == k

        def history(part: str) -> np.ndarray:
            return np.array([p[part] for _, p in cell.history], np.float32).reshape(-1, n_classes)

        units.add_unit(spike_times=(records["sample_num"][mine] - recording.sweeps[0].sample_num)
                       / recording.sample_rate, **row,
                       spike_windows=classified.events.windows[mine].reshape(-1, model.n_points),
                       spike_probabilities=classified.probabilities[mine].reshape(-1, n_classes),
                       running_posterior=history(cell.posterior.deciding),
                       running_waveform_posterior=history("waveform"), running_firing_posterior=history("firing"),
                       novel=classified.novel[mine])
