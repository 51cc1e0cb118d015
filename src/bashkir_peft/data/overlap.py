"""Train/test overlap audit of a split: how much of the test text also occurs in train.

De-duplication at document level (exact and MinHash near duplicates) leaves sentences that
two different documents share (a quotation, a repeated news paragraph, a formula of
folklore); a model that saw them in training is scored on text it memorised. The audit
counts, per source of the test documents, the test word n-grams (``n = 13`` by default:
GPT-3's contamination check, Brown et al. 2020, "Language Models are Few-Shot Learners",
appendix C) that occur anywhere in the training split.

Words are the lower-cased ``\\w+`` runs of the text (the word definition of
:mod:`bashkir_peft.text.dedup`); an n-gram is n consecutive words of one document. Each
word is hashed with Python's 64-bit ``hash`` and each n-gram is a polynomial rolling hash
of its words (mod 2**64, numpy), so the training split is a sorted ``uint64`` array (8
bytes per n-gram) and membership is a binary search: the full shared corpus (17M train
n-grams) takes about 10 CPU-seconds and a few hundred MB (benchmarks/RESULTS.md). A 64-bit collision could count an n-gram as
shared that is not; at 2e7 n-grams the chance of any is about 1e-5.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bashkir_peft.records import DataFiles

_WORD = re.compile(r"\w+")
_BASE = np.uint64(0x100000001B3)  # the FNV-1 64-bit prime: an odd multiplier for the rolling hash


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """The ``uint64`` hashes of the word ``n``-grams of one text, in order (empty if it has
    fewer than ``n`` words)."""
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return np.zeros(0, dtype=np.uint64)
    h = np.fromiter((hash(w) for w in words), dtype=np.int64, count=len(words)).view(np.uint64)
    out = np.zeros(len(words) - n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            out = out * _BASE + h[k:len(words) - n + 1 + k]
    return out


def _split_texts(data_dir: Path, split: str, batch_size: int = 512) -> Iterable[tuple[str, str]]:
    """(source, text) of every document of a split file, streamed."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(data_dir / DataFiles.split(split)).iter_batches(batch_size, columns=["source", "text"]):
        yield from zip(batch.column("source").to_pylist(), batch.column("text").to_pylist())


def overlap_audit(data_dir: str | Path, n: int = 13) -> list[dict]:
    """The share of test word ``n``-grams that occur in the training split, per source.

    Args:
        data_dir: a folder with ``train.parquet`` and ``test.parquet`` (columns source, text);
            the data preparation calls this on its temporary folder before writing the
            manifest.
        n: words per n-gram.

    Returns:
        One row per test source, then ``source == "all"``: ``source, ngram, test_documents,
        test_ngrams`` (occurrences, repeats counted), ``ngrams_in_train`` (those that occur
        in train), ``share_in_train`` (their ratio; ``None`` without test n-grams) and
        ``documents_with_overlap`` (test documents with at least one such n-gram).
    """
    data_dir = Path(data_dir)
    chunks = [ngram_hashes(text, n) for _, text in _split_texts(data_dir, "train")]
    train = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint64)
    del chunks
    train.sort()  # in place; repeats do no harm to a binary search
    per: dict[str, list[int]] = {}
    for source, text in _split_texts(data_dir, "test"):
        grams = ngram_hashes(text, n)
        if len(train) and len(grams):
            pos = np.minimum(np.searchsorted(train, grams), len(train) - 1)
            shared = int((train[pos] == grams).sum())
        else:
            shared = 0
        row = per.setdefault(source, [0, 0, 0, 0])
        row[0] += 1
        row[1] += len(grams)
        row[2] += shared
        row[3] += shared > 0
    total = [sum(r[i] for r in per.values()) for i in range(4)]
    return [{"source": source, "ngram": n, "test_documents": d, "test_ngrams": g, "ngrams_in_train": s,
             "share_in_train": s / g if g else None, "documents_with_overlap": o}
            for source, (d, g, s, o) in [*sorted(per.items()), ("all", total)]]
