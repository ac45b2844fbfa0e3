"""One validation of a recording's header, whatever command opens it (issue 23, item 2): a sample rate
outside 100 Hz..1 MHz, a scaling beyond a float32, a reason-less pyabf error are one line naming the
file and exit code 2; `classify` over a folder reports the bad file and goes on with the others."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from raphe.replay.recording import Recording, RecordingError
from tests.helpers import assert_one_line_error, run_raphe

SOURCE = "pclamp11_4ch.abf"  # ABF2, int16 samples, 20 kHz


def section(data: bytes, index: int) -> tuple[int, int]:
    """(first byte, bytes per entry) of the ABF2 section ``index`` of the section map at byte 76."""
    block, entry_bytes, _ = struct.unpack_from("<IIq", data, 76 + 16 * index)
    return block * 512, entry_bytes


def with_interval(abf_dir: Path, folder: Path, name: str, interval_us: float) -> Path:
    """A copy whose fADCSequenceInterval (protocol section, byte 2; pyabf's ProtocolSection) is set."""
    data = bytearray((abf_dir / SOURCE).read_bytes())
    start, _ = section(data, 0)
    struct.pack_into("<f", data, start + 2, interval_us)
    path = folder / name
    path.write_bytes(bytes(data))
    return path


def with_tiny_scale_factors(abf_dir: Path, folder: Path) -> Path:
    """A copy whose first ADC entry has fInstrumentScaleFactor (byte 40) and fSignalGain (byte 48)
    of 1e-38: pyabf divides by both, scaling int16 samples by about 1e72."""
    data = bytearray((abf_dir / SOURCE).read_bytes())
    start, _ = section(data, 1)
    struct.pack_into("<f", data, start + 40, 1e-38)
    struct.pack_into("<f", data, start + 48, 1e-38)
    path = folder / "scaled.abf"
    path.write_bytes(bytes(data))
    return path


def command(name: str, path: Path, tmp_path: Path) -> list:
    extra = {"detect": ["--out", tmp_path / "s.csv"], "replay": ["--endpoint", "tcp://127.0.0.1:*"]}
    return [name, path, *extra.get(name, [])]


@pytest.mark.parametrize("interval_us", [1e-30, -50.0], ids=["1e-30 us", "negative"])
@pytest.mark.parametrize("name", ["info", "classify", "detect", "replay"])
def test_a_sample_rate_out_of_range_is_one_line_naming_the_file(abf_dir, tmp_path, name, interval_us):
    path = with_interval(abf_dir, tmp_path, "rate.abf", interval_us)
    result = run_raphe(*command(name, path, tmp_path), timeout=60)
    assert_one_line_error(result, f"{path}: the header's sample rate")


def test_classify_of_a_folder_reports_the_bad_rate_and_classifies_the_others(abf_dir, tmp_path):
    folder = tmp_path / "archive"
    folder.mkdir()
    with_interval(abf_dir, folder, "a-tiny-interval.abf", 1e-30)
    (folder / "b-good.abf").write_bytes((abf_dir / SOURCE).read_bytes())
    result = run_raphe("classify", folder, "--json", timeout=120)
    assert result.returncode == 1, result.stderr  # some files of many failed
    assert {json.loads(line)["stream"] for line in result.stdout.splitlines()} == {"b-good"}
    assert sum("a-tiny-interval.abf: the header's sample rate" in line for line in result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_scaling_beyond_float32_is_refused_without_a_numpy_warning(abf_dir, tmp_path):
    path = with_tiny_scale_factors(abf_dir, tmp_path)
    result = run_raphe("info", path, timeout=60)
    assert_one_line_error(result, f"{path}: corrupt ABF header (channel 0 is scaled by")
    assert "RuntimeWarning" not in result.stderr


def test_a_pyabf_error_without_a_message_names_its_type(abf_dir, tmp_path):
    """Bytes 15..18 of this ABF2 header set to -1 make pyabf raise a MemoryError, whose text is
    empty: the reason is its type, never an empty pair of parentheses."""
    data = bytearray((abf_dir / SOURCE).read_bytes())
    struct.pack_into("<i", data, 15, -1)
    path = tmp_path / "memory.abf"
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError) as caught:
        Recording(path)
    assert str(caught.value) == f"{path}: truncated or corrupt ABF file (MemoryError)"


def test_every_real_recording_passes_the_validation(abf_path):
    recording = Recording(abf_path)
    assert 100 <= recording.sample_rate <= 1e6
