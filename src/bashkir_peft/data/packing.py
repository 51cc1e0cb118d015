"""Pack documents into fixed-length blocks for causal LM training and the ``paper``
evaluation protocol.

As in the transformers causal-LM example (``run_clm.py``, ``group_texts``): documents
are tokenized without special tokens, joined with the EOS token after each document,
concatenated, and cut into consecutive blocks of ``block_size`` tokens; the leftover
tail shorter than ``block_size`` is dropped. No padding is ever needed.

Document framing (:func:`document_framing`): a model whose tokenizer has a BOS token
distinct from EOS (Llama-family: DeepSeek, Mistral; also the SmolLM2 GGUF conversion,
whose BOS is ``<|im_start|>``) also gets its BOS before every document, as evaluation
(``rolling``: BOS prefix, :func:`bashkir_peft.models.loading.prefix_token_id`) and
generation show it one; Llama's own pretraining frames documents ``<s> ... </s>``. Where
BOS is EOS (GPT-2, Phi-2) or absent (Qwen2.5), the EOS that ends a document already
precedes the next one, and documents are framed ``text + EOS`` as before.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bashkir_peft.errors import DataError


def document_framing(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens around every packed document: ``(prefix, suffix)``.

    Returns:
        ``([bos], [eos])`` where the tokenizer has a BOS distinct from EOS, else
        ``([], [eos])`` (see the module docstring). These separator tokens own no text.

    Raises:
        ValueError: the tokenizer has no EOS token.
    """
    eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token to separate documents")
    return ([bos] if bos is not None and bos != eos else []), [eos]


def tokenize_documents(texts: Iterable[str], tokenizer, batch_size: int = 256) -> list[list[int]]:
    """Token ids of each text (no special tokens), framed by :func:`document_framing`
    (EOS appended to each; BOS first where the model has its own BOS).

    Raises:
        ValueError: the tokenizer has no EOS token.
    """
    prefix, suffix = document_framing(tokenizer)
    texts = list(texts)
    out: list[list[int]] = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i : i + batch_size], add_special_tokens=False)["input_ids"]
        out.extend(prefix + ids + suffix for ids in enc)
    return out


def pack_blocks(token_ids: Iterable[list[int]], block_size: int) -> np.ndarray:
    """Concatenate token id lists and cut them into blocks.

    Args:
        token_ids: per-document token ids (each already framed: :func:`tokenize_documents`).
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
        tokenizer: the model's tokenizer (needs an EOS token; framing: :func:`document_framing`).
        block_size: tokens per block.
        what: name for error messages (``"train"``...).

    Returns:
        ``(dataset, stats)`` with ``stats = {"documents", "tokens", "blocks", "tokens_dropped",
        "framing"}`` (``framing``: the document framing as text, e.g. ``"<s> + text + </s>"``).

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
    prefix, suffix = document_framing(tokenizer)
    stats = {"documents": len(texts), "tokens": n_tokens, "blocks": len(blocks),
             "tokens_dropped": n_tokens - blocks.size,
             "framing": " + ".join([*tokenizer.convert_ids_to_tokens(prefix), "text",
                                    *tokenizer.convert_ids_to_tokens(suffix)])}
    return ds, stats
