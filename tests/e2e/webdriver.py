"""A minimal W3C WebDriver client for Debian's chromedriver (no Selenium, nothing downloaded)."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Browser:
    """Headless Chromium driven through chromedriver's HTTP API."""

    def __init__(self) -> None:
        driver = shutil.which("chromedriver")
        if driver is None or not Path(CHROMIUM).exists():
            raise RuntimeError("Chromium is missing: `make test` installs chromium and "
                               "chromium-driver from Debian")
        self.port = _free_port()
        self._proc = subprocess.Popen([driver, f"--port={self.port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._call("GET", "/status")["value"]["ready"]:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self._proc.kill()
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1100,800", "--lang=zh-CN"]}}}}
        self.session = self._call("POST", "/session", caps)["value"]["sessionId"]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read().decode("utf-8"))

    def _s(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)["value"]

    def open(self, url: str) -> None:
        """Navigate and wait for the page's load event."""
        self._s("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        """The element id of the first match."""
        return str(self._s("POST", "/element", {"using": "css selector", "value": css})[ELEMENT])

    def type(self, css: str, text: str) -> None:
        """Type into an input."""
        self._s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        """Click an element."""
        self._s("POST", f"/element/{self.find(css)}/click", {})

    def run(self, script: str, *args: Any) -> Any:
        """Run JavaScript in the page and return its result."""
        return self._s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def seen(self, css: str) -> str:
        """The text a person sees in the first match: "" when it is missing or not rendered."""
        return str(self.run(
            "const e = document.querySelector(arguments[0]);"
            "return e && e.getClientRects().length && e.checkVisibility() ? e.innerText : '';",
            css))

    def value(self, css: str) -> str:
        """The current value of an input."""
        return str(self.run("return document.querySelector(arguments[0]).value;", css))

    def fill(self, css: str, text: str) -> None:
        """Put text into an input at once, as pasting does (typing 5000 characters is slow)."""
        self.run("const e = document.querySelector(arguments[0]); e.focus();"
                 "e.value = arguments[1];"
                 "e.dispatchEvent(new Event('input', {bubbles: true}));", css, text)

    def choose(self, select_css: str, value: str) -> None:
        """Pick an option of a <select> by its value, as a click on it does."""
        self.click(f"{select_css} option[value='{value}']")

    def resize(self, width: int, height: int) -> None:
        """Resize the window (a phone's screen, a desk's)."""
        self._s("POST", "/window/rect", {"width": width, "height": height})

    def refresh(self) -> None:
        """Reload the page (the profile, and so localStorage, stays)."""
        self._s("POST", "/refresh", {})

    def screenshot(self, path: Path) -> None:
        """Save a PNG of the page."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._s("GET", "/screenshot")))

    def close(self) -> None:
        """End the session and chromedriver."""
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self._proc.terminate()
            self._proc.wait(timeout=10)
