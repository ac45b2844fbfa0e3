"""The command line, run as a user runs it: a subprocess, real files, real sockets."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

from raphe.replay.recording import Recording
from raphe.streamer.publisher import Publisher
from tests.helpers import assert_one_line_error, free_port_pair, run_raphe


def test_info_describes_a_recording(abf_dir):
    result = run_raphe("info", "--json", abf_dir / "f1.abf")
    assert result.returncode == 0
    info = json.loads(result.stdout)
    assert info["abf_version"] == "1.8.3.0" and info["mode"] == "episodic"
    assert [c["units"] for c in info["channels"]] == ["pA", "pA", "mV", "mV"]
    assert info["sweeps"] == 10 and info["samples_per_channel"] == 500_000
    assert info["recorded_on"] == "2018-08-31"  # the header's date, as pyabf reads it
    text = run_raphe("info", abf_dir / "2020_06_16_0000.abf")
    assert text.returncode == 0 and "event-driven" in text.stdout and "recorded on 2020-06-16" in text.stdout
    undated = json.loads(run_raphe("info", "--json", abf_dir / "130618-1-12.abf").stdout)
    assert undated["recorded_on"] is None  # its header's date field reads as the year 1806


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "not abf", "directory"])
def test_bad_files_give_one_line_and_exit_2(case, tmp_path, abf_dir):
    path = tmp_path / "x.abf"
    fragment = {"missing": "no such file", "empty": "empty file", "truncated": "truncated or corrupt",
                "not abf": "not an ABF file", "directory": "not a file"}[case]
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        path.write_bytes((abf_dir / "19114000.abf").read_bytes()[:1_500_000])
    elif case == "not abf":
        path.write_text("time,current\n0,1\n")
    elif case == "directory":
        path.mkdir()
    for command in ("info", "replay"):
        assert_one_line_error(run_raphe(command, path), fragment)


@pytest.mark.parametrize("args, fragment", [
    (["--channels", "7"], "no channel '7'"),
    (["--channels", "nope"], "no channel 'nope'"),
    (["--speed", "0"], "speed must be > 0 or 'max' (got 0)"),
    (["--speed", "-2"], "speed must be > 0 or 'max' (got -2)"),
    (["--speed", "fast"], "speed must be > 0 or 'max' (got fast)"),
    (["--speed", "inf"], "speed must be > 0 or 'max' (got inf)"),
    (["--block-ms", "0"], "expected a number > 0"),
])
def test_bad_replay_options_give_one_line_and_exit_2(abf_dir, args, fragment):
    assert_one_line_error(run_raphe("replay", abf_dir / "18425108.abf", *args), fragment)


def test_port_in_use_gives_one_line_and_exit_2(abf_dir):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    sock.bind("tcp://127.0.0.1:*")
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        assert_one_line_error(run_raphe("replay", abf_dir / "18425108.abf", "--endpoint", endpoint), "already in use")
    finally:
        sock.close(0)
        ctx.term()


def test_replay_and_listen_end_to_end(abf_dir, tmp_path):
    path = abf_dir / "pclamp11_4ch_abf1.abf"
    rec = Recording(path)
    port = free_port_pair()
    endpoint = f"tcp://127.0.0.1:{port}"
    listener = subprocess.Popen([sys.executable, "-m", "raphe", "listen", "--connect", endpoint, "--idle", "2",
                                 "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sender = run_raphe("replay", path, "--endpoint", endpoint, "--lossless", "--speed", "max", "--block-ms", "3")
        assert sender.returncode == 0, sender.stderr
        out, err = listener.communicate(timeout=60)
    finally:
        listener.kill()
    assert listener.returncode == 0, err
    summary = json.loads(out)
    assert summary["lost_messages"] == 0 and summary["malformed"] == {}
    channels = sorted(summary["channels"], key=lambda c: c["channel_num"])
    assert [c["samples"] for c in channels] == [rec.total_samples] * 4
    # ten sweeps, each after a pause: nine jumps of the sample counter per channel
    assert [c["gaps"] for c in channels] == [len(rec.sweeps) - 1] * 4
    assert all(c["units"] == "pA" and c["sample_rate"] == 20000.0 for c in channels)


def test_serve_json_counters_equal_listen_counters_on_the_same_stream(abf_dir):
    """listen and serve subscribed to one publisher: a recording of ten sweeps, malformed messages of
    three kinds, a skipped message_num (one lost message) and a new acquisition. Both count alike."""
    rec = Recording(abf_dir / "pclamp11_4ch_abf1.abf")
    common = ["--idle", "3", "--json"]
    with Publisher("tcp://127.0.0.1:*", heartbeat=False, lossless=True) as pub:
        listener = subprocess.Popen([sys.executable, "-m", "raphe", "listen", "--connect", pub.endpoint, *common],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        server = subprocess.Popen([sys.executable, "-m", "raphe", "serve", "--connect", pub.endpoint,
                                   "--posterior-endpoint", "tcp://127.0.0.1:*", "--events-endpoint",
                                   "tcp://127.0.0.1:*", *common], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            assert pub.wait_for_subscribers(2, timeout_s=60)
            from raphe.replay.player import replay
            from raphe.streamer.protocol import encode_data

            replay(rec, pub, block_ms=5.0, speed=float("inf"))
            for frames in ([b"DATA\x00", b"{not json", b""], [b"NOPE\x00", b"{}", b""], [b"DATA\x00"]):
                pub.send_frames(frames)
            block = np.zeros(100, np.float32)
            pub.send_frames(encode_data(pub.message_num + 2, "other", 0, "A", 0, 1000.0, block))  # one lost
            pub.send_frames(encode_data(1, "other", 0, "A", 0, 1000.0, block))  # a new acquisition
            heard = json.loads(listener.communicate(timeout=120)[0])
            served = json.loads(server.communicate(timeout=120)[0])
        finally:
            listener.kill()
            server.kill()
    counters = served["counters"]
    for key in ("messages", "data_messages", "lost_messages", "lost_samples", "duplicates", "acquisitions", "events",
                "malformed"):
        assert counters[key] == heard[key], key
    assert heard["lost_messages"] == 1 and sorted(heard["malformed"]) == ["envelope", "frames", "json"]
    assert heard["acquisitions"] == 2 and heard["data_messages"] > 1000  # the first, and the restart
    gaps = {(c["stream"], c["channel_num"]): (c["gaps"], c["lost_samples"]) for c in heard["channels"]}
    assert {(c["stream"], c["channel_num"]): (c["gaps"], c["lost_samples"]) for c in served["cells"]} == gaps


def test_listen_refuses_legacy_messages_with_a_clear_line_and_keeps_going():
    with Publisher("tcp://127.0.0.1:*", heartbeat=False) as pub:
        listener = subprocess.Popen([sys.executable, "-m", "raphe", "listen", "--connect", pub.endpoint,
                                     "--duration", "4", "--json"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        legacy = json.dumps({"message_no": 1, "type": "data", "content": {"n_channels": 1}}).encode()
        deadline = time.monotonic() + 60
        sent = 0
        while listener.poll() is None and time.monotonic() < deadline:  # until listen's 4 s are over
            pub.send_frames([b"DATA", legacy, bytes(4)])
            pub.send_data("rig", 0, "A", sent * 4, 1000.0, np.zeros(4, np.float32))
            sent += 1
            time.sleep(0.01)
        out, err = listener.communicate(timeout=30)
    assert listener.returncode == 0
    summary = json.loads(out)
    assert summary["malformed"]["legacy"] > 0 and summary["channels"][0]["samples"] > 0
    assert err.count("GUI 0.4/0.5") == 1


def test_detect_writes_csv_and_windows(abf_dir, tmp_path):
    out, windows = tmp_path / "spikes.csv", tmp_path / "windows.npz"
    result = run_raphe("detect", abf_dir / "2019_07_24_0055_fsi.abf", "--polarity", "pos", "--absolute",
                       "--threshold", "0", "--out", out, "--windows", windows)
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "channel_num,channel_name,sample_num,time_s,threshold,amplitude"
    rows = [line.split(",") for line in lines[1:]]
    assert 900 < len(rows) < 1000  # the file's README counts about 948 evoked APs
    assert all(r[1] == "IN 0" and float(r[4]) == 0.0 and float(r[5]) > 0 for r in rows)
    saved = np.load(windows)
    assert saved["X"].shape == (len(rows), 160)
    assert saved["sample_num"].tolist() == [int(r[2]) for r in rows]
    np.testing.assert_allclose(saved["X"].max(axis=1), [float(r[5]) for r in rows], rtol=1e-5)


def test_detect_fixed_and_adaptive_on_a_current_recording(abf_dir, tmp_path):
    # File_axon_1 holds ~138 upward transients of 42-53 pA on a quiet baseline (its README).
    out = tmp_path / "s.csv"
    path = abf_dir / "File_axon_1.abf"
    assert run_raphe("detect", path, "--polarity", "pos", "--absolute", "--threshold", "20",
                     "--out", out).returncode == 0
    assert len(out.read_text().splitlines()) - 1 == 138
    # from the baseline (+1.6 pA) rather than from zero: the same transients
    assert run_raphe("detect", path, "--polarity", "pos", "--threshold", "20", "--out", out).returncode == 0
    assert len(out.read_text().splitlines()) - 1 == 138
    assert run_raphe("detect", path, "--polarity", "pos", "--adaptive", "50", "--out", out).returncode == 0
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    # No estimate exists during the first 50 ms noise segment, so a transient there may be missed.
    assert 130 <= len(rows) <= 145  # the recording's README counts "about 138"
    assert all(float(r[5]) > float(r[4]) > 5 for r in rows)  # peaks beyond thresholds well above noise
    assert len({r[4] for r in rows}) > 1  # the threshold in force is reported per event


@pytest.mark.parametrize("args, fragment", [
    (["--out", "/no/such/folder/s.csv"], "does not exist"),
    (["--out", "s.csv", "--adaptive", "0"], "expected a number > 0"),
    (["--out", "s.csv", "--absolute", "--adaptive", "5"], "not allowed with argument"),
    (["--out", "s.csv", "--threshold", "20"], "must lie below it"),
    (["--out", "s.csv", "--polarity", "up"], "invalid choice"),
    (["--out", "s.csv", "--channels", "9"], "no channel '9'"),
    (["--out", "s.csv", "--refractory-ms", "-1"], "refractory period must be >= 0"),
])
def test_bad_detect_options_give_one_line_and_exit_2(abf_dir, tmp_path, args, fragment):
    assert_one_line_error(run_raphe("detect", abf_dir / "18425108.abf", *args, cwd=tmp_path), fragment)
