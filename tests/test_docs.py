"""The documentation: README.md as the entry page, the site built strictly from docs/ (mkdocs.yml), and
every `raphe ...` command line in its pages checked against the real command-line parser.

A command line inside a fenced block (```sh, ``` or ```text) is an example: its subcommand must exist,
`raphe SUBCOMMAND --help` must exit 0, every option it uses must be one its subcommand's parser knows,
and, unless it is a synopsis (`[--option]`, `A|B`, `PATH...`), the whole line must parse. Parsing runs
no command and opens no file, so placeholders such as FILE.abf or tcp://RIG:5556 are fine. An inline
`raphe SUBCOMMAND --option` in the text is checked for its subcommand and options.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raphe.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 300
# the pages of the site: docs/, and the files outside it that docs/hooks.py makes pages of
PAGES = sorted([ROOT / "README.md", ROOT / "ARCHITECTURE.md", *(ROOT / "docs").glob("**/*.md"),
                *(ROOT / "classifier" / "default").glob("*.md")])

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`(raphe [^`]+)`")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
SYNOPSIS = re.compile(r"[\[\]|]|\.\.\.|…")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


SUBCOMMANDS = _subcommands()


def _fenced_command_lines(text: str) -> list[str]:
    """Every `raphe ...` line of the fenced blocks, with its continuation lines (`\\` at the end, or an
    indented synopsis line) joined to it and `# comments` dropped."""
    commands: list[list[str]] = []
    for match in FENCE.finditer(text):
        if match[1] not in ("", "sh", "shell", "bash", "console", "text"):
            continue
        current = None
        for line in match[2].splitlines():
            stripped = line.split(" #", 1)[0].strip()
            if stripped.startswith("raphe "):
                current = [stripped]
                commands.append(current)
            elif current is not None and line[:1].isspace() and stripped:
                current.append(stripped)
            else:
                current = None
    return [" ".join(part.rstrip("\\").strip() for part in parts) for parts in commands]


def _without_fences(text: str) -> str:
    return FENCE.sub("", text)


def _examples():
    for page in PAGES:
        text = page.read_text()
        name = page.relative_to(ROOT).as_posix()
        for command in _fenced_command_lines(text):
            yield pytest.param(command, True, id=f"{name}: {command[:60]}")
        for span in INLINE.findall(_without_fences(text)):
            command = " ".join(span.split())
            yield pytest.param(command, False, id=f"{name}: `{command[:60]}`")


EXAMPLES = list(_examples())


def test_the_pages_hold_command_lines_to_check():
    fenced = [p for p in EXAMPLES if p.values[1]]
    assert len(fenced) >= 40, "the command reference's synopsis alone holds more: is the page there?"


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            return int(exc.code or 0), err.getvalue() + out.getvalue()
    return 0, ""


@pytest.mark.parametrize("command, fenced", EXAMPLES)
def test_a_documented_command_line_is_one_raphe_accepts(command, fenced):
    subcommand = command.split()[1]
    if subcommand.startswith("--"):  # `raphe --version`: the command's own options
        code, message = _parse(build_parser(), command.split()[1:])
        assert code == 0, f"{command!r} does not parse: {message.strip()}"
        return
    if subcommand == "SUBCOMMAND":  # `raphe SUBCOMMAND --help`: what every subcommand takes
        for parser in SUBCOMMANDS.values():
            unknown = [opt for opt in OPTION.findall(command) if opt not in parser._option_string_actions]
            assert not unknown, f"{command!r}: raphe {parser.prog} has no option {', '.join(unknown)}"
        return
    assert subcommand in SUBCOMMANDS, f"{command!r}: raphe has no subcommand {subcommand!r}"
    parser = SUBCOMMANDS[subcommand]
    known = parser._option_string_actions
    unknown = [opt for opt in OPTION.findall(command[len("raphe ") + len(subcommand):]) if opt not in known]
    assert not unknown, f"{command!r}: raphe {subcommand} has no option {', '.join(unknown)}"
    if fenced and not SYNOPSIS.search(command):
        code, message = _parse(build_parser(), shlex.split(command, comments=True)[1:])
        assert code == 0, f"{command!r} does not parse: {message.strip()}"


@pytest.mark.parametrize("subcommand", sorted({p.values[0].split()[1] for p in EXAMPLES} & set(SUBCOMMANDS)))
def test_the_help_of_every_documented_subcommand_exits_0(subcommand):
    code, message = _parse(build_parser(), [subcommand, "--help"])
    assert code == 0, message


def test_the_readme_is_an_entry_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the rest belongs in docs/"


def test_the_site_has_every_page_of_its_nav_and_no_todo():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    assert config["strict"] == "true"

    def pages(nav):
        for item in nav:
            for value in item.values():
                yield from (pages(value) if isinstance(value, list) else [value])

    from_hooks = {"index.md", "architecture.md"} | {f"default-model/{p}" for p in
                                                     ("report.md", "matrix.md", "cross-generator.md", "compare.md",
                                                      "recipe.md")}
    listed = set(pages(config["nav"]))
    in_docs = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").glob("**/*.md")}
    assert listed - from_hooks == in_docs, "mkdocs.yml's nav and the pages in docs/ differ"
    for page in PAGES:
        assert not re.search(r"\bTODO\b|\bTBD\b|\bFIXME\b", page.read_text()), f"{page.name} carries a TODO"


def test_the_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`, as `make docs` runs it: a broken link, a missing anchor, a page outside the
    nav or a docstring mkdocstrings cannot render fails."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").is_file()
    assert "raphe.api" in (tmp_path / "site" / "python-api.html").read_text()
