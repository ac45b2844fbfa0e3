"""The outputs' contract: fed the same cells, every output reports the same spikes, decision,
final posterior and reasons, and the same mean window and intervals where it shows them.

One live service serves a small rig (two firing cells and a channel in volts) into every live
output at once: the POSTERIOR socket, the log, LSL, the web view's snapshot and the terminal table;
the same recording then goes through `classify`'s outputs: JSON, CSV, NWB and the report's title.
"""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest
from rich.console import Console

from raphe.classifier.runtime.model import Model
from raphe.classifier.synthetic import template as synthetic
from raphe.detector.config import DetectorConfig
from raphe.outputs.log import RecordLog
from raphe.outputs.nwb import NwbMetadata, write_nwb
from raphe.outputs.report import ISI_EDGES, headline
from raphe.outputs.results import write_cells_csv
from raphe.outputs.snapshot import LiveView
from raphe.outputs.web import WebView
from raphe.outputs.wire import Outputs, decode_posterior
from raphe.pipelines.live import Service
from raphe.pipelines.offline import classify_recording
from raphe.pipelines.wiring import ServeOptions, Sinks, subscribe
from raphe.replay.recording import Channel, Recording
from raphe.streamer.publisher import Publisher
from tests.helpers import PosteriorReader, replay_into, unavailable

RATE = 40_000.0


@pytest.fixture(scope="module")
def rig() -> Recording:
    rng = np.random.default_rng(77)
    day = synthetic.draw_day("contract", rng)
    traces = [synthetic.synth_trace(synthetic.draw_cell(label, rng), day, 8.0, RATE, rng)[0]
              for label in (synthetic.SER, synthetic.NSER)]
    traces.append((traces[1] * 0.0005).astype(np.float32))  # the NSER cell again, in volts: no spikes, a veto
    return Recording.from_traces("contract", RATE, [Channel(k, f"ch{k}", "pA") for k in range(3)], traces)


@pytest.fixture(scope="module")
def served(rig, tmp_path_factory):
    """Everything the live outputs said of the rig, and the service's cells."""
    try:
        import pylsl

        from raphe.outputs.lsl import LslOutputs
    except ImportError:
        unavailable("pylsl is not installed (make test installs it)")
    model = Model()
    log_path = tmp_path_factory.mktemp("contract") / "serve.jsonl"
    name = f"raphe-contract-{os.getpid()}"
    lsl = LslOutputs(name, model.classes)
    found = pylsl.resolve_byprop("name", f"{name}-posteriors", timeout=10)
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(timeout=10)
    web = WebView("127.0.0.1:0")
    with Publisher("tcp://127.0.0.1:*", heartbeat=False, lossless=True) as pub, \
            Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", lossless=True) as outputs, RecordLog(log_path) as log:
        service = Service(subscribe(pub.endpoint), model, model.posterior_config(), Sinks(outputs, log, lsl),
                          ServeOptions(keep_history=True))
        view = LiveView(service, web, "contract")
        reader = PosteriorReader(outputs.posterior_endpoint)
        try:
            replay_into(service, pub, rig)
            snapshot = view.snapshot(8.0, final=True)
            console = Console(width=200, record=True, file=io.StringIO())
            console.print(service.table(8.0, "contract"))
        finally:
            reader.stop()
            service.close()
    samples = []
    while True:
        chunk, _ = inlet.pull_chunk(timeout=1.0)
        if not chunk:
            break
        samples += chunk
    lsl.close()
    web.close()
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    contents = [decode_posterior(frames)["content"] for frames in reader.frames]
    return {"model": model, "service": service, "contents": contents, "records": records, "lsl": samples,
            "snapshot": snapshot, "table": console.export_text()}


