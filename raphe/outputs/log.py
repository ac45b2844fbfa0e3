"""The service's JSON-lines log, written by a thread of its own so that the live path never waits on
the disk. Records are queued whole and every one queued before ``close()`` reaches the file, on a
normal stop as on SIGINT or SIGTERM (the loop ends and the service closes its log)."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import orjson

_STOP = None


def record(kind: str, fields: dict) -> bytes:
    """One log record: the wall-clock time, its kind (``start``, ``model``, ``summary``, ``counters``), its fields."""
    return orjson.dumps({"time": round(time.time(), 6), "kind": kind, **fields},
                        option=orjson.OPT_SERIALIZE_NUMPY)


def spike_record(content: bytes) -> bytes:
    """The ``spike`` record of an update whose POSTERIOR content is already serialized (a JSON object)."""
    return b'{"time":' + repr(round(time.time(), 6)).encode() + b',"kind":"spike",' + content[1:]


class RecordLog:
    """Appends queued records (bytes, one JSON object each) to ``path``, one per line.

    Parameters
    ----------
    path : the log file, opened for appending (a missing folder is the caller's to refuse).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = self.path.open("ab")
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.written = 0
        self._thread = threading.Thread(target=self._write, name="raphe-log", daemon=True)
        self._thread.start()

    def write(self, record: bytes) -> None:
        """Queue one record (without its newline); returns at once."""
        self._queue.put(record)

    def _write(self) -> None:
        while True:
            lines = [self._queue.get()]
            while not self._queue.empty():
                lines.append(self._queue.get())
            done = lines[-1] is _STOP
            records = [line for line in lines if line is not _STOP]
            if records:
                self._file.write(b"\n".join(records) + b"\n")
                self._file.flush()
                self.written += len(records)
            if done:
                return

    def close(self) -> None:
        """Write everything queued, then close the file."""
        self._queue.put(_STOP)
        self._thread.join()
        self._file.close()

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
