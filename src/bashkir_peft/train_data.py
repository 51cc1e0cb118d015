"""Training and validation data: the data-prep output, packed into blocks.

Reads the data-prep folder (``train.parquet``, ``validation.parquet``, ``test.parquet``
with columns id, source, text, and ``manifest.json`` with a ``fingerprint``) through
``bashkir_peft.dataprep`` and packs it with ``bashkir_peft.packing`` (documents joined by
EOS, cut into ``block_size`` blocks, tail dropped; transformers ``run_clm.py`` recipe).
"""

from __future__ import annotations

from pathlib import Path

from .errors import DataError
from .packing import pack_blocks, tokenize_documents


def read_manifest(data_dir: str | Path) -> dict:
    """The data-prep manifest of ``data_dir`` (:func:`bashkir_peft.dataprep.read_manifest`).

    Raises:
        DataError: missing, unreadable or incomplete data-prep output.
    """
    from .dataprep import read_manifest as _read

    return _read(data_dir)


def load_texts(data_dir: str | Path, split: str, max_documents: int | None = None) -> list[str]:
    """Texts of one split, in file order (the first ``max_documents`` if set).

    Raises:
        DataError: missing split file, or a file that differs from the manifest.
    """
    from .dataprep import load_split

    ds = load_split(data_dir, split)
    if max_documents is not None:
        ds = ds.select(range(min(max_documents, len(ds))))
    return list(ds["text"])


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
