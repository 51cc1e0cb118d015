"""Corpus-level language-modelling metrics from summed negative log-likelihoods.

Definitions (lm-evaluation-harness, ``lm_eval.api.metrics`` ``weighted_perplexity`` and
``bits_per_byte`` over per-document ``(loglikelihood, weight)`` pairs, as its wikitext
task uses them): with NLL summed in nats over the whole corpus,

- ``perplexity``      = exp(sum NLL / scored tokens)         (per token; tokenizer-dependent)
- ``bits_per_byte``   = sum NLL / (ln 2 * UTF-8 bytes)        (tokenizer-independent)
- ``word_perplexity`` = exp(sum NLL / whitespace words)       (tokenizer-independent)

Sums, not means of per-document values: every token, byte and word weighs the same.

Separators (the EOS/BOS tokens between packed documents, ``paper`` protocol) are scored
but own no text: their NLL (``separator_nll``, over ``separator_tokens``) enters token
perplexity (as in the training loss, the paper's number) and neither bits per byte nor
word perplexity, whose NLL is that of the text's own tokens (the same convention for every
model; under ``rolling`` no separator is ever scored).
"""

from __future__ import annotations

import math
import re

import numpy as np

SUM_COLUMNS = ("nll", "tokens", "bytes", "words", "separator_nll", "separator_tokens")
_WORD = re.compile(r"\S+")
METRIC_COLUMNS = ("perplexity", "bits_per_byte", "word_perplexity")


def count_bytes(text: str) -> int:
    """UTF-8 bytes of ``text`` (lm_eval ``count_bytes``)."""
    return len(text.encode("utf-8"))


def count_words(text: str) -> int:
    """Whitespace-separated words of ``text`` (``len(text.split())``).

    Equals lm_eval's ``count_words`` (``len(re.split(r"\\s+", text))``) for every text that
    does not start or end with whitespace; lm_eval's counts one extra empty "word" per
    leading or trailing whitespace run.
    """
    return len(text.split())


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def corpus_metrics(nll: float, tokens: int, bytes_: int, words: int, separator_nll: float = 0.0,
                   separator_tokens: int = 0) -> dict[str, float]:
    """The three metrics from corpus sums.

    Args:
        nll: summed negative log-likelihood of the text's tokens, in nats.
        tokens: scored text tokens; bytes_: UTF-8 bytes; words: whitespace words of the scored text.
        separator_nll, separator_tokens: NLL and count of scored separators (see the module
            docstring): in token perplexity only.

    Returns:
        ``{"perplexity", "bits_per_byte", "word_perplexity"}`` (NaN where a count is 0).
    """
    all_tokens = tokens + separator_tokens
    return {
        "perplexity": _exp((nll + separator_nll) / all_tokens) if all_tokens else math.nan,
        "bits_per_byte": nll / (math.log(2) * bytes_) if bytes_ else math.nan,
        "word_perplexity": _exp(nll / words) if words else math.nan,
    }


def summarize(per_doc, by: str | None = "source"):
    """Tidy table of metrics from a per-document table.

    Args:
        per_doc: pandas DataFrame with the columns of :data:`SUM_COLUMNS` (sums per
            document) and the column ``by``.
        by: group column for per-group rows (``None``: only the overall row).

    Returns:
        DataFrame with one row for all documents (``group == "all"``) and one per value of
        ``by``: columns ``group, documents``, the sums of :data:`SUM_COLUMNS` and
        ``perplexity, bits_per_byte, word_perplexity``.
    """
    import pandas as pd

    groups = [("all", per_doc)]
    if by is not None:
        groups += [(str(k), g) for k, g in per_doc.groupby(by, sort=True)]
    rows = []
    for name, g in groups:
        sums = {c: (float(g[c].sum()) if c.endswith("nll") else int(g[c].sum())) for c in SUM_COLUMNS}
        rows.append({"group": name, "documents": len(g), **sums,
                     **corpus_metrics(sums["nll"], sums["tokens"], sums["bytes"], sums["words"],
                                      sums["separator_nll"], sums["separator_tokens"])})
    return pd.DataFrame(rows)


def token_spans(text: str, offsets: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes and whitespace words attributed to each token of ``text``.

    Token i owns the characters from its start offset up to the next token's start (the
    first token from 0, the last to the end), so the spans partition the text: the bytes
    sum to :func:`count_bytes` and the words (counted at their first character) to
    :func:`count_words`. Used where only some tokens of a text are scored (packed blocks).

    Args:
        text: the document.
        offsets: ``(start, end)`` character offsets per token (fast tokenizer
            ``return_offsets_mapping``).

    Returns:
        ``(bytes, words)``, two int64 arrays of length ``len(offsets)``.
    """
    n = len(offsets)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    char_bytes = 1 + (cps >= 0x80).astype(np.int64) + (cps >= 0x800) + (cps >= 0x10000)
    byte_at = np.concatenate([[0], np.cumsum(char_bytes)])  # byte offset of each char index
    starts = np.maximum.accumulate(np.array([0] + [s for s, _ in offsets[1:]], dtype=np.int64))
    bounds = np.concatenate([starts, [len(text)]])
    bytes_ = np.diff(byte_at[bounds])
    word_start = np.fromiter((m.start() for m in _WORD.finditer(text)), dtype=np.int64)
    owner = np.searchsorted(starts, word_start, side="right") - 1
    words = np.bincount(owner, minlength=n).astype(np.int64)
    return bytes_, words
