"""n-gram floors: what a model built from nothing but counts of the training split scores.

Two models, trained on the training split only:

- :class:`ByteKneserNey`: interpolated Kneser-Ney over UTF-8 bytes (Chen & Goodman 1999, "An
  empirical study of smoothing techniques for language modeling", eq. 17 with the
  continuation counts of lower orders; one discount per order, ``D = n1 / (n1 + 2 n2)``,
  Ney, Essen & Kneser 1994), interpolated down to the uniform distribution over the 256
  byte values: a proper distribution over bytes in every context, so its bits per byte
  compare with a model's (every byte of a document scored, from a start context).
- :class:`TokenBigram`: a bigram over a tokenizer's tokens with stupid backoff (Brants et al.
  2007, backoff factor 0.4), as Goldfish scores its bigram floors
  (tylerachang/goldfish ``eval_code/flores_eval_bigrams.py``): the bigram's relative
  frequency where the pair was seen, else 0.4 x the unigram's, a unigram never seen taking
  the smallest seen unigram probability (Goldfish: the largest surprisal among the scored
  tokens; ours does not depend on what is scored), the unknown token log2(vocabulary size).
  Stupid backoff is a score, not a distribution (its values over the vocabulary sum to more
  than 1); ``normalized=True`` divides by that sum in each context, which makes it one.

Counting is vectorized (n-grams as integers in base 257, byte 256 the start symbol; sorted
arrays and ``searchsorted``): training on a few MB takes seconds. nltk's
``KneserNeyInterpolated`` was measured first (benchmarks/RESULTS.md, issue 27): ~23 s to fit
order 5 on 193 kB of bytes and ~16 ms per scored byte on the shared 2-core CPU, too slow
to score every set of a grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

START = 256
"""The start symbol of a byte context (never predicted)."""
BASE = 257
STUPID_BACKOFF = 0.4
"""Brants et al. 2007's backoff factor, as Goldfish uses it."""


def _codes(seq: np.ndarray, ends: np.ndarray, m: int) -> np.ndarray:
    """Integer codes (base 257) of the m-grams of ``seq`` ending at positions ``ends``."""
    code = np.zeros(len(ends), dtype=np.int64)
    for j in range(m - 1, -1, -1):
        code = code * BASE + seq[ends - j]
    return code


def _padded(texts: Iterable[str], order: int) -> tuple[np.ndarray, np.ndarray]:
    """All documents as one int64 array, each after ``order - 1`` start symbols, and the
    positions of its bytes (the scored targets)."""
    parts, targets, at = [], [], 0
    for t in texts:
        b = np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int64)
        parts.append(np.concatenate([np.full(order - 1, START, np.int64), b]))
        targets.append(np.arange(at + order - 1, at + order - 1 + len(b)))
        at += order - 1 + len(b)
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(parts), np.concatenate(targets)


