"""The data folder written by data preparation (notebooks/01_data_prep.ipynb): its readers.

A data folder holds ``train.parquet``, ``validation.parquet`` and ``test.parquet`` (columns
id, source, text) and ``manifest.json`` (:class:`bashkir_peft.records.DataManifest`), written
last; every reader checks the manifest first, so a half-written folder is never read.
"""

from __future__ import annotations

import json
from pathlib import Path

from bashkir_peft.data.splitting import SPLITS
from bashkir_peft.errors import DataError
from bashkir_peft.records import DataFiles


def read_manifest(data_dir: str | Path) -> dict:
    """Read the manifest of a prepared data folder.

    Raises:
        DataError: the folder or manifest is missing, unreadable, or not marked complete.
    """
    path = Path(data_dir) / DataFiles.MANIFEST
    if not path.is_file():
        raise DataError(f"{data_dir}: no {DataFiles.MANIFEST}; run the data preparation (notebooks/01_data_prep.ipynb) first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable manifest ({type(err).__name__}); rerun the data preparation") from None
    if not isinstance(manifest, dict) or manifest.get("status") != "complete" or not manifest.get("fingerprint"):
        raise DataError(f"{path}: the data preparation did not complete; rerun it")
    return manifest


def split_path(data_dir: str | Path, split: str) -> Path:
    """Path of a split's Parquet file, checked against the manifest.

    Raises:
        DataError: unknown split, incomplete folder, or the file differs from the manifest.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    manifest = read_manifest(data_dir)
    path = Path(data_dir) / DataFiles.split(split)
    expected = manifest.get("files", {}).get(path.name, {})
    if not path.is_file() or path.stat().st_size != expected.get("bytes"):
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
