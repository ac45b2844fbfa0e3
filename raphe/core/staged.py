"""Output files that appear whole or not at all: written under a temporary name, renamed when done;
and output paths checked before any work is done for them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from raphe.core.errors import RapheError


def check_writable(path: str | Path) -> Path:
    """Refuse, before any work is done for it, an output file that could not be written: its folder
    missing, a folder of that name, a folder where no file can be made (read-only, ``/proc``)."""
    target = Path(path)
    if not target.parent.is_dir():
        raise RapheError(f"cannot write {target}: folder {target.parent} does not exist")
    if target.is_dir():
        raise RapheError(f"cannot write {target}: it is a folder; name a file")
    probe(target.parent, f"cannot write {target}")
    return target


def check_folder(folder: str | Path, what: str) -> Path:
    """Make, before any work is done for it, the folder for ``what``; refuse one that cannot be
    made or where no file can be made."""
    path = Path(folder)
    if not path.parent.is_dir():
        raise RapheError(f"{folder}: its folder {path.parent} does not exist")
    if path.exists() and not path.is_dir():
        raise RapheError(f"{folder}: is a file, not a folder for {what}")
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise RapheError(f"cannot make {folder} for {what}: {exc.strerror or exc}") from None
    probe(path, f"cannot write {what} in {folder}")
    return path


def probe(folder: Path, failure: str) -> None:
    """Make and remove a file in ``folder``: the one test of writing there that permissions, mount
    options and pseudo-filesystems (``/proc``) all answer truthfully."""
    trial = folder / f".raphe-probe-{os.getpid()}"
    try:
        trial.touch(exist_ok=False)
        trial.unlink()
    except OSError as exc:
        raise RapheError(f"{failure}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def staged(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; it replaces ``path`` once the block ends
    without an error, so an interrupted write never leaves a half-written file under the real name.
    If the block raises, the temporary file is removed and ``path`` is left as it was; a failure to
    write (disk full, the folder gone) is one line (:class:`RapheError`) naming ``path``."""
    target = check_writable(path)
    # the file's own suffix last: writers that judge a file by it (pynwb, numpy) take the partial too
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    try:
        yield partial
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise RapheError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
