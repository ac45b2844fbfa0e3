"""raphe's results beside a lab's data: one NWB file per classified recording (pynwb).

The file holds a Units table, one row per cell (channel): its spike times (seconds from the
recording's first sample), and per spike its window (160 points, pA), its class probabilities, the
running posterior after it and whether it was novel; per cell its final posterior, decision, spikes
to the decision, the reasons it is not classifiable, and the seed's rule alongside. The model's
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
class Subject:
    """What NWB asks about the animal, as the user gives it (the .abf file holds none of it)."""

    subject_id: str = "unknown"
    species: str | None = None
    sex: str = "U"
    age: str | None = None


def session_start(recording: Recording) -> datetime.datetime:
    """The recording's start from its header; ABF keeps the rig's local time without a zone, so it is
    stored as if UTC (the clock reading is kept; the README says so). Without one: the file's
    modification time, which is about when the recording ended."""
    if recording.started_at is None:
        return datetime.datetime.fromtimestamp(Path(recording.path).stat().st_mtime, datetime.timezone.utc)
    return recording.started_at.replace(tzinfo=datetime.timezone.utc)


def write_nwb(path: Path, recording: Recording, classified, model: Model, subject: Subject) -> None:
    """``classified`` (:class:`raphe.pipelines.offline.Classified`) of ``recording`` into ``path``."""
    try:
        from pynwb import NWBHDF5IO, NWBFile
        from pynwb.file import Subject as NWBSubject
        from pynwb.misc import Units
    except ImportError:
        raise RapheError("writing NWB needs pynwb: pip install 'raphe[nwb]' (make test installs it)") from None
    if path.exists():
        raise RapheError(f"{path}: exists (nothing overwritten; recordings of the same name need separate --nwb folders)")
    identity = {"model": model.metadata.get("name", model.path.stem), "variant": model.variant,
                "sha256": model.checksum, "classes": list(model.classes),
                "detector": model.metadata.get("detector", {}), "posterior": classified.posterior_json,
                "recording": str(recording.path)}
    nwbfile = NWBFile(session_description=RESULTS_DESCRIPTION + recording.path.name,
                      identifier=str(uuid.uuid4()), session_start_time=session_start(recording),
                      experiment_description="SER/NSER identification by raphe from cell-attached action currents",
                      keywords=["serotonergic", "dorsal raphe", "cell-attached", "raphe"],
                      notes=json.dumps(identity),
                      subject=NWBSubject(subject_id=subject.subject_id, species=subject.species, sex=subject.sex,
                                         age=subject.age))
    nwbfile.units = Units(name="units", resolution=1.0 / recording.sample_rate,
                          description=f"one row per cell (channel) classified by raphe model {identity['model']} "
                                      f"({identity['variant']}, sha256 {identity['sha256']})")
    columns = {"channel_num": "the channel's index in the recording", "channel_name": "the channel's name",
               "decision": "the final decision: a class, undecided or not classifiable",
               "spikes_to_decision": "spikes the decision took (-1: none)",
               "reasons": "why the cell is not classifiable ('; '-joined; empty if it is)",
               "final_posterior": f"the posterior after the last spike ({', '.join(model.classes)})",
               "mean_spike_probability": "the seed's rule: the mean of the spike probabilities"}
    for name, description in columns.items():
        nwbfile.add_unit_column(name, description)
    ragged = {"spike_windows": "each spike's window, pA, 160 points on the 40 kHz grid (1 ms before to 3 ms "
                               "after the crossing)",
              "spike_probabilities": f"each spike's class probabilities ({', '.join(model.classes)})",
              "running_posterior": "the cell's deciding posterior after each spike",
              "running_waveform_posterior": "the posterior of the waveform evidence alone after each spike",
              "running_firing_posterior": "the posterior of the firing evidence alone after each spike "
                                          "(uniform until the firing model speaks)",
              "novel": "whether each spike's window looked like nothing the model was trained on"}
    for name, description in ragged.items():
        nwbfile.add_unit_column(name, description, index=True)
    records = classified.events.records
    n_classes = len(model.classes)
    for k, (cell, channel) in enumerate(zip(classified.cells, classified.channels)):
        mine = records["channel"] == k
        def history(part: str) -> np.ndarray:
            return np.array([p[part] for _, p in cell.history], np.float32).reshape(-1, n_classes)
        summary = cell.summary()
        nwbfile.add_unit(spike_times=(records["sample_num"][mine] - recording.sweeps[0].sample_num)
                         / recording.sample_rate,
                         channel_num=channel.num, channel_name=channel.name, decision=cell.decision,
                         spikes_to_decision=summary["spikes_to_decision"] or -1,
                         reasons="; ".join(summary["reasons"]), final_posterior=cell.posterior.posterior,
                         mean_spike_probability=[summary["mean_spike_probability"][c] for c in model.classes],
                         spike_windows=classified.events.windows[mine].reshape(-1, model.n_points),
                         spike_probabilities=classified.probabilities[mine].reshape(-1, n_classes),
                         running_posterior=history(cell.posterior.deciding),
                         running_waveform_posterior=history("waveform"), running_firing_posterior=history("firing"),
                         novel=classified.novel[mine])
    with staged(path) as partial, NWBHDF5IO(str(partial), "w") as io:
        io.write(nwbfile)
