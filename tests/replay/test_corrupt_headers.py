"""A corrupt header never hangs raphe, never exhausts memory, never gives a traceback: one line and
exit code 2, and `classify` over a folder still reaches every good file."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import ABF_DIR, assert_one_line_error, run_raphe

OPEN = ("import sys\nfrom raphe.core.errors import RapheError\nfrom raphe.replay.recording import Recording\n"
        "try:\n    r = Recording(sys.argv[1])\n    print('read', r.total_samples)\n"
        "except RapheError as exc:\n    print('refused', exc)\n")


def patched(source, tmp_path, name: str, offset: int, fmt: str, value: int):
    data = bytearray(source.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("command", ["info", "classify", "detect", "replay"])
def test_an_abf2_data_section_of_2_to_the_40_entries_is_one_line(abf_dir, tmp_path, command):
    path = patched(abf_dir / "19114000.abf", tmp_path, "huge.abf", 76 + 16 * 10 + 8, "<q", 2**40)
    extra = ["--out", tmp_path / "s.csv"] if command == "detect" else []
    assert_one_line_error(run_raphe(command, path, *extra, timeout=60), "past the end of the file")


@pytest.mark.parametrize("command", ["info", "classify", "detect", "replay"])
def test_an_abf1_of_2_to_the_31_sweeps_is_one_line_not_a_hang(abf_dir, tmp_path, command):
    path = patched(abf_dir / "f1.abf", tmp_path, "episodes.abf", 16, "<i", 2**31 - 1)
    extra = ["--out", tmp_path / "s.csv"] if command == "detect" else []
    assert_one_line_error(run_raphe(command, path, *extra, timeout=60), "sweeps for")  # a hang times out


def test_classify_over_a_folder_reaches_every_good_file(abf_dir, tmp_path):
    folder = tmp_path / "archive"
    folder.mkdir()
    patched(abf_dir / "19114000.abf", folder, "a-huge.abf", 76 + 16 * 10 + 8, "<q", 2**40)
    patched(abf_dir / "f1.abf", folder, "b-episodes.abf", 16, "<i", 2**31 - 1)
    (folder / "c-good.abf").write_bytes((abf_dir / "pclamp11_4ch.abf").read_bytes())
    result = run_raphe("classify", folder, "--json", timeout=120)
    assert result.returncode == 1  # some files of many failed
    assert {json.loads(line)["stream"] for line in result.stdout.splitlines()} == {"c-good"}
    assert sum("truncated or corrupt" in line for line in result.stderr.splitlines()) == 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=st.sampled_from(["19114000.abf", "f1.abf", "18425108_abf1.abf", "pclamp11_4ch.abf"]),
       offset=st.integers(0, 1023), value=st.integers(-2**31, 2**31 - 1),
       cut=st.one_of(st.none(), st.floats(0.05, 1.0)))
def test_a_randomly_damaged_header_is_read_or_refused_in_bounded_time(tmp_path, source, offset, value, cut):
    """Any 4 bytes of the first kilobyte set to anything, and the file maybe cut short."""
    if not ABF_DIR.is_dir():
        pytest.skip("real recordings not found")
    data = bytearray((ABF_DIR / source).read_bytes())
    if offset >= 4:  # the signature is what makes it an ABF file at all
        struct.pack_into("<i", data, offset, value)
    if cut is not None:
        data = data[:max(512, int(len(data) * cut))]
    path = tmp_path / "damaged.abf"
    path.write_bytes(bytes(data))
    result = subprocess.run([sys.executable, "-c", OPEN, str(path)], capture_output=True, text=True,
                            timeout=60)  # a hang times out and fails
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(result.stdout.strip().splitlines()) == 1
