"""`serve --lsl`: per-spike posteriors and decisions on real LSL outlets, read by a pylsl inlet."""

from __future__ import annotations

import json
import math
import os
import threading
import time

import numpy as np
import pytest

from raphe.replay.player import replay
from raphe.replay.recording import Recording
from raphe.outputs.wire import decode_posterior
from tests.helpers import PosteriorReader, drain_service, live_service, unavailable

try:
    import pylsl
except ImportError:
    unavailable("pylsl is not installed (make test installs it)", module_level=True)


def pull_all(inlet, timeout: float = 1.0) -> tuple[list, list]:
    samples, stamps = [], []
    while True:
        chunk, times = inlet.pull_chunk(timeout=timeout)
        if not times:
            return samples, stamps
        samples += chunk
        stamps += times


def test_every_spike_reaches_an_lsl_inlet_stamped_by_its_sample_time(labelled_files):
    from raphe.classifier.runtime.model import Model
    from raphe.outputs.lsl import LslOutputs

    name = f"raphe-test-{os.getpid()}"
    lsl = LslOutputs(name, Model().classes)
    found = {kind: pylsl.resolve_byprop("name", f"{name}-{kind}", timeout=10) for kind in ("posteriors", "decisions")}
    assert all(found.values()), found
    posteriors, decisions = pylsl.StreamInlet(found["posteriors"][0]), pylsl.StreamInlet(found["decisions"][0])
    for inlet in (posteriors, decisions):
        inlet.open_stream(timeout=10)
    labels = []
    channel = posteriors.info().desc().child("channels").child("channel")
    while not channel.empty():
        labels.append(channel.child_value("label"))
        channel = channel.next_sibling()
    assert labels[:5] == ["cell_index", "channel_num", "n_spikes", "novel", "decided"] and "firing_SER" in labels
    recording = Recording(labelled_files[0])
    with live_service(lsl=lsl) as (pub, service):
        reader = PosteriorReader(service.sinks.wire.posterior_endpoint)
        sender = threading.Thread(target=replay, args=(recording, pub), kwargs={"block_ms": 10.0, "speed": math.inf})
        sender.start()
        sender.join()
        drain_service(service)
        reader.stop()
        samples, stamps = pull_all(posteriors)
        markers, _ = pull_all(decisions)
    contents = [decode_posterior(frames)["content"] for frames in reader.frames]
    contents = [c for c in contents if c["stream"] == recording.name]
    assert len(samples) == len(contents) == lsl.samples > 20
    for value, content in zip(samples, contents):
        assert value[2] == content["n_spikes"] and bool(value[3]) == content["novel"]
        np.testing.assert_allclose(value[5:7], content["posterior"], rtol=1e-9)
        np.testing.assert_allclose(value[9:11], content["firing_posterior"], rtol=1e-9)
    # stamped by sample time: the gaps between stamps are the gaps between the spikes' samples
    sample_s = np.array([c["sample_num"] for c in contents]) / recording.sample_rate
    np.testing.assert_allclose(np.diff(stamps), np.diff(sample_s), atol=1e-6)
    markers = [json.loads(m[0]) for m in markers]
    cells = {m["cell_index"]: m for m in markers if m["kind"] == "cell"}
    changes = [m for m in markers if m["kind"] == "decision"]
    final = contents[-1]["decision"]
    assert changes and changes[-1]["decision"] == final and changes[-1]["cell"] == contents[-1]["cell"]
    # each sample names its cell by an index the markers resolve, stream and all
    for value, content in zip(samples, contents):
        named = cells[int(value[0])]
        assert (named["cell"], named["stream"], named["acquisition"]) == \
            (content["cell"], content["stream"], content["acquisition"])
    lsl.close()


