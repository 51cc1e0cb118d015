"""The data folder written by data preparation (notebooks/01_data_prep.ipynb): its readers.

A data folder holds ``train.parquet``, ``validation.parquet`` and ``test.parquet`` (columns
id, source, text) and ``manifest.json`` (:class:`bashkir_peft.records.DataManifest`), written
last; every reader checks the manifest first, so a half-written folder is never read.
"""

from __future__ import annotations

import time
from pathlib import Path

from bashkir_peft.atomic import write_parquet_atomic
from bashkir_peft.data.splitting import SPLITS
from bashkir_peft.errors import DataError
from bashkir_peft.names import sha256_file
from bashkir_peft.provenance import environment_info
from bashkir_peft.records import DataFiles, DataManifest, read_record, write_record


def read_manifest(data_dir: str | Path) -> DataManifest:
    """Read the manifest of a prepared data folder (written last, so its presence marks a
    complete folder).

    Raises:
        DataError: the folder or manifest is missing; RecordError (a DataError): a manifest
            that does not match :class:`~bashkir_peft.records.DataManifest`.
    """
    path = Path(data_dir) / DataFiles.MANIFEST
    if not path.is_file():
        raise DataError(f"{data_dir}: no {DataFiles.MANIFEST}; run the data preparation (notebooks/01_data_prep.ipynb) first")
    return read_record(path, DataManifest)


def split_path(data_dir: str | Path, split: str) -> Path:
    """Path of a split's Parquet file, checked against the manifest.

    Raises:
        DataError: unknown split, incomplete folder, or the file differs from the manifest.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    manifest = read_manifest(data_dir)
    path = Path(data_dir) / DataFiles.split(split)
    expected = manifest.files.get(path.name)
    if expected is None or not path.is_file() or path.stat().st_size != expected.bytes:
        raise DataError(f"{path}: missing or changed since the manifest was written; rerun the data preparation")
    return path


def load_split(data_dir: str | Path, split: str):
    """One split as an in-memory ``datasets.Dataset`` with columns id, source, text.

    Raises:
        DataError: see :func:`split_path`.
    """
    import datasets
    import pyarrow.parquet as pq

    return datasets.Dataset(datasets.table.InMemoryTable(pq.read_table(split_path(data_dir, split))))


def load_texts(data_dir: str | Path, split: str, max_documents: int | None = None) -> list[str]:
    """Texts of one split, in file order (the first ``max_documents`` if set).

    Raises:
        DataError: missing split file, or a file that differs from the manifest.
    """
    ds = load_split(data_dir, split)
    if max_documents is not None:
        ds = ds.select(range(min(max_documents, len(ds))))
    return list(ds["text"])


def write_presplit_folder(out: str | Path, splits: dict[str, object], fingerprint: str, corpus: dict) -> DataManifest:
    """Write a data folder from documents already split (no cleaning, filtering or
    de-duplication): for test fixtures and benchmarks that need the contract's layout
    without running the data preparation.

    Args:
        out: the folder (created).
        splits: ``{"train"|"validation"|"test": DataFrame with columns id, source, text}``;
            all three are required.
        fingerprint: the data fingerprint recorded in the manifest.
        corpus: where the documents came from (``{"kind": ..., "location": ...}``).

    Returns:
        The manifest written (last) to ``out/manifest.json``.

    Raises:
        DataError: a split missing, or a frame without the columns id, source, text.
    """

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if set(splits) != set(SPLITS):
        raise DataError(f"write_presplit_folder needs the splits {', '.join(SPLITS)}; got {', '.join(splits)}")
    files = {}
    for split in SPLITS:
        df = splits[split]
        if list(df.columns) != ["id", "source", "text"]:
            raise DataError(f"split {split}: columns must be id, source, text (got {', '.join(df.columns)})")
        path = write_parquet_atomic(df, out / DataFiles.split(split))
        files[path.name] = {"rows": len(df), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    counts = {split: len(splits[split]) for split in SPLITS}
    manifest = DataManifest(
        status="complete", fingerprint=fingerprint, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        params=None, corpus=corpus, langid_version="none (pre-split documents)",
        counts={"documents_kept": sum(counts.values()), **counts}, cleaning={}, drops=[],
        near_duplicate_clusters=0, duplicates=[], examples={}, files=files, resources=None,
        environment=environment_info())
    write_record(out / DataFiles.MANIFEST, manifest)
    return manifest