class _Table:
    """Counts of one order: sorted n-gram codes with their counts, sorted context codes with
    ``C`` (sum of counts) and ``T`` (distinct continuations), and the discount."""

    def __init__(self, grams: np.ndarray, counts: np.ndarray):
        self.grams, self.counts = grams, counts
        ctx = grams // BASE
        self.contexts, first = np.unique(ctx, return_index=True)
        self.total = np.add.reduceat(counts, first) if len(first) else np.zeros(0, np.int64)
        self.types = np.diff(np.append(first, len(ctx)))
        n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
        self.discount = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5

    @staticmethod
    def _find(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.clip(np.searchsorted(keys, query), 0, max(len(keys) - 1, 0))
        hit = (keys[i] == query) if len(keys) else np.zeros(len(query), bool)
        return i, hit

    def lookup(self, grams: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(c, C, T)`` of each queried n-gram (0 where unseen)."""
        i, hit = self._find(self.grams, self.counts, grams)
        c = np.where(hit, self.counts[i] if len(self.counts) else 0, 0)
        j, hit_c = self._find(self.contexts, self.total, grams // BASE)
        total = np.where(hit_c, self.total[j] if len(self.total) else 0, 0)
        types = np.where(hit_c, self.types[j] if len(self.types) else 0, 0)
        return c, total, types


class ByteKneserNey:
    """Interpolated Kneser-Ney over UTF-8 bytes (module docstring).

    Attributes:
        order: the n-gram order (1 to 7: the codes must fit in 64 bits).
        tables: per order 1 .. ``order``, its counts (continuation counts below the top).
    """

    def __init__(self, order: int, tables: list[_Table]):
        self.order, self.tables = order, tables

    @classmethod
    def fit(cls, texts: Iterable[str], order: int = 5) -> ByteKneserNey:
        """Count the training texts.

        Args:
            texts: the training documents (each scored from a start context).
            order: n-gram order, 1 to 7.

        Raises:
            ValueError: order out of range; no byte to count.
        """
        if not 1 <= order <= 7:
            raise ValueError(f"order must be in 1..7, got {order}")
        seq, ends = _padded(texts, order)
        if not len(ends):
            raise ValueError("no training text to count")
        tables = []
        for m in range(1, order + 1):
            if m == order:
                grams, counts = np.unique(_codes(seq, ends, m), return_counts=True)
            else:  # continuation counts: distinct left extensions of each m-gram
                longer = np.unique(_codes(seq, ends, m + 1))
                grams, counts = np.unique(longer % BASE**m, return_counts=True)
            tables.append(_Table(grams, counts))
        return cls(order, tables)

    def _prob(self, seq: np.ndarray, ends: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
        """P(target | the ``order - 1`` symbols before it), for targets at ``ends`` of ``seq``
        (or the given ``targets`` after those histories)."""
        p = np.full(len(ends), 1 / 256)
        for m, table in enumerate(self.tables, start=1):
            hist = _codes(seq, ends - 1, m - 1) if m > 1 else np.zeros(len(ends), np.int64)
            w = seq[ends] if targets is None else targets
            c, total, types = table.lookup(hist * BASE + w)
            seen = total > 0
            d = table.discount
            safe = np.where(seen, total, 1)
            p = np.where(seen, np.maximum(c - d, 0) / safe + d * types / safe * p, p)
        return p

    def distribution(self, history: bytes) -> np.ndarray:
        """P(byte | history) for all 256 byte values (the last ``order - 1`` bytes count; a
        shorter history is a document's start)."""
        h = list(history)[-(self.order - 1):] if self.order > 1 else []
        seq = np.array([START] * (self.order - 1 - len(h)) + h + [0], dtype=np.int64)
        seqs = np.tile(seq, 256)
        ends = np.arange(256) * len(seq) + len(seq) - 1
        return self._prob(seqs, ends, np.arange(256))

    def byte_bits(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Bits (−log2 P) of every byte of each text (each from a start context)."""
        if not texts:
            return []
        seq, ends = _padded(texts, self.order)
        bits = -np.log2(self._prob(seq, ends))
        return np.split(bits, np.cumsum([len(t.encode("utf-8")) for t in texts])[:-1])

    def bits(self, texts: Sequence[str]) -> np.ndarray:
        """Bits of each text, summed over its bytes (:meth:`byte_bits`): divide by the texts'
        UTF-8 bytes for bits per byte."""
        return np.array([b.sum() for b in self.byte_bits(texts)])


class TokenBigram:
    """A bigram over a tokenizer's tokens with stupid backoff (module docstring).

    Attributes:
        vocab_size: the tokenizer's vocabulary (the start context is ``vocab_size``).
        unk: the unknown token's id (``None``: none).
    """

    def __init__(self, vocab_size: int, unk: int | None, unigram: np.ndarray, bigram: dict[int, dict[int, int]]):
        self.vocab_size, self.unk = vocab_size, unk
        total = unigram.sum()
        seen = unigram > 0
        self._p_floor = unigram[seen].min() / total
        self.p_unigram = np.where(seen, unigram / total, self._p_floor)  # the floor for a unigram never seen
        self._uni_sum = float(self.p_unigram.sum())
        self.bigram = bigram
        self._context_total = {v: sum(d.values()) for v, d in bigram.items()}
        self._z: dict[int, float] = {}

    @classmethod
    def fit(cls, sequences: Iterable[Sequence[int]], vocab_size: int, unk: int | None = None) -> TokenBigram:
        """Count token sequences (each document's tokens, without special tokens; its first
        token counted after the start context).

        Raises:
            ValueError: no token to count, or a token id outside the vocabulary.
        """
        unigram = np.zeros(vocab_size, dtype=np.int64)
        bigram: dict[int, dict[int, int]] = {}
        for seq in sequences:
            prev = vocab_size
            for t in seq:
                if not 0 <= t < vocab_size:
                    raise ValueError(f"token id {t} outside the vocabulary of {vocab_size}")
                unigram[t] += 1
                d = bigram.setdefault(prev, {})
                d[t] = d.get(t, 0) + 1
                prev = t
        if not unigram.any():
            raise ValueError("no training token to count")
        return cls(vocab_size, unk, unigram, bigram)

    def _normalizer(self, prev: int) -> float:
        """Sum over the vocabulary of the stupid-backoff scores after ``prev`` (kept per context)."""
        if prev not in self._z:
            d = self.bigram.get(prev)
            seen = np.fromiter(d.keys(), dtype=np.int64) if d else None
            self._z[prev] = (STUPID_BACKOFF * self._uni_sum if seen is None else
                             1.0 + STUPID_BACKOFF * (self._uni_sum - float(self.p_unigram[seen].sum())))
        return self._z[prev]

    def score(self, prev: int, token: int, normalized: bool = False) -> float:
        """The score of ``token`` after ``prev`` (``vocab_size``: the start): a probability
        where ``normalized``."""
        d = self.bigram.get(prev, {})
        s = d[token] / self._context_total[prev] if token in d else STUPID_BACKOFF * self.p_unigram[token]
        return s / self._normalizer(prev) if normalized else s

    def surprisals(self, tokens: Sequence[int], normalized: bool = False) -> np.ndarray:
        """Bits of each token of a sequence after the start context (−log2 of
        :meth:`score`; the unknown token costs log2(vocabulary size), as Goldfish)."""
        out, prev = np.zeros(len(tokens)), self.vocab_size
        for i, t in enumerate(tokens):
            out[i] = math.log2(self.vocab_size) if t == self.unk else -math.log2(self.score(prev, t, normalized))
            prev = t
        return out
