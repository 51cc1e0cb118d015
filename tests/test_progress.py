"""Steps inside a stage: the grid's watcher shows the training step from the run's
progress.json (written by training every step: tests/test_device.py checks the file)."""

from __future__ import annotations

import json
import time

from bashkir_peft.grid.progress import StepWatcher


def test_watcher_shows_training_steps_only_when_they_change(tmp_path):
    shown: list[str] = []
    path = tmp_path / "progress.json"
    watch = StepWatcher(path, shown.append)
    watch.stage("cell: train")
    watch.poll()  # no file yet: nothing new
    path.write_text(json.dumps({"step": 3, "max_steps": 10, "epoch": 0.1}))
    watch.poll()
    watch.poll()  # unchanged: shown once
    path.write_text(json.dumps({"step": 4, "max_steps": 10, "epoch": 0.2}))
    watch.poll()
    watch.stage("cell: evaluate.1")
    watch.poll()  # not a training stage: the label only
    assert shown == ["cell: train", "cell: train step 3/10", "cell: train step 4/10", "cell: evaluate.1"]


def test_watcher_thread_polls_until_the_cell_ends(tmp_path):
    shown: list[str] = []
    path = tmp_path / "progress.json"
    path.write_text(json.dumps({"step": 1, "max_steps": 2, "epoch": 0.0}))
    with StepWatcher(path, shown.append, interval=0.01) as watch:
        watch.stage("cell: train")
        for _ in range(500):
            if len(shown) == 2:
                break
            time.sleep(0.01)
    assert shown == ["cell: train", "cell: train step 1/2"]
    assert not watch._thread.is_alive()
