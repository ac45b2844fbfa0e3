"""The house plan holds: imports run one way (commands -> pipelines -> components -> ground), no
module or folder imports another in a loop, and importing a part loads only what that part uses."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import REPO

HEAVY = ("zmq", "pyabf", "matplotlib", "rich", "tensorflow", "keras", "numba", "ai_edge_litert")

# Each module's room, and the rooms each room may import (besides itself).
ALLOWED = {
    "core": set(),
    "detector": {"core"},
    "streamer": {"core"},
    "replay": {"core", "streamer"},
    "classifier.runtime": {"core"},
    "classifier.evaluation": {"core", "classifier.runtime"},
    "classifier.training": {"core", "detector", "classifier.runtime", "classifier.evaluation"},
    "classifier.synthetic": {"core", "detector", "replay", "classifier.runtime"},
    "outputs": {"core", "detector", "streamer", "replay", "classifier.runtime"},
    "pipelines": {"core", "detector", "streamer", "replay", "classifier.runtime", "classifier.synthetic", "outputs"},
    "cli": {"core", "detector", "streamer", "replay", "classifier.runtime", "classifier.training",
            "classifier.evaluation", "classifier.synthetic", "pipelines", "outputs"},
    # the Python API: a room of its own beside the commands, which only the package itself opens
    "api": {"core", "detector", "replay", "classifier.runtime", "pipelines", "outputs"},
}


def source_modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name, from pyproject's package-dir."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules = {}
    for package, folder in config["package-dir"].items():
        for path in (REPO / folder).rglob("*.py"):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            # a sub-folder mapped on its own (raphe.streamer = streamer/) is read from its own folder
            modules.setdefault(name, path)
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The raphe modules ``name`` imports, anywhere in its body (a function-level import still ties it)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return {t for t in found if not name.startswith(t + ".")}  # a module's own package is not an import


def room(name: str) -> str:
    parts = name.split(".")
    if parts[1] == "__main__":
        return "cli"
    return ".".join(parts[1:3]) if parts[1] == "classifier" and len(parts) > 2 else parts[1]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = source_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_another_in_a_loop(graph):
    assert cycles(graph) == []


def test_no_folder_imports_another_in_a_loop(graph):
    rooms: dict[str, set[str]] = {}
    for name, targets in graph.items():
        if name == "raphe":
            continue
        rooms.setdefault(room(name), set()).update(room(t) for t in targets if t != "raphe")
    for r in rooms:
        rooms[r].discard(r)
    assert cycles(rooms) == []


def test_imports_run_one_way(graph):
    wrong = []
    for name, targets in graph.items():
        if name == "raphe":
            continue
        for target in targets:
            if target == "raphe" or room(target) == room(name):
                continue
            if room(target) not in ALLOWED[room(name)]:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_tensorflow_is_imported_by_training_alone():
    modules = source_modules()
    users = set()
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] in ("tensorflow", "keras") for n in names):
                users.add(name)
    assert users and all(room(u) == "classifier.training" for u in users), users


@pytest.mark.parametrize("module, forbidden", [
    ("raphe", HEAVY + ("numpy",)),
    ("raphe.classifier.runtime.posterior", ("zmq", "pyabf", "matplotlib", "rich", "tensorflow", "numba",
                                            "ai_edge_litert")),
    ("raphe.streamer.protocol", ("zmq", "pyabf", "matplotlib", "rich", "tensorflow", "numba", "ai_edge_litert")),
    ("raphe.detector.online", ("zmq", "pyabf", "matplotlib", "rich", "tensorflow", "ai_edge_litert")),
    ("raphe.cli", ("zmq", "pyabf", "matplotlib", "tensorflow", "numba", "ai_edge_litert")),
])
def test_importing_a_part_loads_only_what_it_uses(module, forbidden):
    code = f"import sys, {module}\nprint(' '.join(m for m in {forbidden!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def test_only_the_package_opens_the_api(graph):
    assert {name for name, targets in graph.items() if "raphe.api" in targets} == {"raphe"}


def test_the_public_api_loads_on_first_use():
    code = ("import sys, raphe\nprint('raphe.api' in sys.modules, *(getattr(raphe, name).__module__ "
            "for name in raphe.__all__))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "raphe.api", "raphe.classifier.runtime.model", "raphe.core.errors",
                                     "raphe.replay.recording", "raphe.api", "raphe.api", "raphe.api",
                                     "raphe.api"], result.stderr
