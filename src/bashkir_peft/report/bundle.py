"""Results bundle: everything the book needs from a finished grid, in one archive.

``bashkir-peft bundle GRID`` writes ``<grid>-results.tar.gz``: the grid's records (JSON),
per-document and per-run tables (Parquet, CSV), executed notebooks, the report's tables
and figures, and the data folder's manifest, document statistics and tokenizer table.
Left out: model artefacts (weights and checkpoints, ``final/``, ``checkpoints/``; an adapted
tokenizer, ``tokenizer/``), the corpus splits
(``data/{train,validation,test}.parquet``: corpus text, whose licences may not allow
reprinting), locks and replaced runs (hidden folders), and the hidden temporaries an
interrupted write leaves (e.g. an empty ``.figure.x1y2.png`` of a killed report).

No folder of the machine that ran the grid is in a bundle (:func:`scrubbed_files`): every
text file (records, executed notebooks with their papermill metadata, tracebacks and logs,
tables, SVG figures) names the grid's folder ``runs/<grid>``, the runs root ``runs``, the
repository ``.``, the folder beside it ``..`` and the home folder ``~``
(:mod:`bashkir_peft.pagepaths`), any other absolute path by its last two parts; the stage
manifests in each ``grid_cell.json`` and ``data_prep.json`` are re-stamped for the records so
rewritten, so the extracted cells check ``finished``, by SHA-256 too. The runs folder itself
keeps its records as written (absolute paths: where its stages read and wrote).

The archive holds one folder named after the grid and, first, ``MANIFEST.json``: the
grid's name, the bundle's schema version and, per file, its size and SHA-256.
``bashkir-peft book GRID --from-bundle ARCHIVE`` (:func:`extract_bundles`) checks every
file against the manifest, extracts the folder (default ``<runs root>/from-bundle/<grid>``)
and builds the book from it as from a grid that trained there. A grid run in parts (by
``--only``, one machine session each) has one bundle per part; ``--from-bundle FOLDER``
builds from their union (``results/<grid>/``, where the study's bundles are committed).
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
from bashkir_peft.pagepaths import machine_folders, scrub
from bashkir_peft.records import (
    CellRecord,
    DataFiles,
    DataPrepRecord,
    FileStamp,
    GridFiles,
    GridIndex,
    RunFiles,
    parse_record,
    record_text,
    write_record,
)

MANIFEST = BUNDLE_MANIFEST
BUNDLE_SCHEMA = 1
BUNDLE_SUFFIX = "-results.tar.gz"
"""How a bundle's file name ends (``<grid>-results.tar.gz``, ``<part>-results.tar.gz``): a
folder of bundles is read by it (:func:`bundle_archives`)."""
KEPT_SUFFIXES = {".json", ".csv", ".parquet", ".ipynb", ".png", ".svg"}
LEFT_OUT_DIRS = BUNDLE_LEFT_OUT
LEFT_OUT_DATA = {DataFiles.split(s) for s in ("train", "validation", "test")}
TEXT_SUFFIXES = {".json", ".ipynb", ".csv", ".svg"}
"""The kept files that are UTF-8 text, where folders of the machine are replaced."""


def bundle_files(runs_dir: Path, runs: set[str] | None = None) -> list[Path]:
    """The files of a grid's runs folder that go into its bundle, sorted (paths relative to it).

    Args:
        runs_dir: the grid's runs folder.
        runs: the run folders to take (e.g. one tier's, a part of a study run on a machine that
            holds earlier parts too); ``None``: every one. The grid's own files (data, index)
            are always taken.
    """
    runs_dir = Path(runs_dir)
    other_runs = set() if runs is None else \
        {d.name for d in runs_dir.iterdir() if d.name not in runs and (d / RunFiles.CELL).is_file()}
    out = []
    for path in sorted(runs_dir.rglob("*")):
        rel = path.relative_to(runs_dir)
        if not path.is_file() or path.suffix not in KEPT_SUFFIXES:
            continue
        if len(rel.parts) > 1 and rel.parts[0] in other_runs:
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


def bundle_folders(runs_dir: str | Path) -> list[tuple[str, str]]:
    """The folders of this machine that a bundle of ``runs_dir`` names by relative names.

    Returns:
        :func:`~bashkir_peft.pagepaths.machine_folders` of ``runs_dir``, with the grid
        folder's parent named ``runs`` as well (the runs root the grid ran in, which may be
        ``--runs-dir`` rather than ``$BASHKIR_PEFT_RUNS``), longest folder first.
    """
    runs_dir = Path(runs_dir)
    pairs = dict(machine_folders(runs_dir))
    for form in (runs_dir.parent.absolute(), runs_dir.parent.resolve()):
        if len(form.parts) >= 2:
            pairs[str(form)] = "runs"
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def scrubbed_files(contents: dict[Path, bytes], folders: list[tuple[str, str]], where: Path) -> dict[Path, bytes]:
    """A grid folder's files as its bundle holds them: no folder of the machine in any text file,
    the stage manifests re-stamped for the files so rewritten.

    Every file of :data:`TEXT_SUFFIXES` goes through :func:`~bashkir_peft.pagepaths.scrub`
    (as text: a JSON record or notebook stays valid JSON, the names put in hold no quote or
    backslash). A record whose manifest (``files``: size and SHA-256) lists a rewritten file,
    a run's ``grid_cell.json`` (:class:`~bashkir_peft.records.StageState`) or the grid's
    ``data_prep.json`` (its data folder's files), is parsed through the record contract, its
    stamps of those files replaced (the modification time is kept: an extracted file has a new
    one, so :func:`~bashkir_peft.cellstate.check_files` compares its SHA-256), and written as
    :func:`~bashkir_peft.records.write_record` writes it. Those two records are in no manifest.

    Args:
        contents: path relative to the grid folder -> bytes.
        folders: :func:`bundle_folders` of the grid folder.
        where: the grid folder (for error messages).

    Returns:
        The same paths -> the bytes the bundle holds.

    Raises:
        DataError: a text file that is not UTF-8, or a JSON file that is not JSON once scrubbed.
        RecordError: a record with a manifest that does not match the record contract.
    """
    out = {}
    for rel, data in contents.items():
        if rel.suffix in TEXT_SUFFIXES:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{where / rel}: not UTF-8 text; cannot tell which folders it names") from None
            clean = scrub(text, folders)
            if clean != text and rel.suffix in (".json", ".ipynb"):
                try:
                    json.loads(clean)
                except json.JSONDecodeError as err:
                    raise DataError(f"{where / rel}: not JSON once its folders are replaced ({err})") from None
            data = clean.encode("utf-8")
        out[rel] = data
    changed = {rel for rel in out if out[rel] != contents[rel]}
    for rel in list(out):
        if len(rel.parts) == 2 and rel.name == RunFiles.CELL:
            rec = parse_record(CellRecord, json.loads(out[rel]), str(where / rel))
            stages = {unit: st.model_copy(update={"files": _restamped(st.files, rel.parent, out, changed)})
                      if st.files else st for unit, st in rec.stages.items()}
            new = rec.model_copy(update={"stages": stages})
        elif rel == Path(GridFiles.DATA_RECORD):
            rec = parse_record(DataPrepRecord, json.loads(out[rel]), str(where / rel))
            new = rec.model_copy(update={"files": _restamped(rec.files, Path(GridFiles.DATA), out, changed)}) \
                if rec.files else rec
        else:
            continue
        if new != rec:
            out[rel] = record_text(new).encode("utf-8")
    return out


def _restamped(files: dict[str, FileStamp], folder: Path, contents: dict[Path, bytes],
               changed: set[Path]) -> dict[str, FileStamp]:
    """A manifest (paths relative to ``folder``) with the stamps of the ``changed`` files made
    those of their ``contents``."""
    out = {}
    for name, stamp in files.items():
        data = contents.get(folder / name)
        if folder / name in changed:
            written = stamp.bytes if stamp.written_bytes is None else stamp.written_bytes
            stamp = stamp.model_copy(update={"bytes": len(data), "sha256": _sha256(data), "written_bytes": written})
        out[name] = stamp
    return out


def write_bundle(runs_dir: str | Path, archive: str | Path, grid: str, runs: set[str] | None = None) -> dict:
    """Write the bundle of a grid's runs folder.

    Args:
        runs_dir: the grid's runs folder (``runs/<grid>``).
        archive: output ``.tar.gz`` path (written to a temporary name, then renamed).
        grid: the grid's name (the archive's top folder).
        runs: only these run folders (:func:`bundle_files`); ``None``: every one.

    Returns:
        The manifest (``grid``, ``bundle_schema``, ``files``: {relative path: {bytes, sha256}}
        of the files as bundled, :func:`scrubbed_files`).

    Raises:
        DataError: no runs folder, or no run record in it; a text file :func:`scrubbed_files`
            cannot read. RecordError: a record with a manifest off the record contract.
    """
    runs_dir, archive = Path(runs_dir), Path(archive)
    if not runs_dir.is_dir():
        raise DataError(f"{runs_dir}: no runs folder to bundle")
    files = bundle_files(runs_dir, runs)
    if not any(rel.name == RunFiles.CELL for rel in files):
        raise DataError(f"{runs_dir}: no run record ({RunFiles.CELL}) to bundle")
    manifest = {"grid": grid, "bundle_schema": BUNDLE_SCHEMA, "files": {}}
    contents = scrubbed_files({rel: (runs_dir / rel).read_bytes() for rel in files}, bundle_folders(runs_dir), runs_dir)
    for rel, data in contents.items():
        manifest["files"][rel.as_posix()] = {"bytes": len(data), "sha256": _sha256(data)}
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
        for rel, data in contents.items():
            _add_bytes(tar, f"{grid}/{rel.as_posix()}", data)
    tmp.replace(archive)
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def read_bundle(archive: str | Path) -> tuple[str, bytes, dict[str, bytes]]:
    """Read a bundle into memory, checking every file against its manifest.

    Returns:
        ``(grid name, manifest bytes, {path relative to the grid's folder: bytes})``.

    Raises:
        DataError: no such file, not a bundle (no readable manifest), a member outside the
            manifest or an unsafe path, a file missing, or a size or SHA-256 that differs
            from the manifest.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise DataError(f"{archive}: no such bundle")
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
    return grid, manifest_bytes, files


def bundle_archives(source: str | Path) -> list[Path]:
    """The bundles a source names: an archive, or a folder of them (``*-results.tar.gz``,
    sorted by name: e.g. ``results/cpu-study/``, one bundle per part of a grid run in parts).

    Raises:
        DataError: no such file or folder, or a folder without a bundle.
    """
    source = Path(source)
    if source.is_dir():
        archives = sorted(source.glob(f"*{BUNDLE_SUFFIX}"))
        if not archives:
            raise DataError(f"{source}: no results bundle (*{BUNDLE_SUFFIX}) in this folder")
        return archives
    if not source.is_file():
        raise DataError(f"{source}: no such bundle or folder of bundles")
    return [source]


def _run_folders(files: dict[str, bytes]) -> set[str]:
    """Top folders of a bundle that are runs (they hold a run record)."""
    return {key.split("/")[0] for key in files if key.count("/") == 1 and key.endswith("/" + RunFiles.CELL)}


def _merged_index(indexes: list[tuple[Path, bytes, set[str]]]) -> GridIndex:
    """One index for the union of bundles of one grid: each cell's entry taken from the bundle
    that holds its run folder (the others say "not started" for it), else the first's.

    Args:
        indexes: per bundle, ``(archive, its grid.json bytes, its run folders)``.

    Raises:
        RecordError: an index that does not match :class:`~bashkir_peft.records.GridIndex`.
        DataError: the indexes list different cells or data (not parts of one grid run).
    """
    loaded = []
    for archive, data, runs in indexes:
        try:
            raw = json.loads(data)
        except json.JSONDecodeError as err:
            raise DataError(f"{archive}: {GridFiles.INDEX} is not JSON ({err})") from None
        loaded.append((parse_record(GridIndex, raw, f"{archive}: {GridFiles.INDEX}"), runs))
    first = loaded[0][0]
    keys = [[c.run_id for c in index.cells] for index, _ in loaded]
    fingerprints = {index.data.fingerprint if index.data else None for index, _ in loaded}
    if any(k != keys[0] for k in keys) or len(fingerprints) > 1:
        raise DataError("the bundles are not parts of one grid run: their indexes list different cells or data (a grid "
                        "that gained or lost cells after a part was bundled: bundle every part again from its runs folder)")
    cells = []
    for i, cell in enumerate(first.cells):
        held = [index.cells[i] for index, runs in loaded if cell.run_id in runs]
        cells.append(held[0] if held else cell)
    return first.model_copy(update={"cells": cells})


def extract_bundles(archives: list[Path], runs_dir: str | Path) -> str:
    """Extract the union of one or more bundles of one grid (a grid run in parts, one bundle
    per part) into ``runs_dir``, checking every file against its bundle's manifest.

    A run folder comes from the one bundle that holds it (in two bundles, it must be
    byte-identical); the index ``grid.json`` takes each cell's entry from the bundle that holds
    its run; the report's tables and figures of the parts (``report/``) are left out, the
    book's report recomputes them from the union; any other grid-level file (the data folder,
    the data notebook) is the first bundle's, and the parts' data fingerprints must agree.
    One bundle is extracted as it is.

    ``runs_dir`` must be absent, empty, or an earlier extracted bundle (it holds
    ``MANIFEST.json``, written there for the union); it is then replaced.

    Returns:
        The grid's name (from the manifests).

    Raises:
        DataError: a bad bundle (:func:`read_bundle`), bundles of different grids or data, a
            run in two bundles with different files, or a ``runs_dir`` holding something other
            than an extracted bundle; RecordError: a part's index off the record contract.
    """
    runs_dir = Path(runs_dir)
    if runs_dir.exists() and any(runs_dir.iterdir()) and not (runs_dir / MANIFEST).is_file():
        raise DataError(f"{runs_dir}: exists and is not an extracted bundle; choose another folder")
    parts = [(archive, *read_bundle(archive)) for archive in archives]
    grids = {grid for _, grid, _, _ in parts}
    if len(grids) > 1:
        raise DataError(f"bundles of different grids ({', '.join(sorted(grids))}): a book is built from one grid")
    grid = grids.pop()
    if len(parts) == 1:
        _, _, manifest_bytes, files = parts[0]
    else:
        files, owner = {}, {}
        for archive, _, _, part in parts:
            runs = _run_folders(part)
            for key, data in part.items():
                top = key.split("/")[0]
                if top == GridFiles.REPORT or key == GridFiles.INDEX:
                    continue
                if top in runs and key in files and files[key] != data:
                    raise DataError(f"run {top} is in {owner[top]} and {archive} with different files ({key}): "
                                    "bundle each cell in one part only")
                if top in runs:
                    owner.setdefault(top, archive)
                files.setdefault(key, data)
        indexes = [(archive, part[GridFiles.INDEX], _run_folders(part))
                   for archive, _, _, part in parts if GridFiles.INDEX in part]
        index = _merged_index(indexes) if indexes else None
        manifest_bytes = None
    if runs_dir.exists():
        shutil.rmtree(runs_dir)
    for key, data in files.items():
        (runs_dir / key).parent.mkdir(parents=True, exist_ok=True)
        (runs_dir / key).write_bytes(data)
    if manifest_bytes is None:  # the union: its index through the record contract, then its manifest
        if index is not None:
            files[GridFiles.INDEX] = write_record(runs_dir / GridFiles.INDEX, index).read_bytes()
        manifest_bytes = json.dumps({"grid": grid, "bundle_schema": BUNDLE_SCHEMA,
                                     "parts": [archive.name for archive, *_ in parts],
                                     "files": {k: {"bytes": len(v), "sha256": _sha256(v)} for k, v in sorted(files.items())}},
                                    indent=1, sort_keys=True).encode()
    (runs_dir / MANIFEST).write_bytes(manifest_bytes)
    return grid
