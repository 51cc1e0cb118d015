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
