"""Headless Chromium driven over the DevTools protocol: open a page, see what a person sees.

Used by the report page's browser test and to take the screenshots in models/README.md. Needs a
Chromium binary and the `websockets` package (the dev extra).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# What the page shows, read in the page: each image and whether it loaded, the section headings,
# and the page's width (wider than the window means sideways scrolling).
PAGE_FACTS = (
    "JSON.stringify({"
    "images: [...document.images]"
    ".map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),"
    "headings: [...document.querySelectorAll('h2')].map(h => h.textContent),"
    "width: document.documentElement.scrollWidth})"
)


def find_browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


class Page:
    """One browser page: DevTools calls, and the events that arrived meanwhile."""

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

    def open(self, path: Path) -> dict:
        """Load a file and wait for its load event; return `PAGE_FACTS`."""
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(json.loads(self.socket.recv(timeout=120)))
        return json.loads(self.call("Runtime.evaluate", expression=PAGE_FACTS)["result"]["value"])

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads since the page was opened."""
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

    def screenshot(self) -> bytes:
        """The whole page as PNG (beyond the window's height)."""
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(shot["data"])

    def pdf(self) -> bytes:
        """The page as printed."""
        return base64.b64decode(self.call("Page.printToPDF", printBackground=True)["data"])


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Page]:
    """A headless Chromium with one page of `width` x `height` pixels, closed on exit."""
    from websockets.sync.client import connect

    browser = find_browser()
    if browser is None:
        raise FileNotFoundError(f"no Chromium on this machine (looked for {', '.join(BROWSERS)})")
    profile = Path(tempfile.mkdtemp(prefix="chromium-"))
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    flags += ["--remote-debugging-port=0", f"--user-data-dir={profile}"]
    flags += [f"--window-size={width},{height}", "--hide-scrollbars"]
    process = subprocess.Popen(
        [browser, *flags, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 120  # a bound on a hang, not a timing assertion
        while not port_file.exists() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as socket:
            yield Page(socket)
    finally:
        process.terminate()
        process.wait(timeout=60)
        shutil.rmtree(profile, ignore_errors=True)
