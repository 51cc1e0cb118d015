"""The Goldfish protocol (evaluation protocol ``goldfish``): bits a model spends on the second
half of each sentence, as Goldfish (Chang et al. 2024, "Goldfish: Monolingual Language Models
for 350 Languages", arXiv 2408.10441) scores FLORES-200, so our numbers sit beside its table
(``../shared/eval/flores200/README.md``).

Per sentence, as the repository tylerachang/goldfish ``eval_code/flores_eval_othermodels.py``
does it (``MAX_SEQ_LEN = 512``, ``ONLY_SECOND_HALF = True``):

1. the sentence is stripped and tokenized without special tokens;
2. one start token is put before it (BOS, or EOS where the tokenizer has no BOS:
   :func:`~bashkir_peft.models.loading.prefix_token_id`; Goldfish takes XGLM's EOS, BLOOM's BOS);
3. the sequence (start token included) is cut to at most 512 tokens: a sentence longer
   than that is *truncated* (counted and recorded, never silently);
4. every target is scored (natural-log NLL); a target that is the tokenizer's unknown token
   costs ln(vocabulary size) (``tokenizer.vocab_size``: added tokens not counted);
5. the first ``k`` targets are not counted, where ``k`` is the number of tokens of the
   sentence's first ``floor(len(sentence) / 2)`` characters tokenized on their own;
6. the rest is summed: bits per sentence = sum / ln 2. The published unit is the mean of
   that over sentences (bits per sentence, not per token or byte).

The per-document sums keep the record's columns: ``nll`` (nats, the counted targets),
``tokens`` (counted targets), ``bytes`` and ``words`` of the sentence's second half (its
characters from ``floor(len / 2)`` on: the text the counted targets cover, up to a token cut
across the half-way point), no separators. Bits per byte under this protocol are therefore
those of second halves; the protocol's headline is bits per sentence
(:func:`bits_per_sentence`).
"""

from __future__ import annotations

import math

import numpy as np

from bashkir_peft.evaluate.metrics import count_bytes, count_words
from bashkir_peft.evaluate.scoring import Window, score_windows
from bashkir_peft.models.loading import prefix_token_id

GOLDFISH_MAX_TOKENS = 512
"""Most tokens of a scored sequence, the start token included (Goldfish ``MAX_SEQ_LEN``)."""


def goldfish_windows(texts: list[str], tokenizer, max_tokens: int = GOLDFISH_MAX_TOKENS
                     ) -> tuple[list[Window], np.ndarray, np.ndarray]:
    """The Goldfish protocol's scoring windows, one per sentence with a counted target.

    Args:
        texts: the sentences (stripped here).
        tokenizer: the model's tokenizer.
        max_tokens: most tokens of a sequence, the start token included (>= 2).

    Returns:
        ``(windows, skipped, truncated)``: ``windows`` (``doc`` = the sentence's index;
        ``n_scored`` = its counted targets, the last ones of the sequence), and per sentence
        ``skipped`` (``k``: first-half targets not counted) and ``truncated`` (True: the
        sequence was cut to ``max_tokens``). A sentence whose ``k`` covers every target
        has no window (it counts 0 bits, as in Goldfish).

    Raises:
        ValueError: ``max_tokens`` < 2.
        ConfigError: the tokenizer has neither BOS nor EOS.
    """
    if max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2, got {max_tokens}")
    start = prefix_token_id(tokenizer)
    texts = [t.strip() for t in texts]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    halves = tokenizer([t[: len(t) // 2] for t in texts], add_special_tokens=False)["input_ids"] if texts else []
    windows, skipped, truncated = [], np.zeros(len(texts), np.int64), np.zeros(len(texts), bool)
    for d, (t, h) in enumerate(zip(ids, halves)):
        seq = np.asarray([start, *t], dtype=np.int64)
        truncated[d] = len(seq) > max_tokens
        seq = seq[:max_tokens]
        skipped[d] = len(h)
        n_scored = len(seq) - 1 - len(h)
        if n_scored > 0:
            windows.append(Window(seq, n_scored, d))
    return windows, skipped, truncated


def score_goldfish(model, tokenizer, texts: list[str], *, max_tokens: int = GOLDFISH_MAX_TOKENS, batch_size: int = 8,
                   chunk_tokens: int = 1024, progress: bool = False) -> dict[str, np.ndarray]:
    """Per-sentence sums under the Goldfish protocol (the module docstring's steps).

    Args:
        model, tokenizer: a causal LM (or peft model) and its tokenizer.
        texts: the sentences.
        max_tokens: see :func:`goldfish_windows`.
        batch_size, chunk_tokens, progress: see :func:`bashkir_peft.evaluate.scoring.score_windows`
            (batching changes the sums only through floating-point rounding).

    Returns:
        ``{"nll", "tokens", "bytes", "words", "separator_nll", "separator_tokens",
        "truncated"}``: arrays of length ``len(texts)``; ``nll`` in nats over the counted
        targets (unknown-token targets at ln(vocabulary size)), ``tokens`` the counted
        targets, ``bytes``/``words`` of the second half, separators zero, ``truncated``
        booleans (not a per-document column of the record: its count is kept in the entry).
    """
    windows, _, truncated = goldfish_windows(texts, tokenizer, max_tokens)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix_token_id(tokenizer)
    nlls = score_windows(model, windows, batch_size=batch_size, pad_token_id=pad, chunk_tokens=chunk_tokens,
                         progress=progress)
    unk = tokenizer.unk_token_id
    nll, tokens = np.zeros(len(texts)), np.zeros(len(texts), np.int64)
    for w, v in zip(windows, nlls):
        if unk is not None:
            v = np.where(w.tokens[-w.n_scored :] == unk, math.log(tokenizer.vocab_size), v)
        nll[w.doc], tokens[w.doc] = v.sum(), w.n_scored
    seconds = [t.strip()[len(t.strip()) // 2 :] for t in texts]
    return {
        "nll": nll,
        "tokens": tokens,
        "bytes": np.array([count_bytes(s) for s in seconds], dtype=np.int64),
        "words": np.array([count_words(s) for s in seconds], dtype=np.int64),
        "separator_nll": np.zeros(len(texts)),
        "separator_tokens": np.zeros(len(texts), dtype=np.int64),
        "truncated": truncated,
    }


def bits_per_sentence(nll_nats: float, documents: int) -> float:
    """Goldfish's unit: mean bits per sentence = sum of NLL (nats) / (ln 2 x sentences); NaN
    for no sentence."""
    return nll_nats / (math.log(2) * documents) if documents else math.nan
