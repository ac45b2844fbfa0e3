"""Live classification over real sockets: serve against classify, the documented outputs, bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq
from rich.console import Console

from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.serving import load
from raphe.classifier.synthetic import template as synthetic
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector
from raphe.pipelines.live import Service
from raphe.pipelines.wiring import ServeOptions, Sinks, subscribe
from raphe.pipelines.offline import classify_recording
from raphe.replay.recording import Recording
from raphe.outputs.wire import Outputs, decode_posterior
from raphe.streamer.publisher import Publisher

from tests.helpers import assert_one_line_error, drain_service as drain, free_port_pair, live_service, run_raphe

POSTERIOR_KEYS = {"stream", "channel_num", "channel_name", "cell", "sample_num", "source_message_num", "n_spikes",
                  "novel", "n_novel", "spike_probabilities", "posterior", "decision", "reasons", "classes", "model",
                  "evidence", "waveform_posterior", "firing_posterior", "n_isi", "seconds_to_decision", "has_evidence",
                  "hints", "withdrawn"}
EVENT_KEYS = {"event_type", "stream", "source_node", "electrode", "num_channels", "sample_rate", "sample_number",
              "sorted_id", "spike_probabilities", "posterior", "decision"}


def collect(endpoint: str, into: list, stop: threading.Event) -> threading.Thread:
    """A raw SUB on ``endpoint`` appending every multipart message to ``into`` until ``stop``."""
    ready = threading.Event()

    def loop():
        ctx = zmq.Context()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(endpoint)
        ready.set()
        while not stop.is_set():
            if sock.poll(50):
                into.append(sock.recv_multipart())
        sock.close(0)
        ctx.term()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    ready.wait()
    return thread


def test_serve_gives_what_classify_gives_and_event_listener_receives_it(labelled_files, tmp_path):
    from open_ephys.streaming import EventListener

    data_port, out_port = free_port_pair(), free_port_pair()
    data, posterior_ep, events_ep = (f"tcp://127.0.0.1:{p}" for p in (data_port, out_port, out_port + 1))
    log = tmp_path / "serve.jsonl"
    server = subprocess.Popen([sys.executable, "-m", "raphe", "serve", "--connect", data, "--posterior-endpoint",
                               posterior_ep, "--events-endpoint", events_ep, "--idle", "3", "--json", "--log", log],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    messages, stop = [], threading.Event()
    spikes_heard = []
    listener = EventListener(port=out_port + 1)
    listening = threading.Thread(target=listener.start, kwargs={"spike_callback": spikes_heard.append}, daemon=True)
    try:
        collector = collect(posterior_ep, messages, stop)
        listening.start()
        time.sleep(1.5)  # subscribers joined before the first spike
        for path in labelled_files:
            sent = run_raphe("replay", path, "--endpoint", data, "--lossless", "--speed", "max")
            assert sent.returncode == 0, sent.stderr
        out, err = server.communicate(timeout=120)
    finally:
        server.kill()
        stop.set()
        listener.stop()
    collector.join(5)
    listening.join(5)
    listener.socket.close(0)
    listener.context.term()
    assert server.returncode == 0, err
    served = json.loads(out)

    offline = run_raphe("classify", *labelled_files, "--json")
    assert offline.returncode == 0, offline.stderr
    by_cell = {row["cell"]: row for row in map(json.loads, offline.stdout.splitlines())}
    assert len(by_cell) == len(labelled_files) == len(served["cells"])
    for cell in served["cells"]:
        row = by_cell[cell["cell"]]
        assert cell["n_spikes"] == row["n_spikes"] > 0
        assert cell["decision"] == row["decision"] and cell["spikes_to_decision"] == row["spikes_to_decision"]
        assert cell["n_novel"] == row["n_novel"] and cell["reasons"] == row["reasons"]
        assert cell["evidence"] == row["evidence"] and cell["n_isi"] == row["n_isi"]
        assert cell["seconds_to_decision"] == pytest.approx(row["seconds_to_decision"])
        for name, p in row["posterior"].items():
            assert cell["posterior"][name] == pytest.approx(p, rel=1e-5, abs=1e-9)
            for part in ("waveform", "firing", "joint"):
                assert cell["parts"][part][name] == pytest.approx(row["parts"][part][name], rel=1e-5, abs=1e-9)

    headers = [decode_posterior(m) for m in messages]
    assert len(headers) == served["spikes"] == sum(c["n_spikes"] for c in served["cells"])
    model = Model()
    for path in labelled_files:
        recording = Recording(path)
        cells = classify_recording(recording, recording.channels, model, DetectorConfig(window=model.window),
                                   model.posterior_config(), keep_history=True).cells
        mine = [h["content"] for h in headers if h["content"]["stream"] == recording.name]
        assert [c["sample_num"] for c in mine] == [s for s, _ in cells[0].history]
        deciding = cells[0].posterior.deciding
        for key, part in (("posterior", deciding), ("waveform_posterior", "waveform"), ("firing_posterior", "firing")):
            np.testing.assert_allclose([c[key] for c in mine], [p[part] for _, p in cells[0].history],
                                       rtol=1e-5, atol=1e-9)
    for h in headers:
        assert h["type"] == "posterior" and h["schema_version"] == 3 and isinstance(h["timestamp"], int)
        content = h["content"]
        assert POSTERIOR_KEYS <= set(content)
        assert content["classes"] == ["SER", "NSER"] and sum(content["posterior"]) == pytest.approx(1.0)
        assert len(content["spike_probabilities"]) == 2 and content["model"]["sha256"] == model.checksum
        assert content["decision"] in ("SER", "NSER", "undecided", "not classifiable")
        assert isinstance(content["novel"], bool) and content["n_novel"] <= content["n_spikes"]
    assert [h["message_num"] for h in headers] == list(range(1, len(headers) + 1))

    assert len(spikes_heard) == len(headers)
    assert all(EVENT_KEYS <= set(e) and e["event_type"] == "spike" for e in spikes_heard)
    assert [e["sample_number"] for e in spikes_heard] == [h["content"]["sample_num"] for h in headers]

    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(r["kind"] == "spike" for r in logged) == len(headers)
    assert sum(r["kind"] == "summary" for r in logged) == len(labelled_files)
    assert set(served["timings"]) == {"receive", "detect", "classify", "interpreter", "novelty", "cells", "publish"}


@pytest.fixture
def live():
    with live_service() as pair:
        yield pair


def spiking_trace(seconds: float, rate: float, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cell = synthetic.draw_cell(synthetic.NSER, rng)
    return synthetic.synth_trace(cell, synthetic.draw_day("t", rng), seconds, rate, rng)[0]


def send(pub: Publisher, trace: np.ndarray, rate: float, start: int = 0, block: int = 400, stream: str = "rig"):
    for offset in range(0, len(trace), block):
        pub.send_data(stream, 0, "A", start + offset, rate, trace[offset:offset + block], "pA")


def test_nan_samples_are_counted_and_the_cell_goes_on(live):
    pub, service = live
    trace = spiking_trace(4.0, 40_000.0)
    config = service.detector_config
    clean = Detector(1, 40_000.0, config).process(trace[np.newaxis], 0)
    assert len(clean) > 20
    # NaN inside the post-crossing part of the 4th and 11th spikes' windows: those two windows
    # cannot be emitted, every other spike must be
    for k in (3, 10):
        s = int(clean.records["sample_num"][k])
        trace[s + 20:s + 30] = np.nan
    offline = Detector(1, 40_000.0, config)
    expected = offline.process(trace[np.newaxis], 0)
    send(pub, trace, 40_000.0)
    drain(service)
    channel = service.channels[("rig", 0)]
    assert channel.rows.detector.dropped(channel.row)["non-finite"] == offline.dropped(0)["non-finite"] == 2
    assert channel.cell.n_spikes == len(expected) == len(clean) - 2
    assert channel.rows.dropped(channel.row) == sum(offline.dropped(0).values())
    assert np.isfinite(channel.cell.posterior.posterior).all()


def test_a_new_sample_rate_starts_the_cell_afresh(live):
    pub, service = live
    send(pub, spiking_trace(3.0, 40_000.0), 40_000.0)
    drain(service)
    cell = service.channels[("rig", 0)].cell
    before = cell.n_spikes
    assert before > 5 and cell.acquisition == 1
    short = spiking_trace(0.5, 20_000.0, seed=4)
    send(pub, short, 20_000.0, start=200_000)
    drain(service)
    assert cell.acquisition == 2 and cell.sample_rate == 20_000.0
    assert cell.n_spikes < before and cell.samples == len(short)


def test_malformed_and_legacy_messages_are_counted_and_skipped(live):
    pub, service = live
    legacy = json.dumps({"message_no": 1, "type": "data", "content": {"n_channels": 1}}).encode()
    pub.send_frames([b"DATA", legacy, bytes(4)])
    pub.send_frames([b"DATA\x00", b"{not json", bytes(4)])
    send(pub, spiking_trace(2.0, 40_000.0), 40_000.0)
    drain(service)
    assert service.subscriber.stats.malformed["legacy"] == 1 and service.subscriber.stats.malformed["json"] == 1
    assert service.channels[("rig", 0)].cell.n_spikes > 0


def test_the_summary_for_programs_carries_the_stream_counters_and_each_cells_losses(live):
    """What `serve --json` prints and the log's last records hold: messages, lost samples, malformed
    by kind, acquisitions, and per cell its gaps, lost samples and dropped windows."""
    pub, service = live
    trace = spiking_trace(2.0, 40_000.0)
    send(pub, trace[:40_000], 40_000.0)
    send(pub, trace[44_000:], 40_000.0, start=44_000)  # 4,000 samples never sent
    pub.send_frames([b"DATA\x00", b"{not json", bytes(4)])
    drain(service)
    summary = service.summary(2.0)
    counters, cell = summary["counters"], summary["cells"][-1]
    assert cell["cell"] == "rig:0" and (cell["gaps"], cell["lost_samples"]) == (1, 4_000)
    assert cell["dropped_windows"] == service.channels[("rig", 0)].rows.dropped(service.channels[("rig", 0)].row)
    assert counters["lost_samples"] == 4_000 and counters["malformed"] == {"json": 1}
    assert counters["messages"] == service.subscriber.stats.messages and counters["acquisitions"] >= 1
    assert json.loads(json.dumps(summary)) == summary


def test_the_live_table_keeps_every_word_whole_in_80_columns(live):
    """Cell names, posteriors and decisions, "not classifiable" among them, are never cut."""
    pub, service = live
    send(pub, spiking_trace(3.0, 40_000.0), 40_000.0, stream="demo-rig")
    for offset in range(0, 40_000, 400):  # a voltage channel: not classifiable
        pub.send_data("demo-rig", 1, "Vm", offset, 40_000.0, np.full(400, -65.0, np.float32), "mV")
    drain(service)
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(service.table(3.0, "raphe serve tcp://127.0.0.1:5556"))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "demo-rig:0" in text and "demo-rig:1" in text and "not classifiable" in text
    assert service.channels[("demo-rig", 0)].cell.state().top in text


@pytest.mark.parametrize("args, fragment", [
    (["classify", "x.abf", "--model", "nowhere.tflite"], "not a raphe model"),
    (["classify", "x.abf", "--decision-threshold", "1.5"], "threshold < 1"),
    (["classify", "x.abf", "--out", "/nonexistent/dir/cells.csv"], "does not exist"),
    (["serve", "--model", "nowhere.json"], "not a raphe model"),
    (["serve", "--threads", "0"], "--threads"),
    (["demo", "--report", "/nonexistent/dir/report.png"], "does not exist"),
])
def test_bad_options_give_one_line_and_exit_2(args, fragment):
    assert_one_line_error(run_raphe(*args), fragment)


def test_serve_refuses_an_output_port_in_use():
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    sock.bind("tcp://127.0.0.1:*")
    taken = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        assert_one_line_error(run_raphe("serve", "--posterior-endpoint", taken, "--duration", "1"), "already in use")
    finally:
        sock.close(0)
        ctx.term()


def test_batched_and_one_by_one_ingest_give_the_same_cells_and_outputs():
    """Two services on one stream of 6 channels (with a gap, a channel restarted by a new sample rate,
    and an acquisition restart): one handles each message on its own, the other drains in batches
    and detects a stream's blocks in one call. Every cell's spikes, posteriors and POSTERIOR
    messages must be the same, in the same order."""
    model = Model()
    traces = [spiking_trace(3.0, 40_000.0, seed=s) for s in range(6)]
    with Publisher("tcp://127.0.0.1:*", heartbeat=False, lossless=True) as pub, \
            Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*") as out_a, \
            Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*") as out_b:
        services = [Service(subscribe(pub.endpoint), model, model.posterior_config(), Sinks(out),
                            ServeOptions(keep_history=True, drain_limit=limit)) for out, limit in ((out_a, 1), (out_b, 8192))]
        heard = [[], []]
        stop = threading.Event()
        collectors = [collect(out.posterior_endpoint, into, stop) for out, into in zip((out_a, out_b), heard)]
        time.sleep(0.5)
        assert pub.wait_for_subscribers(2, timeout_s=10)

        def rig():
            for offset in range(0, 120_000, 400):
                for c, trace in enumerate(traces):
                    if c == 2 and 40_000 <= offset < 44_000:
                        continue  # channel 2 loses 0.1 s: a gap
                    rate = 20_000.0 if c == 4 and offset >= 80_000 else 40_000.0  # channel 4 changes rate
                    pub.send_data("rig", c, f"ch{c}", offset, rate, trace[offset:offset + 400], "pA")
            pub.new_acquisition()
            for offset in range(0, 40_000, 400):
                for c, trace in enumerate(traces[:3]):
                    pub.send_data("rig", c, f"ch{c}", offset, 40_000.0, trace[offset:offset + 400], "pA")

        sender = threading.Thread(target=rig)
        sender.start()
        while sender.is_alive() or any(s.step(100) for s in services):
            for s in services:
                s.step(5)
        sender.join()
        time.sleep(0.5)
        stop.set()
        for c in collectors:
            c.join(5)
        try:
            cells = [{key: ch.cell for key, ch in s.channels.items()} for s in services]
            assert set(cells[0]) == set(cells[1]) and len(cells[0]) == 6
            for key in cells[0]:
                a, b = cells[0][key], cells[1][key]
                assert a.state(final=True).as_dict() == b.state(final=True).as_dict()
                assert [s for s, _ in a.history] == [s for s, _ in b.history]
                for part in ("waveform", "firing", "joint"):
                    np.testing.assert_array_equal([p[part] for _, p in a.history], [p[part] for _, p in b.history])
            assert sum(c.n_spikes for c in cells[0].values()) > 50
            assert cells[0][("rig", 4)].acquisition >= 2 and cells[0][("rig", 0)].acquisition == 2
            contents = [[decode_posterior(m)["content"] for m in got] for got in heard]
            per_cell = [{}, {}]
            for k, got in enumerate(contents):
                for c in got:
                    per_cell[k].setdefault(c["cell"], []).append(c)
            assert per_cell[0] == per_cell[1] and sum(map(len, per_cell[0].values())) == services[0].spikes
            assert services[1].timings.stages["detect"].n < services[0].timings.stages["detect"].n
        finally:
            for s in services:
                s.close()


def test_packed_blocks_give_what_open_ephys_messages_give():
    """The same 5 channels replayed as one packed BLOCK message per block and as Open Ephys DATA
    messages: every cell the same. A packed message whose payload does not match its header is
    counted as malformed."""
    from raphe.replay.player import replay
    from raphe.replay.recording import Channel as RecordingChannel
    from raphe.replay.recording import Recording as InMemory
    from raphe.streamer.protocol import encode_block

    model = Model()
    rig = InMemory.from_traces("probe", 40_000.0, [RecordingChannel(c, f"ch{c}", "pA") for c in range(5)],
                               [spiking_trace(2.0, 40_000.0, seed=10 + c) for c in range(5)])
    cells = []
    for packed in (False, True):
        with Publisher("tcp://127.0.0.1:*", heartbeat=False, lossless=True) as pub, \
                Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*") as outputs:
            service = Service(subscribe(pub.endpoint), model, model.posterior_config(), Sinks(outputs),
                              ServeOptions(keep_history=True))
            assert pub.wait_for_subscribers(1, timeout_s=10)
            if packed:  # sent before the replay starts: a ZeroMQ socket is not to be shared by two threads
                bad = encode_block(10**6, "probe", 0, 40_000.0, np.zeros((2, 10), np.float32))
                pub.send_frames(bad[:2] + [bad[2][:-4]])
            sender = threading.Thread(target=replay, args=(rig, pub), kwargs={"speed": float("inf"), "packed": packed})
            sender.start()
            while sender.is_alive() or service.step(300):
                service.step(5)
            sender.join()
            try:
                cells.append({key: (c.cell.state(final=True).as_dict(), c.cell.history)
                              for key, c in service.channels.items()})
                if packed:
                    assert service.subscriber.stats.malformed["payload_size"] == 1
                    assert service.subscriber.stats.data_messages == 200  # 2 s in 10 ms blocks
            finally:
                service.close()
    assert set(cells[0]) == set(cells[1]) and len(cells[0]) == 5
    for key in cells[0]:
        (a, history_a), (b, history_b) = cells[0][key], cells[1][key]
        assert a == b and a["n_spikes"] > 0
        assert [s for s, _ in history_a] == [s for s, _ in history_b]


def test_a_wide_stream_is_served_by_the_wide_model_and_ends_as_classify_ends_it_with_that_model():
    """A service with a wide model (here the shipped cascade) for streams of more than 2 channels: the
    one-channel stream's spikes go to the service's model, the three-channel stream's to the wide
    one, even those of its first channel's first second, handled before any other channel of it
    had come (they wait until the stream's width is known); each POSTERIOR message names its model,
    the choice is logged, and every cell ends as `classify_recording` ends it with the model its
    stream was given."""
    from raphe.replay.recording import Channel as RecordingChannel
    from raphe.replay.recording import Recording as InMemory

    ensemble, cascade = Model("ensemble"), load("cascade")
    traces = [spiking_trace(3.0, 40_000.0, seed=s) for s in range(4)]
    streams = {"narrow": traces[:1], "wide": traces[1:]}
    log = []

    class Log:
        def write(self, record: bytes) -> None:
            log.append(json.loads(record))

    heard: list = []
    stop = threading.Event()
    with Publisher("tcp://127.0.0.1:*", heartbeat=False, lossless=True) as pub, \
            Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*") as outputs:
        service = Service(subscribe(pub.endpoint), ensemble, ensemble.posterior_config(), Sinks(outputs, Log()),
                          ServeOptions(wide_channels=2), wide_model=cascade)
        collector = collect(outputs.posterior_endpoint, heard, stop)
        try:
            assert pub.wait_for_subscribers(1, timeout_s=10)
            time.sleep(0.3)
            first = 40_000
            pub.send_data("wide", 0, "ch0", 0, 40_000.0, traces[1][:first], "pA")
            drain(service)
            assert service.spikes == 0 and len(service._waiting) > 0  # its spikes wait for the stream's width
            for offset in range(0, len(traces[0]), 400):
                for stream, chosen in streams.items():
                    for c, trace in enumerate(chosen):
                        if stream == "wide" and c == 0 and offset < first:
                            continue
                        pub.send_data(stream, c, f"ch{c}", offset, 40_000.0, trace[offset:offset + 400], "pA")
            drain(service)
            service.finish()
            time.sleep(0.5)
        finally:
            stop.set()
            collector.join(5)
            service.close()
    names = {m.checksum: m for m in (ensemble, cascade)}
    used = {}
    for message in heard:
        content = decode_posterior(message)["content"]
        used.setdefault(content["stream"], set()).add(content["model"]["sha256"])
    assert used == {"narrow": {ensemble.checksum}, "wide": {cascade.checksum}}
    assert [(r["stream"], r["channels"], r["model"]["sha256"]) for r in log if r["kind"] == "model"] == \
        [("wide", 3, cascade.checksum)]
    # the cascade answered every spike of the wide stream and no other, and says how many it handed on
    wide_spikes = sum(service.channels[("wide", c)].cell.n_spikes for c in range(3))
    counted = [r["cascade"] for r in log if r["kind"] == "counters"]
    assert counted == [service.counters()["cascade"]] and counted[0]["windows"] == wide_spikes
    assert 0 <= counted[0]["handed_on"] <= counted[0]["windows"]
    config = DetectorConfig(window=ensemble.window)
    for stream, chosen in streams.items():
        model = names[next(iter(used[stream]))]
        recording = InMemory.from_traces(stream, 40_000.0,
                                         [RecordingChannel(c, f"ch{c}", "pA") for c in range(len(chosen))], chosen)
        offline = classify_recording(recording, recording.channels, model, config, ensemble.posterior_config())
        for c, state in enumerate(offline.states):
            live = service.channels[(stream, c)].cell.state(final=True)
            assert live.n_spikes == state.n_spikes > 0
            np.testing.assert_allclose(live.posterior, state.posterior, atol=1e-6)
            assert live.decision == state.decision