def test_the_live_outputs_report_every_spike_alike(served):
    """The POSTERIOR messages, the log's spike records and the LSL samples: one per spike, the same
    spike, posterior and decision in each."""
    contents, model = served["contents"], served["model"]
    spikes = [r for r in served["records"] if r["kind"] == "spike"]
    assert len(contents) == len(spikes) == len(served["lsl"]) == served["service"].spikes > 20
    k = len(model.classes)
    for content, record, sample in zip(contents, spikes, served["lsl"]):
        assert {key: content[key] for key in ("cell", "n_spikes", "decision", "posterior", "reasons")} == \
            {key: record[key] for key in ("cell", "n_spikes", "decision", "posterior", "reasons")}
        decided = model.classes.index(content["decision"]) + 1 if content["decision"] in model.classes else 0
        assert (sample[1], sample[2], sample[4]) == (content["channel_num"], content["n_spikes"], decided)
        np.testing.assert_allclose(sample[5:5 + k], content["posterior"], rtol=1e-9)


def test_every_output_ends_each_cell_alike(served, rig, tmp_path):
    """The log's summaries, the web view's rows, the terminal table, and `classify`'s JSON, CSV, NWB
    and report: the same spikes, decision, final posterior and reasons; the web view's mean window
    and intervals are the cell's own."""
    model, service = served["model"], served["service"]
    summaries = {r["cell"]: r for r in served["records"] if r["kind"] == "summary"}
    rows = {r["cell"]: r for r in served["snapshot"]["cells"]}
    details = served["snapshot"]["details"]
    classified = classify_recording(rig, rig.channels, model, DetectorConfig(window=model.window),
                                    model.posterior_config(), keep_history=True)
    offline = {s.cell: s for s in classified.states}
    csv_path = tmp_path / "cells.csv"
    write_cells_csv(csv_path, [{"recording": "contract", "model": model.path.name, **s.as_dict()}
                               for s in classified.states], model.classes)
    table_rows = {r["stream"] + ":" + r["channel_num"]: r for r in csv.DictReader(csv_path.open())}
    nwb_path = tmp_path / "contract.nwb"
    write_nwb(nwb_path, rig, classified, model, NwbMetadata())
    import pynwb

    with pynwb.NWBHDF5IO(str(nwb_path), "r") as io_:
        units = io_.read().units.to_dataframe()
    assert set(summaries) == set(rows) == set(offline) == set(table_rows) and len(offline) == 3
    assert any(s.decision == "not classifiable" and s.reasons for s in offline.values())
    for (cell, state), (_, unit) in zip(offline.items(), units.iterrows()):
        shown = [summaries[cell], rows[cell]]
        assert [s["decision"] for s in shown] == [state.decision] * 2 == [table_rows[cell]["decision"], unit["decision"]]
        assert summaries[cell]["n_spikes"] == rows[cell]["spikes"] == state.n_spikes == len(unit["spike_times"]) \
            == int(table_rows[cell]["n_spikes"])
        final = list(state.posterior)
        assert [summaries[cell]["posterior"][c] for c in model.classes] == pytest.approx(final, abs=1e-9)
        assert rows[cell]["posterior"] == pytest.approx(final, abs=1e-4)
        assert [float(table_rows[cell][f"posterior_{c}"]) for c in model.classes] == pytest.approx(final, rel=1e-5)
        assert list(unit["final_posterior"]) == pytest.approx(final, abs=1e-6)
        assert summaries[cell]["reasons"] == rows[cell]["reasons"] == list(state.reasons)
        assert table_rows[cell]["reasons"] == unit["reasons"] == "; ".join(state.reasons)
        assert summaries[cell]["hints"] == rows[cell]["hints"] == list(state.hints)
        assert state.top in served["table"] and (state.explanation[:40] in headline(state).replace("\n", " ")
                                                 if state.explanation else True)
        live = service.channels[(state.stream, state.channel_num)].cell
        if cell in details:
            mean = live.mean_window
            assert (details[cell]["mean_window"] is None) == (mean is None)
            if mean is not None:
                assert details[cell]["mean_window"] == pytest.approx(mean, abs=1e-3)
            intervals = live.train.recent_intervals()
            expected = np.histogram(np.clip(intervals, ISI_EDGES[0], ISI_EDGES[-1]), ISI_EDGES)[0]
            assert details[cell]["isi_counts"] == expected.tolist()
