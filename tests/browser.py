"""Open built book pages in headless Chromium (Debian's package) and report what a reader
sees: tables, images that loaded, MathJax's typeset formulas, requests that left the
machine, console errors; a full-page screenshot of each page.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so no extra library is
needed. The network is closed (a proxy that does not exist, every host name unresolvable):
a page that needs it shows an error or misses a resource.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,1600",
         "--remote-debugging-pipe"]

PAGE_STATE = r"""(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const imgs = [...document.querySelectorAll('main img, article img, .bd-article img')];
  const code = [...document.querySelectorAll('.cell_input, div.highlight')].filter(e => !e.closest('.cell_output'));
  code.forEach(e => { e.dataset.display = e.style.display; e.style.display = 'none'; });
  const prose = (document.querySelector('main') || document.body).innerText;
  code.forEach(e => { e.style.display = e.dataset.display; });
  return {
    title: document.title,
    tables: document.querySelectorAll('table').length,
    table_rows: document.querySelectorAll('table tbody tr').length,
    images: imgs.length,
    broken_images: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src')),
    math: document.querySelectorAll('mjx-container').length,
    mathjax_errors: document.querySelectorAll('mjx-merror').length,
    raw_math: (document.querySelector('main') || document.body).innerText.includes('$$'),
    remote: performance.getEntriesByType('resource').map(e => e.name).filter(n => /^https?:/.test(n)),
    // what a reader sees outside code (notebook inputs, code blocks): "nan" as a word (a
    // missing value printed instead of explained), and absolute paths of a machine (a POSIX
    // path under a usual top folder, or a Windows drive)
    nan_text: prose.match(/[^\n]{0,40}\bnan\b[^\n]{0,40}/gi) || [],
    machine_paths: (prose.match(/(?:^|[\s(`'"=])(?:\/(?:home|root|tmp|work|Users|mnt|var|opt|srv|scratch|data)\/[^\s)`'"]*|[A-Z]:\\[^\s]+)/gm) || [])
      .map(m => m.trim()),
    // tables wider than the text column (the article), with their id and widths in CSS px
    overflowing_tables: [...document.querySelectorAll('main table, article table, .bd-article table')]
      .filter((t, i, all) => all.indexOf(t) === i)
      .map(t => ({id: t.id || t.className || 'table', width: Math.ceil(t.getBoundingClientRect().width),
                  column: Math.floor((t.closest('.bd-article') || t.closest('article') || t.closest('main')).clientWidth)}))
      .filter(t => t.width > t.column + 1),
  };
})()"""


class Browser:
    """One headless Chromium, closed on exit (use as a context manager)."""

    def __init__(self, profile: Path):
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()

        def fds():
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}"], pass_fds=(3, 4),
                                     preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        os.close(self._w)
        os.close(self._r)

    def _read(self) -> dict:
        while b"\0" not in self._buf:
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout_s: float = 60) -> None:
        end = time.monotonic() + timeout_s
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > end:
                raise TimeoutError(method)
            self.events.append(self._read())

    def open(self, url: str, screenshot: Path, width: int = 1280) -> dict:
        """Load ``url`` in a viewport ``width`` CSS px wide (below 600: a phone's, touch and
        device scale 1), wait for MathJax, and return the page's state (see PAGE_STATE) with
        ``errors``: exceptions, console errors and failed loads (one line each)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": 1600, "deviceScaleFactor": 1,
                                                         "mobile": width < 600}, session)
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired")
        state = self.call("Runtime.evaluate", {"expression": PAGE_STATE, "awaitPromise": True, "returnByValue": True},
                          session)["result"]["value"]
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        errors = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("exception", {}).get("description") or p["exceptionDetails"]["text"])
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") == "error":
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
        self.call("Target.closeTarget", {"targetId": target})
        return {**state, "errors": errors}


def reader_problems(state: dict, where: str) -> list[str]:
    """What a reader must never meet on a page, one line each, from :meth:`Browser.open`'s
    state: a console error, a request off the machine, an image that did not load, "nan", a
    machine path, a table wider than the text column."""
    problems = [f"{where}: console: {e}" for e in state["errors"]]
    problems += [f"{where}: request off the machine: {u}" for u in state["remote"]]
    problems += [f"{where}: image did not load: {u}" for u in state["broken_images"]]
    problems += [f"{where}: 'nan' shown: {t!r}" for t in state["nan_text"]]
    problems += [f"{where}: machine path shown: {t!r}" for t in state["machine_paths"]]
    problems += [f"{where}: table {t['id']} is {t['width']} px wide in a {t['column']} px column"
                 for t in state["overflowing_tables"]]
    return problems
