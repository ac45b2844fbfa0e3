"""The live browser view's server (`raphe serve --web HOST:PORT`): the page's static files and a
stream of server-sent events, one JSON snapshot per event, from threads of its own.

Routes: ``/`` the page, ``/static/NAME`` its files (shipped in ``webpage/``, no build step),
``/events`` the snapshots (``?cells=A,B`` asks for the details of those cells), ``/snapshot`` the
latest snapshot as one JSON document (for programs and scripts).

The service hands ``publish`` a snapshot (plain values) a few times a second and never waits: each
browser has a queue of ``QUEUE`` snapshots, a browser that reads too slowly loses its oldest one,
and a vanished browser's thread ends at its next write. The server knows nothing of cells: a
snapshot is ``{"header": ..., "cells": [...], "details": {id: ...}, "default_details": [ids]}``,
and each browser gets the details it asked for (else ``default_details``).
"""

from __future__ import annotations

import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from raphe.core.errors import RapheError

PAGE = Path(__file__).parent / "webpage"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8"}
QUEUE = 4
# An SSE comment this often keeps proxies from closing an idle connection and finds vanished browsers.
KEEPALIVE_S = 5.0
# How long closing waits for the browsers to read what is queued for them (the final state).
CLOSE_WAIT_S = 1.0
# How long a connection may keep a request unsent, or a write unread, before it is closed: each
# connection holds a thread, and idle ones must not hold them forever.
IDLE_S = 10.0
# Cells a browser may ask details of at once: the page is for a glance, not for the whole probe.
MAX_ASKED = 64


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``PORT`` alone, on loopback) as a (host, port) pair; RapheError if malformed."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise RapheError(f"--web wants HOST:PORT, e.g. 127.0.0.1:8765 (got {text!r})")
    return host.strip("[]") or "127.0.0.1", number


class Browser:
    """One connected page: its queue of snapshots and the cells it asked about."""

    def __init__(self, cells: list[str] | None):
        self.queue: queue.Queue = queue.Queue(QUEUE)
        self.cells = cells

    def offer(self, snapshot: dict) -> None:
        """Queue ``snapshot``, dropping the oldest one if this browser has not read it yet."""
        while True:
            try:
                self.queue.put_nowait(snapshot)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    pass


def for_browser(snapshot: dict, cells: list[str] | None) -> bytes:
    """The snapshot as one browser sees it: every cell's row, the details of the cells it asked about."""
    wanted = snapshot.get("default_details", []) if cells is None else cells
    details = snapshot.get("details", {})
    return orjson.dumps({"header": snapshot.get("header", {}), "cells": snapshot.get("cells", []),
                         "details": {c: details[c] for c in wanted if c in details}})


class Server(ThreadingHTTPServer):
    """A thread per connection, none kept at exit; room for a lab's browsers connecting at once (the
    standard library's backlog of 5 makes the sixth wait for the kernel's retry, a second or more)."""

    daemon_threads = True
    request_queue_size = 128


class WebView:
    """The server, listening from construction until ``close()``.

    Parameters
    ----------
    address : ``HOST:PORT``; port 0 takes a free one (the bound one is in ``url`` afterwards).
    idle_s : how long a connection may send nothing of its request, or read nothing of what it is
        sent, before it is closed and its thread ends (default 10 s; an event stream waiting for
        the next snapshot is not idle).
    """

    def __init__(self, address: str = "127.0.0.1:8765", idle_s: float = IDLE_S):
        host, port = parse_address(address)
        self._lock = threading.Lock()
        self._browsers: list[Browser] = []
        self._latest: dict | None = None
        self._closing = threading.Event()
        view = self

        class Handler(BaseHTTPRequestHandler):
            timeout = idle_s  # on the connection's socket: a read or write blocked this long ends it

            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                view._answer(self)

            def log_message(self, format, *args) -> None:  # the terminal belongs to the live table
                pass

        try:
            self._server = Server((host, port), Handler)
        except OSError as exc:
            raise RapheError(f"--web cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host}:{bound_port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="raphe-web", daemon=True)
        self._thread.start()

    @property
    def browsers(self) -> int:
        with self._lock:
            return len(self._browsers)

    def asked(self) -> set[str]:
        """The cells any connected browser asked details of."""
        with self._lock:
            return {c for b in self._browsers if b.cells for c in b.cells}

    def publish(self, snapshot: dict) -> None:
        """Hand ``snapshot`` to every browser (never waits; see the module's text)."""
        with self._lock:
            self._latest = snapshot
            browsers = list(self._browsers)
        for browser in browsers:
            browser.offer(snapshot)

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        if url.path == "/events":
            self._events(request, parse_qs(url.query).get("cells", [""])[0])
        elif url.path == "/snapshot":
            with self._lock:
                latest = self._latest
            body = orjson.dumps(latest or {}, option=orjson.OPT_SERIALIZE_NUMPY)
            self._send(request, 200, "application/json", body)
        elif url.path in ("/", "/index.html"):
            self._file(request, "index.html")
        elif url.path.startswith("/static/"):
            self._file(request, url.path[len("/static/"):])
        else:
            self._send(request, 404, TYPES[".txt"], b"not found\n")

    def _file(self, request: BaseHTTPRequestHandler, name: str) -> None:
        path = PAGE / name
        # only the files shipped in webpage/ itself: no other folder, no path out of it
        if "/" in name or "\\" in name or path.suffix not in TYPES or not path.is_file():
            self._send(request, 404, TYPES[".txt"], b"not found\n")
            return
        self._send(request, 200, TYPES[path.suffix], path.read_bytes())

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
        try:
            request.send_response(status)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(body)))
            request.send_header("Cache-Control", "no-store")
            request.end_headers()
            request.wfile.write(body)
        except OSError:  # the browser went away mid-answer
            pass

    def _events(self, request: BaseHTTPRequestHandler, cells: str) -> None:
        asked = [c for c in cells.split(",") if c][:MAX_ASKED] or None
        browser = Browser(asked)
        with self._lock:
            self._browsers.append(browser)
            latest = self._latest
        if latest is not None:
            browser.offer(latest)
        try:
            request.send_response(200)
            request.send_header("Content-Type", "text/event-stream")
            request.send_header("Cache-Control", "no-store")
            request.end_headers()
            while not self._closing.is_set():
                try:
                    snapshot = browser.queue.get(timeout=KEEPALIVE_S)
                except queue.Empty:
                    request.wfile.write(b": keep-alive\n\n")
                    request.wfile.flush()
                    continue
                if snapshot is None:
                    break
                request.wfile.write(b"data: " + for_browser(snapshot, browser.cells) + b"\n\n")
                request.wfile.flush()
        except OSError:  # the browser disconnected: nothing to do but forget it
            pass
        finally:
            with self._lock:
                self._browsers.remove(browser)

    def close(self) -> None:
        """Stop listening and end every browser's stream (each page then shows the stream lost)."""
        self._closing.set()
        with self._lock:
            browsers = list(self._browsers)
        for browser in browsers:
            browser.offer(None)
        deadline = time.monotonic() + CLOSE_WAIT_S
        while self.browsers and time.monotonic() < deadline:  # let each page read the final state
            time.sleep(0.02)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
