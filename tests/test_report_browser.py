"""The report page in a real browser: headless Chromium, driven over the DevTools protocol.

It opens the report of a bundled model from a file and checks what a person would see: no console
errors, every image loaded, every section heading. A screenshot and a printed PDF are saved as
test artifacts (`$TEST_ARTIFACTS`, default build/test-artifacts/). Skipped, with the reason, where
Chromium or the `websockets` package is missing (`.ci/run` installs Chromium where it can).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_irl import RewardModel
from langchain_irl.data.converters import caption_contest
from langchain_irl.evaluation.html_report import HEADINGS, write_report
from tests.conftest import CAPTIONS, ROOT

BROWSER = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine")
sync_client = pytest.importorskip("websockets.sync.client", reason="needs websockets (dev extra)")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))


class DevTools:
    """One page of a headless Chromium, driven over the DevTools protocol."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.events: list[dict] = []
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict:
        self._next_id += 1
        self.socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=120))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self.socket.recv(timeout=120)))

    def errors(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"]))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(str(params.get("args")))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found


@pytest.fixture(scope="module")
def browser() -> Iterator[DevTools]:
    assert BROWSER is not None
    profile = Path(tempfile.mkdtemp(prefix="chromium-"))
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    flags += ["--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1280,900"]
    process = subprocess.Popen(
        [BROWSER, *flags, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 120  # a bound on a hang, not a timing assertion
        while not port_file.exists() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        with sync_client.connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as socket:
            yield DevTools(socket)
    finally:
        process.terminate()
        process.wait(timeout=60)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    demos, samples = caption_contest(
        CAPTIONS, top=10, sample_chunks=["middle"], contests={641, 645}
    )
    with RewardModel.load("caption-humor") as model:
        return write_report(
            model, tmp_path_factory.mktemp("report"), demos, samples, attributed=20, probed=60
        )


def test_the_report_opens_in_a_browser_without_errors(browser: DevTools, report: Path) -> None:
    for domain in ("Page", "Runtime", "Log"):
        browser.call(f"{domain}.enable")
    browser.call("Page.navigate", url=report.as_uri())
    browser.wait_for("Page.loadEventFired")
    page = json.loads(
        browser.call(
            "Runtime.evaluate",
            expression="JSON.stringify({"
            "images: [...document.images].map(i => [i.getAttribute('src'),"
            " i.complete && i.naturalWidth > 0]),"
            "headings: [...document.querySelectorAll('h2')].map(h => h.textContent),"
            "width: document.documentElement.scrollWidth})",
        )["result"]["value"]
    )
    assert browser.errors() == []
    assert len(page["images"]) >= 3 and all(loaded for _, loaded in page["images"]), page
    assert page["headings"] == list(HEADINGS)
    assert page["width"] <= 1280  # nothing wider than a laptop screen: no sideways scrolling
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    (ARTIFACTS / "report-caption-humor.png").write_bytes(base64.b64decode(shot["data"]))
    printed = browser.call("Page.printToPDF", printBackground=True)
    pdf = base64.b64decode(printed["data"])
    assert pdf.startswith(b"%PDF")
    (ARTIFACTS / "report-caption-humor.pdf").write_bytes(pdf)
