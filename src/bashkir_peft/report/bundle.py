"""Results bundle: everything the book needs from a finished grid, in one archive.

``bashkir-peft bundle GRID`` writes ``<grid>-results.tar.gz``: the grid's records (JSON),
per-document and per-run tables (Parquet, CSV), executed notebooks, the report's tables
and figures, and the data folder's manifest, document statistics and tokenizer table.
Left out: model artefacts (weights and checkpoints, ``final/``, ``checkpoints/``; an adapted
tokenizer, ``tokenizer/``), the corpus splits
(``data/{train,validation,test}.parquet``: corpus text, whose licences may not allow
reprinting), locks and replaced runs (hidden folders), and the hidden temporaries an
interrupted write leaves (e.g. an empty ``.figure.x1y2.png`` of a killed report).

The archive holds one folder named after the grid and, first, ``MANIFEST.json``: the
grid's name, the bundle's schema version and, per file, its size and SHA-256.
``bashkir-peft book GRID --from-bundle ARCHIVE`` (:func:`extract_bundle`) checks every
file against the manifest, extracts the folder (default ``<runs root>/from-bundle/<grid>``)
and builds the book from it as from a grid that trained there.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from bashkir_peft.cellstate import BUNDLE_LEFT_OUT, BUNDLE_MANIFEST
from bashkir_peft.errors import DataError
from bashkir_peft.records import DataFiles, GridFiles, RunFiles

MANIFEST = BUNDLE_MANIFEST
BUNDLE_SCHEMA = 1
KEPT_SUFFIXES = {".json", ".csv", ".parquet", ".ipynb", ".png", ".svg"}
LEFT_OUT_DIRS = BUNDLE_LEFT_OUT
LEFT_OUT_DATA = {DataFiles.split(s) for s in ("train", "validation", "test")}


def bundle_files(runs_dir: Path) -> list[Path]:
    """The files of a grid's runs folder that go into its bundle, sorted (paths relative to it)."""
    out = []
    for path in sorted(Path(runs_dir).rglob("*")):
        rel = path.relative_to(runs_dir)
        if not path.is_file() or path.suffix not in KEPT_SUFFIXES:
            continue
        if any(part.startswith(".") or part in LEFT_OUT_DIRS for part in rel.parts[:-1]):
            continue
        if rel.name.startswith("."):  # a temporary an interrupted atomic write left (atomic.py)
            continue
        if rel.parts[0] == GridFiles.DATA and rel.name in LEFT_OUT_DATA:
            continue
        out.append(rel)
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bundle(runs_dir: str | Path, archive: str | Path, grid: str) -> dict:
    """Write the bundle of a grid's runs folder.

    Args:
        runs_dir: the grid's runs folder (``runs/<grid>``).
        archive: output ``.tar.gz`` path (written to a temporary name, then renamed).
        grid: the grid's name (the archive's top folder).

    Returns:
        The manifest (``grid``, ``bundle_schema``, ``files``: {relative path: {bytes, sha256}}).

    Raises:
        DataError: no runs folder, or no run record in it.
    """
    runs_dir, archive = Path(runs_dir), Path(archive)
    if not runs_dir.is_dir():
        raise DataError(f"{runs_dir}: no runs folder to bundle")
    files = bundle_files(runs_dir)
    if not any(rel.name == RunFiles.CELL for rel in files):
        raise DataError(f"{runs_dir}: no run record ({RunFiles.CELL}) to bundle")
    manifest = {"grid": grid, "bundle_schema": BUNDLE_SCHEMA, "files": {}}
    for rel in files:
        data = (runs_dir / rel).read_bytes()
        manifest["files"][rel.as_posix()] = {"bytes": len(data), "sha256": _sha256(data)}
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
        for rel in files:
            _add_bytes(tar, f"{grid}/{rel.as_posix()}", (runs_dir / rel).read_bytes())
    tmp.replace(archive)
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def extract_bundle(archive: str | Path, runs_dir: str | Path) -> str:
    """Extract a bundle into ``runs_dir``, checking every file against its manifest.

    ``runs_dir`` must be absent, empty, or an earlier extracted bundle (it holds
    ``MANIFEST.json``, which is written there too); it is then replaced.

    Returns:
        The grid's name (from the manifest).

    Raises:
        DataError: not a bundle (no manifest), a member outside the manifest or an unsafe
            path, a file missing, a size or SHA-256 that differs from the manifest, or a
            ``runs_dir`` holding something other than an extracted bundle.
    """
    archive, runs_dir = Path(archive), Path(runs_dir)
    if not archive.is_file():
        raise DataError(f"{archive}: no such bundle")
    if runs_dir.exists() and any(runs_dir.iterdir()) and not (runs_dir / MANIFEST).is_file():
        raise DataError(f"{runs_dir}: exists and is not an extracted bundle; choose another folder")
    try:
        tar = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError) as err:
        raise DataError(f"{archive}: not a results bundle ({err})") from None
    files: dict[str, bytes] = {}
    with tar:
        try:
            manifest_bytes = tar.extractfile(MANIFEST).read()
            manifest = json.loads(manifest_bytes)
            grid, expected = manifest["grid"], manifest["files"]
        except (KeyError, AttributeError, json.JSONDecodeError):
            raise DataError(f"{archive}: not a results bundle (no readable {MANIFEST})") from None
        for member in tar.getmembers():
            if member.name == MANIFEST:
                continue
            rel = PurePosixPath(member.name)
            if not member.isfile() or rel.is_absolute() or ".." in rel.parts or rel.parts[0] != grid:
                raise DataError(f"{archive}: unexpected member {member.name!r}")
            key = PurePosixPath(*rel.parts[1:]).as_posix()
            if key not in expected:
                raise DataError(f"{archive}: {key} is not in the manifest")
            data = tar.extractfile(member).read()
            if len(data) != expected[key]["bytes"] or _sha256(data) != expected[key]["sha256"]:
                raise DataError(f"{archive}: {key} does not match its checksum in the manifest")
            files[key] = data
    missing = sorted(set(expected) - set(files))
    if missing:
        raise DataError(f"{archive}: {len(missing)} file(s) of the manifest missing, e.g. {missing[0]}")
    if runs_dir.exists():
        shutil.rmtree(runs_dir)
    for key, data in files.items():
        (runs_dir / key).parent.mkdir(parents=True, exist_ok=True)
        (runs_dir / key).write_bytes(data)
    (runs_dir / MANIFEST).write_bytes(manifest_bytes)
    return grid
