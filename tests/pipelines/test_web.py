"""`serve --web`: the live browser view, over real HTTP, fed by a real replay, read by a real Chromium."""

from __future__ import annotations

import json
import math
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from raphe.core.errors import RapheError
from raphe.replay.player import replay
from raphe.replay.recording import Recording
from raphe.outputs.web import QUEUE, WebView
from tests.helpers import (REPO, assert_one_line_error, drain_service, free_port_pair, live_service, run_raphe,
                           unavailable)

SCREENSHOT = REPO / "build" / "web-view.png"


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_the_page_and_its_files_are_served_and_nothing_else():
    web = WebView("127.0.0.1:0")
    try:
        status, page = get(web.url)
        assert status == 200 and b"/static/view.js" in page
        for name in ("view.js", "view.css", "uPlot.iife.min.js", "uPlot.min.css"):
            assert get(web.url + "static/" + name)[0] == 200, name
        for path in ("static/../web.py", "static/%2e%2e/web.py", "static/nothing.js", "web.py", "static/"):
            assert get(web.url + path)[0] == 404, path
        web.publish({"header": {"n": 1}, "cells": [], "details": {}})
        status, body = get(web.url + "snapshot")
        assert status == 200 and json.loads(body)["header"] == {"n": 1}
    finally:
        web.close()


def test_a_port_in_use_is_one_line_and_exit_code_2():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(RapheError, match="cannot listen"):
            WebView(f"127.0.0.1:{port}")
        result = run_raphe("serve", "--connect", "tcp://127.0.0.1:1", "--web", f"127.0.0.1:{port}", "--duration", "1")
        assert_one_line_error(result, f"--web cannot listen on 127.0.0.1:{port}")
        assert_one_line_error(run_raphe("serve", "--web", "localhost:http", "--duration", "1"), "--web wants HOST:PORT")
    finally:
        holder.close()


def test_a_browser_that_never_reads_never_slows_the_service():
    """A connected page that reads nothing: publish returns at once, its queue stays bounded, and a
    page that reads gets the newest snapshot."""
    web = WebView("127.0.0.1:0")
    stuck = socket.create_connection(("127.0.0.1", int(web.url.rsplit(":", 1)[1].strip("/"))))
    try:
        stuck.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read a byte
        deadline = time.monotonic() + 10
        while web.browsers == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert web.browsers == 1
        big = {"header": {}, "cells": [{"cell": f"c{i}", "pad": "x" * 1000} for i in range(1000)], "details": {}}
        publisher = threading.Thread(target=lambda: [web.publish({**big, "header": {"k": k}}) for k in range(300)])
        publisher.start()
        publisher.join(timeout=20)
        assert not publisher.is_alive(), "publish waited on a browser that does not read"
        assert all(b.queue.qsize() <= QUEUE for b in web._browsers)
        assert json.loads(get(web.url + "snapshot")[1])["header"] == {"k": 299}
    finally:
        stuck.close()
        web.close()


def test_snapshots_describe_every_cell_as_the_service_has_it(labelled_files):
    from raphe.outputs.snapshot import DEFAULT_DETAILS, LiveView

    web = WebView("127.0.0.1:0")
    try:
        with live_service() as (pub, service):
            view = LiveView(service, web, "test")
            for path in labelled_files:
                sender = threading.Thread(target=replay, args=(Recording(path), pub),
                                          kwargs={"block_ms": 10.0, "speed": math.inf})
                sender.start()
                while sender.is_alive():
                    service.step(20)
                    view.tick(0.0, final=True)  # a snapshot at every step: the history fills
                sender.join()
            drain_service(service)
            snapshot = view.snapshot(1.0)
            cells = {c.cell.id: c.cell for c in service.channels.values()}
            rows = {r["cell"]: r for r in snapshot["cells"]}
            assert set(rows) == set(cells) and len(cells) >= len(labelled_files)
            for ident, cell in cells.items():
                row = rows[ident]
                assert row["decision"] == cell.decision and row["spikes"] == cell.n_spikes
                assert row["posterior"] == pytest.approx(cell.posterior.posterior.tolist(), abs=1e-4)
            assert len(snapshot["details"]) == min(len(cells), DEFAULT_DETAILS)
            header = snapshot["header"]
            assert header["counters"] == service.counters() and header["spikes"] == service.spikes > 0
            assert snapshot["details"]["probe:0"]["mean_window"] is None  # the handshake's channel: no spike
            spiking = {i: d for i, d in snapshot["details"].items() if cells[i].n_spikes}
            assert len(spiking) == len(labelled_files)
            for ident, detail in spiking.items():
                cell = cells[ident]
                assert len(detail["mean_window"]) == len(header["window_ms"]) == service.model.n_points
                assert set(detail["class_means"]) == set(service.model.classes)
                assert sum(detail["isi_counts"]) == detail["n_isi"] == min(cell.train.n_isi, 256)
                history = detail["history"]
                assert len(history["recorded_s"]) == len(history["joint"]) > 1
                assert history["joint"][-1] == pytest.approx(float(cell.posterior.parts["joint"][0]), abs=1e-9)
                assert history["recorded_s"] == sorted(history["recorded_s"])
    finally:
        web.close()


