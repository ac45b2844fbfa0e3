"""No single message can stop the service, nothing accepted is lost, every drop is counted, and a
networked rig can authenticate: each fault found by the hardening campaign, reproduced."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raphe.classifier.synthetic import template as synthetic
from raphe.detector.online import Detector
from raphe.pipelines.live import STEP_SAMPLES
from raphe.outputs.log import RecordLog
from raphe.outputs.wire import Outputs, serialized
from raphe.streamer.protocol import encode_data
from raphe.streamer.publisher import Publisher
from raphe.streamer.security import Curve, make_keys
from raphe.streamer.subscriber import Subscriber
from tests.helpers import (PosteriorReader, assert_one_line_error, drain_service as drain, free_port_pair, handshake,
                           live_service, run_raphe, spike_update)


def spiking_trace(seconds: float, seed: int = 3, rate: float = 40_000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cell = synthetic.draw_cell(synthetic.NSER, rng)
    return synthetic.synth_trace(cell, synthetic.draw_day("t", rng), seconds, rate, rng)[0]


@pytest.fixture
def live():
    with live_service(max_cells=8) as pair:
        yield pair


def header_of(**content) -> bytes:
    base = {"stream": "rig", "channel_num": 0, "channel_name": "A", "num_samples": 4, "sample_num": 0,
            "sample_rate": 40000.0, **content}
    return json.dumps({"message_num": 5, "type": "data", "content": base, "data_size": 16,
                       "timestamp": 0}).encode()


def test_single_messages_that_stopped_serve_are_counted_and_skipped(live):
    """Faults 1-3: an integer of 5,000 digits, a header nested 100,000 deep, sample_num 2**64."""
    pub, service = live
    payload = bytes(16)
    pub.send_frames([b"DATA\x00", header_of().replace(b'"sample_num": 0', b'"sample_num": ' + b"9" * 5000), payload])
    pub.send_frames([b"DATA\x00", b"[" * 100_000 + b"]" * 100_000, payload])
    pub.send_frames([b"DATA\x00", header_of(sample_num=2**64), payload])
    pub.send_frames([b"DATA\x00", header_of(sample_num=2**62), payload])
    trace = spiking_trace(2.0)
    for offset in range(0, len(trace), 400):
        pub.send_data("rig", 1, "B", offset, 40_000.0, trace[offset:offset + 400], "pA")
    drain(service)
    malformed = service.subscriber.stats.malformed
    assert malformed["number_range"] == 2 and malformed["header_size"] == 1 and malformed["bad_value"] == 1
    assert service.channels[("rig", 1)].cell.n_spikes > 0  # the valid channel goes on


def test_a_stray_restart_on_another_stream_restarts_no_cell_of_this_one(live):
    """Fault 7."""
    pub, service = live
    trace = spiking_trace(2.0)
    for offset in range(0, 40_000, 400):
        pub.send_data("rig", 0, "A", offset, 40_000.0, trace[offset:offset + 400], "pA")
    drain(service)
    cell = service.channels[("rig", 0)].cell
    pub.send_frames(encode_data(1, "intruder", 0, "X", 0, 40_000.0, np.zeros(400, np.float32)))
    pub.send_frames(encode_data(pub.message_num, "rig", 0, "A", 39_600, 40_000.0, trace[39_600:40_000]))  # repeated
    for offset in range(40_000, len(trace), 400):
        pub.send_data("rig", 0, "A", offset, 40_000.0, trace[offset:offset + 400], "pA")
    drain(service)
    assert cell.acquisition == 1 and service.subscriber.stats.duplicates == 1
    assert service.subscriber.stats.lost_messages == 0


def test_a_huge_block_does_not_hold_the_other_channels(live):
    """Fault 9: a 10 MB block is handled a bounded piece per step; a normal channel's blocks sent
    after it are handled in the first step, before the huge block is through."""
    pub, service = live
    huge = np.tile(spiking_trace(5.0, seed=8), 13)[:2_600_000]  # 10.4 MB of float32
    normal = spiking_trace(1.0, seed=9)
    pub.send_data("rig", 0, "flood", 0, 40_000.0, huge, "pA")
    for offset in range(0, len(normal), 400):
        pub.send_data("rig", 1, "normal", offset, 40_000.0, normal[offset:offset + 400], "pA")
    time.sleep(0.5)
    assert service.step(1000)
    flood, steady = service.channels[("rig", 0)].cell, service.channels[("rig", 1)].cell
    assert flood.samples < len(huge) and steady.samples == len(normal) and steady.n_spikes > 0
    steps = 1
    while service.step(200):
        steps += 1
    assert flood.samples == len(huge) and steps >= len(huge) // STEP_SAMPLES


def test_what_is_still_queued_at_the_end_is_handled_not_dropped(live):
    """A huge block accepted just before serve stops (Ctrl-C, SIGTERM, --duration): finish()
    detects and classifies the rest of it before the summaries."""
    pub, service = live
    huge = np.tile(spiking_trace(5.0, seed=8), 4)[:800_000]
    pub.send_data("rig", 0, "flood", 0, 40_000.0, huge, "pA")
    time.sleep(0.3)
    assert service.step(1000)
    flood = service.channels[("rig", 0)].cell
    assert flood.samples < len(huge)
    service.finish()
    assert flood.samples == len(huge) and not service._backlog


def test_a_flood_of_new_streams_is_bounded(live):
    """Fault 10: every new stream costs memory; past the cap their blocks are counted and refused."""
    pub, service = live
    for k in range(20):
        pub.send_data(f"stream{k}", 0, "A", 0, 40_000.0, np.zeros(400, np.float32), "pA")
    drain(service)
    assert len(service.channels) == 8 and service.refused_blocks >= 12
    assert service.counters()["refused_blocks"] == service.refused_blocks


def test_an_idle_cell_is_summarised_in_the_log_and_forgotten(tmp_path):
    """Fault 10 (memory): a cell silent beyond --forget-after leaves the table, its summary in the
    log; a cell still sending stays; a forgotten cell that sends again is a new cell."""
    log = RecordLog(tmp_path / "cells.jsonl")
    with live_service(forget_after_s=1.0, log=log) as (pub, service):
        trace = spiking_trace(2.0)
        gone_trace = trace.copy()
        gone_trace[::500] = np.nan  # some of its windows cannot be emitted: drops the next cell must not inherit
        for offset in range(0, 40_000, 400):
            pub.send_data("rig", 0, "gone", offset, 40_000.0, gone_trace[offset:offset + 400], "pA")
        drain(service)
        spikes = service.channels[("rig", 0)].cell.n_spikes
        channel = service.channels[("rig", 0)]
        assert channel.rows.dropped(channel.row) > 0
        deadline = time.monotonic() + 10
        offset = 40_000
        while ("rig", 0) in service.channels and time.monotonic() < deadline:
            pub.send_data("rig", 1, "stays", offset, 40_000.0, trace[offset % 40_000:][:400], "pA")
            offset += 400
            service.step(50)
        assert ("rig", 0) not in service.channels and ("rig", 1) in service.channels
        assert service.counters()["forgotten_cells"] >= 1
        again = spiking_trace(1.0, seed=11)
        for k in range(0, 40_000, 400):  # rig:0 comes back: a new cell on the freed row, started afresh
            pub.send_data("rig", 0, "back", 40_000 + k, 40_000.0, again[k:k + 400], "pA")
        drain(service)
        back = service.channels[("rig", 0)]
        fresh = Detector(1, 40_000.0, service.detector_config)
        expected = fresh.process(again[np.newaxis], 40_000)
        assert back.cell.samples == len(again) and back.cell.n_spikes == len(expected) > 0
        assert back.rows.dropped(back.row) == sum(fresh.dropped(0).values())
    log.close()
    records = [json.loads(line) for line in (tmp_path / "cells.jsonl").read_text().splitlines()]
    gone = [r for r in records if r["kind"] == "summary" and r["cell"] == "rig:0"]
    assert gone[0]["forgotten_after_idle_s"] == 1.0 and gone[0]["n_spikes"] == spikes > 0


# One spike's update, as the service publishes it; its content does not matter to the sockets.
UPDATE = serialized(spike_update(sample_rate=40_000.0))


def slow_reader(endpoint: str) -> tuple[zmq.Context, zmq.Socket]:
    """A POSTERIOR subscriber with a queue of 10 messages, connected and given time to join."""
    ctx = zmq.Context()
    slow = ctx.socket(zmq.SUB)
    slow.setsockopt(zmq.SUBSCRIBE, b"")
    slow.setsockopt(zmq.RCVHWM, 10)
    slow.connect(endpoint)
    time.sleep(0.5)
    return ctx, slow


def test_a_slow_posterior_subscriber_is_counted_not_silent():
    """Fault 8: ZeroMQ's queue for a subscriber that does not read fills up; every message it could
    not take is counted; with lossless outputs, none is lost (the publisher waits)."""
    with Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", hwm=10) as outputs:
        ctx, slow = slow_reader(outputs.posterior_endpoint)
        for _ in range(5000):
            outputs.publish_serialized(*UPDATE)
        time.sleep(0.5)
        received = 0
        while slow.poll(100):
            slow.recv_multipart()
            received += 1
        slow.close(0)
        ctx.term()
    assert outputs.dropped["posterior"] > 0
    assert received + outputs.dropped["posterior"] == 5000


def test_lossless_outputs_wait_for_a_slow_subscriber_and_lose_nothing():
    """--lossless-outputs: the same slow reader, its queue as small, gets every message; none is dropped."""
    with Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", hwm=10, lossless=True) as outputs:
        ctx, slow = slow_reader(outputs.posterior_endpoint)
        received = []

        def read_slowly():
            while slow.poll(2000):
                slow.recv_multipart()
                received.append(1)
                if len(received) % 100 == 0:
                    time.sleep(0.01)

        reader = threading.Thread(target=read_slowly)
        reader.start()
        for _ in range(2000):
            outputs.publish_serialized(*UPDATE)
        reader.join(30)
        slow.close(0)
        ctx.term()
    assert outputs.dropped == {"posterior": 0, "events": 0} and len(received) == 2000


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_under_load_leaves_a_complete_log(tmp_path, signum):
    """Fault 6: SIGTERM (or SIGHUP) while a rig streams: every spike published is in the log, every
    cell's summary and the counters are written, the final table printed, exit 0."""
    data_port, out_port = free_port_pair(), free_port_pair()
    data, posterior = f"tcp://127.0.0.1:{data_port}", f"tcp://127.0.0.1:{out_port}"
    log = tmp_path / "serve.jsonl"
    server = subprocess.Popen([sys.executable, "-m", "raphe", "serve", "--connect", data, "--posterior-endpoint",
                               posterior, "--events-endpoint", f"tcp://127.0.0.1:{out_port + 1}", "--log", log,
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader = PosteriorReader(posterior)
    traces = [spiking_trace(20.0, seed=s) for s in range(8)]
    try:
        with Publisher(data, heartbeat=False) as pub:
            time.sleep(2.0)
            for k, offset in enumerate(range(0, 800_000, 400)):
                for c, trace in enumerate(traces):
                    pub.send_data("rig", c, f"ch{c}", offset, 40_000.0, trace[offset:offset + 400], "pA")
                if k == 600:
                    server.send_signal(signum)
                time.sleep(0.001)
                if server.poll() is not None:
                    break
            out, err = server.communicate(timeout=60)
    finally:
        server.kill()
        reader.stop()
    assert server.returncode == 0, err
    records = [json.loads(line) for line in log.read_text().splitlines()]
    spikes = [r for r in records if r["kind"] == "spike"]
    summaries = [r for r in records if r["kind"] == "summary"]
    counters = [r for r in records if r["kind"] == "counters"]
    served = json.loads(out)
    assert len(spikes) == served["spikes"] == len(reader.frames) > 0
    assert len(summaries) == len(served["cells"]) == 8 and len(counters) == 1
    assert sum(s["n_spikes"] for s in summaries) == len(spikes)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    for name in ("rig", "raphe", "client", "stranger"):
        make_keys(root / name, name)
    admitted = root / "admitted"
    admitted.mkdir()
    (admitted / "raphe.key").write_bytes((root / "raphe" / "raphe.key").read_bytes())
    clients = root / "clients"
    clients.mkdir()
    (clients / "client.key").write_bytes((root / "client" / "client.key").read_bytes())
    return root


def test_curve_on_the_data_input_admits_the_right_key_and_refuses_a_wrong_one_clearly(keys):
    """Fault 11, the rig's side: a rig serving CURVE; raphe with an admitted key receives, and a
    subscriber with a key the rig does not admit gets one clear line."""
    rig = Curve(keys / "rig" / "rig.key_secret", clients=keys / "admitted")
    with Publisher("tcp://127.0.0.1:*", heartbeat=False, curve=rig) as pub:
        good = Curve(keys / "raphe" / "raphe.key_secret", server_file=keys / "rig" / "rig.key")
        with Subscriber(pub.endpoint, heartbeat=False, curve=good) as sub:
            assert handshake(pub, sub) > 0
        bad = Curve(keys / "stranger" / "stranger.key_secret", server_file=keys / "rig" / "rig.key")
        with Subscriber(pub.endpoint, heartbeat=False, curve=bad) as sub:
            from raphe.streamer.publisher import EndpointError

            with pytest.raises(EndpointError, match="refused raphe's key"):
                for i in range(100):
                    pub.send_data("probe", 0, "p", i, 1000.0, np.zeros(1, np.float32))
                    assert sub.receive(timeout_ms=50) is None
    result = run_raphe("listen", "--connect", "tcp://127.0.0.1:9", "--rig-key", keys / "rig" / "rig.key",
                       "--duration", "1")
    assert_one_line_error(result, "--rig-key needs this side's key pair too")


def test_curve_on_the_outputs_admits_listed_clients_only(keys):
    """Fault 11, raphe's side: its outputs serve CURVE to the clients it lists."""
    raphe = Curve(keys / "raphe" / "raphe.key_secret", clients=keys / "clients")
    with Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", curve=raphe) as outputs:
        ctx = zmq.Context()
        got = {}
        for name in ("client", "stranger"):
            sub = ctx.socket(zmq.SUB)
            public, secret = Curve(keys / name / f"{name}.key_secret").keypair()
            sub.curve_secretkey, sub.curve_publickey = secret, public
            sub.curve_serverkey = Curve(keys / "raphe" / "raphe.key_secret").keypair()[0]
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(outputs.posterior_endpoint)
            got[name] = sub
        time.sleep(1.0)
        for _ in range(10):
            outputs.publish_serialized(*UPDATE)
        counts = {}
        for name, sub in got.items():
            counts[name] = 0
            while sub.poll(300):
                sub.recv_multipart()
                counts[name] += 1
            sub.close(0)
        ctx.term()
    assert counts == {"client": 10, "stranger": 0}


def test_binding_beyond_loopback_needs_curve_or_insecure(abf_dir):
    result = run_raphe("serve", "--posterior-endpoint", "tcp://0.0.0.0:*", "--duration", "1")
    assert_one_line_error(result, "reachable from the network")
    result = run_raphe("replay", abf_dir / "pclamp11_4ch.abf", "--endpoint", "tcp://0.0.0.0:*", "--speed", "max",
                       "--insecure")
    assert result.returncode == 0 and "without authentication" in result.stderr


frames_strategy = st.lists(st.binary(max_size=64), min_size=0, max_size=5)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(st.one_of(
    frames_strategy,
    st.builds(lambda h: [b"DATA\x00", h, bytes(16)], st.binary(max_size=200)),
    st.builds(lambda n, s, r: [b"DATA\x00", header_of(num_samples=n, sample_num=s, sample_rate=r), bytes(16)],
              st.integers(-3, 10), st.integers(-2**65, 2**65), st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(lambda h: [b"RAPHE_BLOCK\x00", h, bytes(32)], st.binary(max_size=200))), min_size=1, max_size=20))
def test_arbitrary_frames_never_stop_the_service(live, junk):
    pub, service = live
    before = service.subscriber.stats.messages
    for frames in junk:
        pub.send_frames(frames if frames else [b""])
    pub.send_data("rig", 7, "valid", 0, 40_000.0, np.zeros(400, np.float32), "pA")
    deadline = time.monotonic() + 10
    while service.subscriber.stats.messages < before + len(junk) + 1 and time.monotonic() < deadline:
        service.step(50)
    while service.step(20):
        pass
    assert service.subscriber.stats.messages == before + len(junk) + 1


def test_a_soak_of_100000_mixed_messages_through_serve(tmp_path):
    """100,000 messages, a third of them malformed in 6 ways, through a real socket to `raphe serve`:
    it never stops, counts every message and every malformed one by kind, and every spike of the
    valid channel is published."""
    data_port, out_port = free_port_pair(), free_port_pair()
    data, posterior = f"tcp://127.0.0.1:{data_port}", f"tcp://127.0.0.1:{out_port}"
    server = subprocess.Popen([sys.executable, "-m", "raphe", "serve", "--connect", data, "--posterior-endpoint",
                               posterior, "--events-endpoint", f"tcp://127.0.0.1:{out_port + 1}", "--idle", "3",
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader = PosteriorReader(posterior)
    trace = spiking_trace(45.0, seed=5)
    bad = [[b"DATA\x00", b"{not json", bytes(4)], [b"DATA\x00"], [b"NOPE\x00", b"{}", b""],
           [b"DATA\x00", header_of(sample_num=2**63), bytes(16)], [b"DATA\x00", b"[" * 2000 + b"]" * 2000, b""],
           [b"DATA\x00", header_of(), bytes(15)]]
    kinds = ["json", "frames", "envelope", "number_range", "too_deep", "payload_size"]
    sent = valid = 0
    try:
        with Publisher(data, heartbeat=False, lossless=True) as pub:
            assert pub.wait_for_subscribers(1, timeout_s=30)
            offset = 0
            while sent < 100_000:
                if sent % 3 == 2:
                    pub.send_frames(bad[(sent // 3) % len(bad)])
                else:
                    pub.send_data("rig", 0, "valid", offset, 40_000.0, trace[offset % (len(trace) - 400):][:200], "pA")
                    offset += 200
                    valid += 1
                sent += 1
            out, err = server.communicate(timeout=300)
    finally:
        server.kill()
        reader.stop()
    assert server.returncode == 0, err[-2000:]
    served = json.loads(out)
    counters = served["counters"]
    assert counters["messages"] == sent and counters["data_messages"] == valid
    expected = {kind: sum(1 for k in range(2, sent, 3) if kinds[(k // 3) % len(bad)] == kind) for kind in kinds}
    assert counters["malformed"] == expected
    assert len(reader.frames) == served["spikes"] == served["cells"][0]["n_spikes"] > 100
