"""Training checkpoints that are either complete or ignored.

The HF Trainer writes ``checkpoint-<step>/`` file by file (weights, optimizer, scheduler,
RNG state, ``trainer_state.json``). A process killed half-way (even ``kill -9``) leaves
a folder that looks like a checkpoint but cannot be resumed from. So, after the Trainer
has finished a checkpoint, a marker file ``.complete`` is written atomically into it;
only marked checkpoints are resumed from, unmarked ones are removed before resuming,
and older complete checkpoints are pruned only after a newer one is marked.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from bashkir_peft.atomic import follow_umask

MARKER = ".complete"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def mark_complete(checkpoint: str | Path) -> Path:
    """Flush ``checkpoint``'s files to disk (with the umask's permissions,
    :func:`~bashkir_peft.atomic.follow_umask`), then write its marker atomically. Returns the marker."""
    checkpoint = Path(checkpoint)
    follow_umask(checkpoint)
    for f in checkpoint.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    tmp = checkpoint / (MARKER + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("ok\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, checkpoint / MARKER)
    _fsync_dir(checkpoint)
    return checkpoint / MARKER


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path, bool]]:
    """``(step, path, complete)`` of every ``checkpoint-<step>`` folder, by step."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p, (p / MARKER).is_file()))
    return sorted(out)


def last_complete_checkpoint(folder: str | Path, remove_incomplete: bool = True,
                             max_step: int | None = None) -> tuple[Path | None, list[str]]:
    """The newest complete checkpoint in ``folder``.

    Args:
        folder: the Trainer's output folder (``RUN_DIR/checkpoints``).
        remove_incomplete: delete checkpoint folders without a marker (half-written).
        max_step: ignore checkpoints of a later step (the run's budget, ``max_steps``): a
            run never continues from beyond its budget.

    Returns:
        ``(path or None, names of the incomplete checkpoints found)``.
    """
    found = list_checkpoints(folder)
    incomplete = [p for _, p, ok in found if not ok]
    if remove_incomplete:
        for p in incomplete:
            shutil.rmtree(p, ignore_errors=True)
    complete = [p for step, p, ok in found if ok and (max_step is None or step <= max_step)]
    return (complete[-1] if complete else None), [p.name for p in incomplete]


def prune_checkpoints(folder: str | Path, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest complete checkpoints. Returns the deleted names."""
    complete = [p for _, p, ok in list_checkpoints(folder) if ok]
    doomed = complete[: max(0, len(complete) - keep)]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return [p.name for p in doomed]
