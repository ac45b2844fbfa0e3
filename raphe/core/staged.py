"""Output files that appear whole or not at all: written under a temporary name, renamed when done."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from raphe.core.errors import RapheError


def check_writable(path: str | Path) -> Path:
    """Refuse an output path whose folder does not exist, before any work is done for it."""
    target = Path(path)
    if not target.parent.is_dir():
        raise RapheError(f"cannot write {target}: folder {target.parent} does not exist")
    return target


@contextlib.contextmanager
def staged(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; it replaces ``path`` once the block ends
    without an error, so an interrupted write never leaves a half-written file under the real name.
    If the block raises, the temporary file is removed and ``path`` is left as it was."""
    target = check_writable(path)
    # the file's own suffix last: writers that judge a file by it (pynwb, numpy) take the partial too
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