def test_an_lsl_stream_of_current_is_served_as_classify_reads_the_file(labelled_files):
    """A pylsl outlet plays a recording's samples; `serve`'s pipeline on an LslSource ends every
    cell as `classify` ends the file."""
    from raphe.classifier.runtime.model import Model
    from raphe.detector.config import DetectorConfig
    from raphe.pipelines.live import Service
    from raphe.pipelines.wiring import ServeOptions, Sinks
    from raphe.pipelines.offline import classify_recording
    from raphe.streamer.lsl import LslSource
    from raphe.outputs.wire import Outputs

    recording = Recording(labelled_files[1])
    trace = recording.sweeps[0].traces[0]
    name = f"raphe-rig-{os.getpid()}"
    info = pylsl.StreamInfo(name, "Current", 1, recording.sample_rate, pylsl.cf_float32, name)
    info.desc().append_child("channels").append_child("channel").append_child_value("label", "cell") \
        .append_child_value("unit", "pA")
    outlet = pylsl.StreamOutlet(info, chunk_size=400)
    source = LslSource(name)
    assert source.channel_names == ("cell",) and source.units == "pA" and source.sample_rate == recording.sample_rate
    model = Model()
    with Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*") as outputs:
        service = Service(source, model, model.posterior_config(), Sinks(outputs), ServeOptions(keep_history=True))
        start = pylsl.local_clock()
        step = 400
        for k in range(0, len(trace), step):
            outlet.push_chunk(trace[k:k + step].reshape(-1, 1).tolist(), start + k / recording.sample_rate)
            service.step(0)
        while service.step(500):
            pass
        served = service.channels[(name, 0)].cell
        service.close()
    offline = classify_recording(recording, recording.channels, model, DetectorConfig(window=model.window),
                                 model.posterior_config()).cells[0]
    assert served.samples == len(trace) and source.stats.channels[(name, 0)].lost_samples == 0
    served_state, offline_state = served.state(final=True).as_dict(), offline.state(final=True).as_dict()
    assert served.n_spikes == offline.n_spikes > 10 and served_state["decision"] == offline_state["decision"]
    for part in ("waveform", "firing", "joint"):
        assert served_state["parts"][part] == pytest.approx(offline_state["parts"][part], rel=1e-5, abs=1e-9)
    assert served.train.n_isi == offline.train.n_isi > 8


def test_a_missing_lsl_stream_is_one_line():
    from tests.helpers import assert_one_line_error, run_raphe

    assert_one_line_error(run_raphe("serve", "--lsl-source", f"nothing-{os.getpid()}", "--lsl-timeout", "1.5",
                                    "--idle", "1", timeout=60), "found within 1.5 s")


def test_stamps_share_one_anchor_per_stream_and_restart_with_its_samples():
    from raphe.outputs.lsl import LslOutputs
    from tests.helpers import spike_update as update

    lsl = LslOutputs(f"raphe-anchor-{os.getpid()}", ("SER", "NSER"))

    lsl.anchor("early", 40_000, restarted=False)  # its first block received: 1 s of samples at 40 kHz
    anchored = pylsl.local_clock()
    time.sleep(0.1)  # a slow first publish
    late = lsl.timestamp(update(0, 40_000, stream="early", sample_rate=40_000.0))
    assert late == pytest.approx(anchored, abs=0.02)  # stamped by its sample, not when it was published
    a = lsl.timestamp(update(0, 20_000_000))
    b = lsl.timestamp(update(1, 20_010_000))  # another cell of the stream, 1 s of samples later
    assert b - a == pytest.approx(1.0, abs=1e-9)
    lsl.anchor("rig", 400, restarted=True)  # the stream's samples start again: a new anchor, not 2,000 s back
    restarted = lsl.timestamp(update(0, 0))
    assert restarted == pytest.approx(pylsl.local_clock(), abs=1.0)
    lsl.publish(update(0, 100, "SER"))
    assert lsl._decided[("rig:0", 1)] == ("SER", ())
    lsl.forget("rig:0")
    assert ("rig:0", 1) not in lsl._decided
    lsl.close()
