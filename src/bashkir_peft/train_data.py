"""Training and validation data: the data-prep output, packed into blocks.

Reads the data-prep folder (``train.parquet``, ``validation.parquet``, ``test.parquet``
with columns id, source, text, and ``manifest.json`` with a ``fingerprint``) through
``bashkir_peft.dataprep`` and packs it with ``bashkir_peft.packing`` (documents joined by
EOS, cut into ``block_size`` blocks, tail dropped; transformers ``run_clm.py`` recipe).
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import DataError
from .packing import pack_blocks, tokenize_documents

SPLITS = ("train", "validation", "test")


def read_manifest(data_dir: str | Path) -> dict:
    """The data-prep manifest of ``data_dir`` (must hold a ``fingerprint``).

    Raises:
        DataError: missing or unreadable manifest, or no fingerprint.
    """
    try:
        from .dataprep import read_manifest as _read
    except ImportError:  # data prep module not installed in this checkout: read the contract directly
        _read = None
    if _read is not None:
        manifest = _read(data_dir)
    else:
        path = Path(data_dir) / "manifest.json"
        if not path.is_file():
            raise DataError(f"{data_dir} is not a data-prep output folder (no manifest.json); run notebooks/01_data_prep.ipynb first")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: unreadable manifest ({err})") from None
    if not isinstance(manifest, dict) or not manifest.get("fingerprint"):
        raise DataError(f"{data_dir}/manifest.json has no data fingerprint; rerun the data preparation")
    return manifest


def load_texts(data_dir: str | Path, split: str, max_documents: int | None = None) -> list[str]:
    """Texts of one split, in file order (the first ``max_documents`` if set).

    Raises:
        DataError: missing split file or no ``text`` column.
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    try:
        from .dataprep import load_split
    except ImportError:
        load_split = _load_split_parquet
    ds = load_split(data_dir, split)
    if "text" not in ds.column_names:
        raise DataError(f"{data_dir}/{split}.parquet has no text column")
    if max_documents is not None:
        ds = ds.select(range(min(max_documents, len(ds))))
    return list(ds["text"])


def _load_split_parquet(data_dir: str | Path, split: str):
    import datasets

    path = Path(data_dir) / f"{split}.parquet"
    if not path.is_file():
        raise DataError(f"{path} is missing; run notebooks/01_data_prep.ipynb first")
    return datasets.Dataset.from_parquet(str(path), keep_in_memory=True)


def packed_dataset(texts: list[str], tokenizer, block_size: int, what: str):
    """A ``datasets.Dataset`` of blocks with ``input_ids`` and ``labels`` (equal; the model shifts).

    Args:
        texts: documents.
        tokenizer: the model's tokenizer (needs an EOS token).
        block_size: tokens per block.
        what: name for error messages (``"train"``...).

    Returns:
        ``(dataset, stats)`` with ``stats = {"documents", "tokens", "blocks", "tokens_dropped"}``.

    Raises:
        DataError: fewer tokens than one block.
    """
    import datasets

    ids = tokenize_documents(texts, tokenizer)
    n_tokens = sum(len(x) for x in ids)
    blocks = pack_blocks(ids, block_size)
    if len(blocks) == 0:
        raise DataError(f"the {what} split has {n_tokens} tokens, fewer than one block of block_size={block_size}")
    rows = blocks.tolist()
    ds = datasets.Dataset.from_dict({"input_ids": rows, "labels": rows})
    stats = {"documents": len(texts), "tokens": n_tokens, "blocks": len(blocks),
             "tokens_dropped": n_tokens - blocks.size}
    return ds, stats
