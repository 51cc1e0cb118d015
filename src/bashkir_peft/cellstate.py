"""The state of a grid cell on disk: one rule for ``grid status``, ``grid run``, ``grid
verify``, the report and the book.

A cell is ``finished`` only if its cell record (``grid_cell.json``) parses against the record
contract and says finished, every stage record in its folder parses
(:data:`~bashkir_peft.stages.RUN_RECORDS`), and every file each stage's manifest lists
(:class:`~bashkir_peft.records.StageState` ``files``) still has its size and modification
time (a file whose time changed but whose size did not, e.g. after a copy, is compared by
SHA-256 instead); with ``checksums`` every file is compared by SHA-256 (``grid verify``).

States: ``not started`` (no cell record), ``running`` (its lock is held), ``interrupted``
(running, lock free: a killed process), ``failed``, ``corrupt`` (a record that does not
parse, or a file that differs from its manifest; ``redo`` names the stages to run again),
``stale`` (the record is another run's, or its identity is not the one the grid computes
for the cell now: the cell's parameters, or their meaning, changed since it ran; the grid
records this verdict in its index ``grid.json``, where the report reads it), ``finished``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bashkir_peft.names import sha256_file
from bashkir_peft.records import CellRecord, FileStamp, GridFiles, RecordError, RunFiles, read_record
from bashkir_peft.stages import RUN_RECORDS

CellStatus = Literal["not started", "running", "interrupted", "finished", "failed", "corrupt", "stale"]
UNMANIFESTED = (RunFiles.CELL, RunFiles.NOTEBOOKS, RunFiles.CHECKPOINTS)
"""Parts of a run folder no stage manifest lists: the runner's own record, the executed
notebooks (written by papermill after the stage) and the training checkpoints (pruned as
training goes; the final weights are in ``final/``)."""


@dataclass(frozen=True)
class CellState:
    """A cell's state (see the module docstring).

    Attributes:
        status: the state.
        error: why it is failed, corrupt or stale (one line), else ``None``.
        wall_time_s: the cell record's wall time (``None`` before it finished).
        redo: for a ``corrupt`` cell, the stages (``train``, ``evaluate``...) whose record or
            files are wrong; empty when it cannot be told (the whole cell reruns).
    """

    status: CellStatus
    error: str | None = None
    wall_time_s: float | None = None
    redo: tuple[str, ...] = ()


def lock_path(root: Path, run_id: str) -> Path:
    """The lock file of a cell (``<grid folder>/.locks/<run_id>.lock``)."""
    return Path(root) / GridFiles.LOCKS / f"{run_id}.lock"


def is_locked(path: str | Path) -> bool:
    """True when another process holds the lock file ``path`` right now (``filelock``)."""
    from filelock import FileLock, Timeout

    if not Path(path).is_file():
        return False
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


def scan(folder: Path, skip: Iterable[str] = UNMANIFESTED) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (path relative to it -> (bytes, mtime_ns)), leaving out the
    top-level names in ``skip``."""
    folder, skip = Path(folder), set(skip)
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            if rel == Path(".") and name in skip:
                continue
            st = os.stat(Path(dirpath) / name)
            out[str(rel / name)] = (st.st_size, st.st_mtime_ns)
    return out


def stamp(folder: Path, names: Iterable[str]) -> dict[str, FileStamp]:
    """The manifest entries of ``names`` (paths relative to ``folder``): size, time, SHA-256."""
    out = {}
    for name in sorted(names):
        path = Path(folder) / name
        st = path.stat()
        out[name] = FileStamp(bytes=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256_file(path))
    return out