def chromium():
    """A headless Chromium driven by Selenium, or a reason there is none (a failure under CI)."""
    reason = None
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        reason = "no chromium / chromedriver (Debian packages chromium, chromium-driver: `make test` installs them)"
    else:
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError:
            reason = "selenium is not installed (pip install -e '.[dev]')"
    if reason is not None:
        unavailable(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1100"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"the page never showed {what}")


def test_a_headless_chromium_reads_the_live_page_during_a_replay(labelled_files, tmp_path):
    """serve --web fed by raphe replay; the page's cells and decisions are read from its DOM, a
    screenshot is saved, the page says when the stream stops, and its decisions are serve's."""
    from selenium.webdriver.common.by import By

    browser = chromium()
    data_port = free_port_pair()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        web_port = probe.getsockname()[1]
    serve = subprocess.Popen([sys.executable, "-m", "raphe", "serve", "--connect", f"tcp://127.0.0.1:{data_port}",
                              "--posterior-endpoint", "tcp://127.0.0.1:*", "--events-endpoint", "tcp://127.0.0.1:*",
                              "--web", f"127.0.0.1:{web_port}", "--duration", "120", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{web_port}/"
        wait_for(lambda: get_or_none(url), 60, "the page (serve never listened)")
        browser.get(url)
        wait_for(lambda: "waiting" in browser.find_element(By.ID, "status").text, 30, "'waiting for data'")
        replayed = subprocess.run([sys.executable, "-m", "raphe", "replay", str(labelled_files[0]), "--endpoint",
                                   f"tcp://127.0.0.1:{data_port}", "--speed", "4"], capture_output=True, text=True,
                                  timeout=120)
        assert replayed.returncode == 0, replayed.stderr
        rows = wait_for(lambda: decided_rows(browser), 30, "a decided cell")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(SCREENSHOT))
        assert browser.find_elements(By.CSS_SELECTOR, ".card[data-cell] canvas"), "no plot drawn"
        assert browser.find_element(By.ID, "messages").text not in ("", "-", "0")
        wait_for(lambda: "stream lost" in browser.find_element(By.ID, "status").text, 30, "'stream lost'")
        serve.send_signal(signal.SIGTERM)
        out, err = serve.communicate(timeout=60)
        assert serve.returncode == 0, err
        final = json.loads(out)
        served = {c["cell"]: c["decision"] for c in final["cells"]}
        wait_for(lambda: "stopped" in browser.find_element(By.ID, "status").text
                 or "lost" in browser.find_element(By.ID, "status").text, 30, "the service stopped")
        shown = table_rows(browser)
        assert shown == served and set(rows) <= set(served)
        assert browser.find_element(By.ID, "messages").text.replace(",", "") == str(final["counters"]["messages"])
    finally:
        browser.quit()
        if serve.poll() is None:
            serve.kill()
            serve.communicate()


def get_or_none(url: str):
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def table_rows(browser) -> dict[str, str]:
    """Each row's cell and decision as the page shows them, read in one script: the page redraws
    its rows as updates arrive, so a row found by one WebDriver call may be gone by the next."""
    return dict(browser.execute_script(
        "return Array.from(document.querySelectorAll('#cells tr[data-cell]'), "
        "tr => [tr.dataset.cell, tr.querySelector('td.decision').innerText.trim()]);"))


def decided_rows(browser) -> dict[str, str]:
    return {cell: d for cell, d in table_rows(browser).items() if d in ("SER", "NSER")}
