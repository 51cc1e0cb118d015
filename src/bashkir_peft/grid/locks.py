"""File locks, so two grid processes never run the same cell (or prepare the data) at once.

Uses ``filelock`` (``fcntl.flock`` on POSIX): a lock is released when its holder exits,
even on kill -9, so a crashed process never leaves a cell locked. The lock files live
in ``runs/<grid>/.locks/`` (outside the run folders, which ``--force`` may move aside).
On network filesystems without flock support, split the work with ``--only`` instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout


@contextlib.contextmanager
def try_lock(path: str | Path, timeout: float = 0) -> Iterator[bool]:
    """Hold the lock file ``path`` for the ``with`` block.

    Args:
        path: the lock file (its folder is created if missing).
        timeout: seconds to wait for another holder; 0 = do not wait, -1 = wait forever.

    Yields:
        True when this process holds the lock; False when another process holds it
        (the block then must not touch what the lock guards).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
