"""Pack documents into fixed-length blocks for causal LM training and the ``paper``
evaluation protocol.

As in the transformers causal-LM example (``run_clm.py``, ``group_texts``): documents
are tokenized without special tokens, joined with the EOS token after each document,
concatenated, and cut into consecutive blocks of ``block_size`` tokens; the leftover
tail shorter than ``block_size`` is dropped. No padding is ever needed.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bashkir_peft.errors import DataError


def tokenize_documents(texts: Iterable[str], tokenizer, batch_size: int = 256) -> list[list[int]]:
    """Token ids of each text (no special tokens), EOS appended to each.

    Raises:
        ValueError: the tokenizer has no EOS token.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token to separate documents")
    texts = list(texts)
    out: list[list[int]] = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i : i + batch_size], add_special_tokens=False)["input_ids"]
        out.extend(ids + [tokenizer.eos_token_id] for ids in enc)
    return out


def pack_blocks(token_ids: Iterable[list[int]], block_size: int) -> np.ndarray:
    """Concatenate token id lists and cut them into blocks.

    Args:
        token_ids: per-document token ids (each already ending with EOS).
        block_size: tokens per block (> 0).

    Returns:
        int64 array of shape (n_blocks, block_size); the tail (< block_size tokens) is dropped.

    Raises:
        ValueError: ``block_size`` <= 0.
    """
    if block_size <= 0:
        raise ValueError(f"block_size must be > 0, got {block_size}")
    flat = np.fromiter((t for ids in token_ids for t in ids), dtype=np.int64)
    n = len(flat) // block_size
    return flat[: n * block_size].reshape(n, block_size)


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
