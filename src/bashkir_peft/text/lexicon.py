"""Words, not letters: whether generated text is made of real word forms, and how much of it is
copied from the training text.

A letter share (:mod:`bashkir_peft.text.codeswitch`) cannot tell Bashkir from Bashkir-looking
text: "Яҙәшлең ҡарәтәҙ марыш булкәҙер ..." is all Bashkir letters and has no word of the
corpus. Two measures that can:

- the **in-lexicon rate**: the share of a text's word forms found in a lexicon, the word forms
  seen at least ``min_count`` (2) times in the training split (a form seen once may be a typo
  or a fragment);
- the **copy rate**: the share of a text's word 8-grams that occur in the training split
  (regurgitation: a model that recites its training text scores high on the first measure
  for the wrong reason).

Tokenization rule (:func:`word_forms`): a word is a maximal run of letters (Unicode letters:
not digits, not ``_``), joined across an inner hyphen or apostrophe (``ҡыҙ-ҡырҡын``,
``don't``), case-folded; digits, punctuation and symbols separate words and are not words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
"""A word: letters, joined across inner hyphens and apostrophes (module docstring)."""
COPY_N = 8
"""Word n-gram length of the copy rate."""


def word_forms(text: str) -> list[str]:
    """The word forms of ``text`` by the module's rule (case-folded), in order."""
    return [m.group(0).casefold() for m in WORD.finditer(text)]


@dataclass(frozen=True)
class Lexicon:
    """The word forms of a training text seen at least ``min_count`` times, and the hashes of
    its word :data:`COPY_N`-grams.

    Attributes:
        forms: the lexicon.
        min_count: the threshold it was built with.
        ngram_hashes: sorted hashes of every word n-gram of the training text (within a
            document), for :meth:`copy_rate`.
        n: the n-gram length.
    """

    forms: frozenset[str]
    min_count: int
    ngram_hashes: np.ndarray
    n: int = COPY_N

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 2, n: int = COPY_N) -> Lexicon:
        """Count the word forms and n-grams of the training documents.

        Args:
            texts: the training split's documents.
            min_count: a form's fewest occurrences to be in the lexicon (>= 1).
            n: word n-gram length of the copy rate (>= 1).

        Raises:
            ValueError: ``min_count`` or ``n`` below 1.
        """
        if min_count < 1 or n < 1:
            raise ValueError(f"min_count and n must be >= 1, got {min_count}, {n}")
        counts: Counter[str] = Counter()
        hashes: list[int] = []
        for text in texts:
            words = word_forms(text)
            counts.update(words)
            hashes.extend(hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1))
        forms = frozenset(w for w, c in counts.items() if c >= min_count)
        return cls(forms, min_count, np.unique(np.array(hashes, dtype=np.int64)), n)

    def in_lexicon(self, texts: Sequence[str]) -> tuple[int, int]:
        """``(word forms in the lexicon, word forms)`` of ``texts`` pooled: the rate is their ratio."""
        words = [w for t in texts for w in word_forms(t)]
        return sum(w in self.forms for w in words), len(words)

    def copy_rate(self, texts: Sequence[str]) -> tuple[int, int]:
        """``(word n-grams found in the training text, word n-grams)`` of ``texts`` pooled
        (n-grams within each text; a text of fewer than ``n`` words has none)."""
        hits = total = 0
        for t in texts:
            words = word_forms(t)
            grams = np.array([hash(tuple(words[i : i + self.n])) for i in range(len(words) - self.n + 1)],
                             dtype=np.int64)
            if len(grams):
                i = np.clip(np.searchsorted(self.ngram_hashes, grams), 0, max(len(self.ngram_hashes) - 1, 0))
                hits += int((self.ngram_hashes[i] == grams).sum()) if len(self.ngram_hashes) else 0
                total += len(grams)
        return hits, total