def check_files(folder: Path, files: dict[str, FileStamp], checksums: bool = False,
                left_out: Collection[str] = ()) -> str | None:
    """The first file of a manifest that is missing or differs, as one line; ``None`` if all match.

    Args:
        folder: the folder the manifest's paths are relative to.
        files: the manifest.
        checksums: compare every file by SHA-256 (else size and time, SHA-256 only where the
            time differs and the size does not).
        left_out: top-level folders whose files are not checked (a results bundle leaves
            out weights and checkpoints on purpose).
    """
    for name, want in sorted(files.items()):
        if Path(name).parts[0] in left_out:
            continue
        path = Path(folder) / name
        try:
            st = path.stat()
        except FileNotFoundError:
            return f"{path}: missing (the stage's manifest lists it)"
        if st.st_size != want.bytes:
            return f"{path}: {st.st_size} bytes, the stage wrote {want.bytes}"
        if (checksums or st.st_mtime_ns != want.mtime_ns) and sha256_file(path) != want.sha256:
            return f"{path}: content differs from what the stage wrote (SHA-256)"
    return None


BUNDLE_MANIFEST = "MANIFEST.json"
"""The file at the top of a grid folder extracted from a results bundle
(:mod:`bashkir_peft.report.bundle`)."""
BUNDLE_LEFT_OUT = frozenset({RunFiles.FINAL, RunFiles.CHECKPOINTS, RunFiles.TOKENIZER})
"""The folders of a run that a results bundle leaves out on purpose (model artefacts)."""


def left_out_on_purpose(root: str | Path) -> frozenset[str]:
    """The run folders' parts that grid folder ``root`` lacks on purpose: in a folder
    extracted from a results bundle (it holds :data:`BUNDLE_MANIFEST`),
    :data:`BUNDLE_LEFT_OUT`; else none. The ``left_out`` of :func:`cell_state`."""
    return BUNDLE_LEFT_OUT if (Path(root) / BUNDLE_MANIFEST).is_file() else frozenset()


def cell_state(root: Path, run_id: str | None, *, identity: dict | None = None,
               checksums: bool = False, left_out: Collection[str] = ()) -> CellState:
    """The state of one cell of a grid.

    Args:
        root: the grid's folder (``runs/<grid>``).
        run_id: the cell's run id (``None``: the data is not prepared, so not started).
        identity: what the run id hashes, as the grid computes it for the cell now (``None``:
            not checked, e.g. by the report, which takes that verdict from the grid's index).
        checksums: compare every manifest file by SHA-256.
        left_out: top-level folders of a run whose files may be absent (:func:`check_files`).

    Returns:
        The :class:`CellState`.
    """
    if run_id is None:
        return CellState("not started")
    run_dir = Path(root) / run_id
    if not (run_dir / RunFiles.CELL).is_file():
        return CellState("not started")
    try:
        rec = read_record(run_dir / RunFiles.CELL, CellRecord)
    except RecordError as err:
        return CellState("corrupt", str(err))
    if rec.run_id != run_id or (identity is not None and rec.identity.model_dump() != identity):
        return CellState("stale", f"{run_dir}: the record is of another run (its parameters or their meaning "
                                  "changed); rerun the cell", rec.wall_time_s)
    if rec.status == "running":
        return CellState("running" if is_locked(lock_path(root, run_id)) else "interrupted")
    if rec.status == "failed":
        return CellState("failed", rec.error, rec.wall_time_s)
    for name, kind in RUN_RECORDS.items():
        if (run_dir / name).is_file():
            try:
                read_record(run_dir / name, kind)
            except RecordError as err:
                return CellState("corrupt", str(err), rec.wall_time_s, _writers(rec, name))
    for unit, stage in rec.stages.items():
        problem = check_files(run_dir, stage.files or {}, checksums, left_out)
        if problem:
            return CellState("corrupt", problem, rec.wall_time_s, (unit.split(".")[0],))
    return CellState("finished", None, rec.wall_time_s)


def _writers(rec: CellRecord, name: str) -> tuple[str, ...]:
    """The stage whose manifest lists ``name`` (empty when no manifest does)."""
    return tuple(sorted({u.split(".")[0] for u, s in rec.stages.items() if name in (s.files or {})}))
