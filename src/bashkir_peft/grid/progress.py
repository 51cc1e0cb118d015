"""Steps inside a stage for the grid's progress bar: the training stage rewrites its run's
``progress.json`` every optimizer step (:class:`bashkir_peft.train.callbacks.ProgressFile`);
while a cell runs, :class:`StepWatcher` reads it once a second and shows
``<cell>: train step 120/3000``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path


class StepWatcher:
    """Show the current stage of a cell and, when the file says so, its step.

    Args:
        path: the run's ``progress.json``.
        show: called with the text to show (e.g. a tqdm bar's ``set_postfix_str``).
        interval: seconds between reads.

    Use as a context manager around the cell; call :meth:`stage` when a stage starts.
    """

    def __init__(self, path: Path, show: Callable[[str], None], interval: float = 1.0):
        self.path, self.show, self.interval = Path(path), show, interval
        self.label = ""
        self._stop = threading.Event()
        self._last: object = None

    def stage(self, label: str) -> None:
        """A new stage started (its label, e.g. ``<cell>: train``)."""
        self.label, self._last = label, None
        self.show(label)

    def poll(self) -> None:
        """Read the file once; show the step if it changed (a training stage only)."""
        if not self.label.endswith("train") or not self.path.is_file():
            return
        try:
            now = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # being replaced: the next read will do
            return
        if now != self._last:
            self._last = now
            self.show(f"{self.label} step {now['step']}/{now['max_steps']}")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def __enter__(self) -> StepWatcher:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
