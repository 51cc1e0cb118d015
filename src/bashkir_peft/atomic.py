"""Atomic file writes: write to a temporary file in the target's folder, then rename.

An interrupted write (crash, kill -9, full disk) never leaves a truncated file under the
final name; the previous version, if any, stays intact until the rename. The file gets the
permissions ``open()`` would give it (``0o666`` less the umask), not ``mkstemp``'s private
``0o600``, so colleagues on a shared machine can read the results the umask lets them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(folder: str | Path) -> None:
    """Give every file under ``folder`` the permissions ``open()`` would (``0o666`` less the
    umask): libraries that write through ``mkstemp`` (safetensors' weights) leave ``0o600``,
    which colleagues who can read the records could not read."""
    mode = 0o666 & ~_umask()
    for f in Path(folder).rglob("*"):
        if f.is_file() and not f.is_symlink():
            os.chmod(f, mode)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The caller writes the whole file to the yielded path (any writer: pandas, matplotlib,
    open()). On an exception the temporary file is removed and ``path`` is untouched.
    The temporary file keeps ``path``'s suffix, so writers that infer the format from it work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically. Returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | Path, data: object) -> Path:
    """Write ``data`` as indented UTF-8 JSON to ``path`` atomically (non-JSON values via str)."""
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str))


def write_parquet_atomic(df, path: str | Path) -> Path:
    """Write a pandas DataFrame to ``path`` as Parquet (no index), atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)
