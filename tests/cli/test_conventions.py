"""The command line's conventions: --version, a bare `raphe` shows what it can do, --out names a
file and --out-dir a folder in every command, and serve's standing options in a config file that
the command line overrides."""

from __future__ import annotations

import pytest

from raphe import __version__
from tests.helpers import assert_one_line_error, run_raphe


def test_version_and_a_bare_raphe():
    version = run_raphe("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"raphe {__version__}"
    bare = run_raphe()
    assert bare.returncode == 0 and "usage: raphe" in bare.stdout and "classify" in bare.stdout


@pytest.mark.parametrize("command", ["train", "synth", "distill", "evaluate", "matrix", "compare", "crossval",
                                     "bench"])
def test_a_folder_is_out_dir_in_every_command(command):
    help_text = run_raphe(command, "--help").stdout
    assert "--out-dir" in help_text and "--out " not in help_text
    refused = run_raphe(command, "data", "--model", "m=x", "--data", "d=y", "--out", "x")  # never read as --out-dir
    assert refused.returncode == 2 and "--out" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.parametrize("command", ["classify", "detect", "firing-model"])
def test_a_file_is_out_in_every_command(command):
    help_text = run_raphe(command, "--help").stdout
    assert "--out " in help_text and "--out-dir" not in help_text


def test_serve_takes_its_standing_options_from_a_config_file_and_the_command_line_wins(tmp_path):
    config = tmp_path / "rig.toml"
    config.write_text('connect = "tcp://127.0.0.1:5999"\nposterior-endpoint = "tcp://127.0.0.1:*"\n'
                      'events-endpoint = "tcp://127.0.0.1:*"\nunits = "pA"\nscale = 2000\nduration = 600\n')
    result = run_raphe("serve", "--config", config, "--duration", "0.5", "--json", timeout=60)
    assert result.returncode == 0, result.stderr  # 0.5 s, not the file's 600
    assert "serving tcp://127.0.0.1:5999" in result.stderr


@pytest.mark.parametrize("content, fragment", [("bogus = 1\n", "unrecognized arguments: --bogus"),
                                               ("connect = \n", "not a TOML file"),
                                               ("scale = { a = 1 }\n", "must be a string, a number")])
def test_a_bad_config_file_is_one_line(tmp_path, content, fragment):
    config = tmp_path / "rig.toml"
    config.write_text(content)
    assert_one_line_error(run_raphe("serve", "--config", config), fragment)
    assert_one_line_error(run_raphe("serve", "--config", tmp_path / "missing.toml"), "cannot read the config file")
