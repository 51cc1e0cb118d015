"""Measure the language of generated text: scripts, Bashkir letters, code-switching, diversity.

The paper (Arabov & Khaybullina 2026) reports from reading that fully fine-tuned models
often switch to English while QLoRA models stay in Bashkir. These functions make that
measurable, per continuation and per run:

- letter shares: every character with ``str.isalpha()`` is Cyrillic, Latin or other by its
  Unicode name; ``bashkir_letter_share`` is the share of Bashkir-specific letters
  (ҡ ғ ҙ ҫ ң һ ә ө ү and capitals) among the Cyrillic ones (about 17-21 % in real Bashkir
  prose, about 0 % in Russian: ../shared/corpus/README.md);
- a language per sentence from the project's one identifier
  (:func:`bashkir_peft.text.langid.split_sentences` and :func:`bashkir_peft.text.langid.classify`);
- ``code_switch``: at least one sentence of ``min_letters`` (default 20) or more letters
  labelled Russian or English (:data:`SWITCH_LANGUAGES`). ``other`` is not a switch: it is
  "another language, or too little evidence", and real Bashkir sentences without
  Bashkir-specific letters fall there more often than into any other language (issue 13);
  it is reported on its own (``long_other``, ``switch_rates["other"]``);
- ``non_bashkir_word_share``: the share of words (tokens with a letter) whose label is not
  Bashkir. Word rule (ours; a single word is too short to identify reliably): a word takes
  the label of its sentence; words of sentences shorter than ``min_letters`` letters take
  the label of the whole continuation; a word written mostly in Latin letters is never
  Bashkir (Bashkir is written in Cyrillic), even inside a Bashkir sentence;
- ``distinct_1``/``distinct_2``: unique word n-grams / all word n-grams (Li et al. 2016,
  "A Diversity-Promoting Objective Function for Neural Conversation Models", sec. 4.3);
- ``repeated_ngram_rate``: 1 - unique/all word 4-grams within a continuation (seq-rep-4 of
  Welleck et al. 2020, "Neural Text Generation with Unlikelihood Training", sec. 5);
- ``n_words``: whitespace-separated words (the evaluation's word definition).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

from bashkir_peft.text.langid import classify, split_sentences

LANGUAGES = ("bak", "rus", "eng", "other")
#: labels of a long sentence that make a continuation a code switch
SWITCH_LANGUAGES = ("rus", "eng")
BASHKIR_LETTERS = frozenset("ҡғҙҫңһәөүҠҒҘҪҢҺӘӨҮ")
MIN_LETTERS = 20
REPEAT_N = 4

# A word: letters/digits, optionally joined by a hyphen or apostrophe ("ана-инә", "don't").
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")


@lru_cache(maxsize=4096)
def script_of(char: str) -> str:
    """``"cyrillic"``, ``"latin"`` or ``"other"`` for a letter (by its Unicode name)."""
    name = unicodedata.name(char, "")
    if name.startswith("CYRILLIC"):
        return "cyrillic"
    if name.startswith("LATIN"):
        return "latin"
    return "other"


def letter_counts(text: str) -> dict[str, int]:
    """Counts of letters (``str.isalpha``) by script, and of Bashkir-specific letters.

    Returns:
        ``{"letters", "cyrillic", "latin", "other", "bashkir"}`` (``bashkir`` ⊆ ``cyrillic``).
    """
    c = Counter(script_of(ch) for ch in text if ch.isalpha())
    bashkir = sum(1 for ch in text if ch in BASHKIR_LETTERS)
    return {"letters": sum(c.values()), "cyrillic": c["cyrillic"], "latin": c["latin"],
            "other": c["other"], "bashkir": bashkir}


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters/digits, inner hyphens and apostrophes kept)."""
    return [w.lower() for w in _WORD.findall(text)]


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """Consecutive ``n``-grams of ``tokens``."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(token_lists: Iterable[Sequence[str]], n: int) -> float:
    """distinct-n over one or several token lists: unique n-grams / all n-grams (pooled).

    Source: Li et al. 2016, sec. 4.3. Returns NaN when there is no n-gram.
    """
    grams = [g for toks in token_lists for g in ngrams(toks, n)]
    return len(set(grams)) / len(grams) if grams else math.nan


def repeated_ngram_rate(tokens: Sequence[str], n: int = REPEAT_N) -> float:
    """Share of the ``n``-grams of one text that repeat an earlier one: 1 - unique/all.

    Source: seq-rep-n of Welleck et al. 2020, sec. 5. Returns NaN when there is no n-gram.
    """
    grams = ngrams(tokens, n)
    return 1 - len(set(grams)) / len(grams) if grams else math.nan


def _langid() -> tuple[Callable[[str], str], Callable[[str], list[str]]]:
    return classify, split_sentences


def _mostly_latin(word: str) -> bool:
    c = Counter(script_of(ch) for ch in word if ch.isalpha())
    return c["latin"] > c["cyrillic"] + c["other"]


def analyze(text: str, min_letters: int = MIN_LETTERS) -> dict:
    """Language, script and diversity metrics of one continuation.

    Args:
        text: the generated continuation (without its prompt).
        min_letters: a sentence with at least this many letters counts for code-switching.

    Returns:
        A flat dict (one row of the generations table): ``n_words``, ``n_letters``,
        ``cyrillic_share``, ``latin_share``, ``other_letter_share``, ``bashkir_letter_share``,
        ``sentence_labels`` (list, one per sentence), ``lang_share_<bak|rus|eng|other>``
        (letter-weighted over sentences), ``letters_<lang>`` (letters in sentences with that
        label), ``long_<bak|rus|eng|other>`` (bool: a sentence of ``min_letters`` or more
        letters has that label), ``code_switch`` (bool: ``long_rus`` or ``long_eng``),
        ``switch_languages`` (comma-joined :data:`SWITCH_LANGUAGES` among long sentences), ``n_label_words``,
        ``n_non_bashkir_words``, ``non_bashkir_word_share``, ``distinct_1``, ``distinct_2``,
        ``repeated_ngram_rate``. Shares are NaN when their denominator is 0. Formulas: see
        the module docstring.
    """
    classify, split_sentences = _langid()
    lc = letter_counts(text)
    sentences = [s for s in split_sentences(text) if s.strip()]
    whole = classify(text) if lc["letters"] else "other"
    labels, lang_letters = [], Counter()
    n_label_words = n_non_bak = 0
    long_labels = set()
    for s in sentences:
        n_let = sum(1 for ch in s if ch.isalpha())
        label = classify(s)
        labels.append(label)
        lang_letters[label] += n_let
        long = n_let >= min_letters
        if long:
            long_labels.add(label)
        word_label = label if long else whole
        for w in words(s):
            if not any(ch.isalpha() for ch in w):
                continue  # numbers have no language
            n_label_words += 1
            if word_label != "bak" or _mostly_latin(w):
                n_non_bak += 1
    toks = words(text)

    def share(a: int, b: int) -> float:
        return a / b if b else math.nan

    total_lang = sum(lang_letters.values())
    row = {
        "n_words": len(text.split()),
        "n_letters": lc["letters"],
        "cyrillic_share": share(lc["cyrillic"], lc["letters"]),
        "latin_share": share(lc["latin"], lc["letters"]),
        "other_letter_share": share(lc["other"], lc["letters"]),
        "bashkir_letter_share": share(lc["bashkir"], lc["cyrillic"]),
        "sentence_labels": labels,
    }
    row.update({f"lang_share_{lang}": share(lang_letters[lang], total_lang) for lang in LANGUAGES})
    row.update({f"letters_{lang}": lang_letters[lang] for lang in LANGUAGES})
    row.update({f"long_{lang}": lang in long_labels for lang in LANGUAGES})
    switch = sorted(long_labels.intersection(SWITCH_LANGUAGES))
    row.update({
        "code_switch": bool(switch),
        "switch_languages": ",".join(switch),
        "n_label_words": n_label_words,
        "n_non_bashkir_words": n_non_bak,
        "non_bashkir_word_share": share(n_non_bak, n_label_words),
        "distinct_1": distinct_n([toks], 1),
        "distinct_2": distinct_n([toks], 2),
        "repeated_ngram_rate": repeated_ngram_rate(toks),
    })
    return row


def analyze_many(texts: Iterable[str], min_letters: int = MIN_LETTERS) -> list[dict]:
    """:func:`analyze` for each text."""
    return [analyze(t, min_letters) for t in texts]


def summarize(texts: Sequence[str], rows: Sequence[dict] | None = None,
              min_letters: int = MIN_LETTERS) -> dict:
    """Run-level summary of a set of continuations.

    Args:
        texts: the continuations.
        rows: their :func:`analyze` rows (computed when ``None``).
        min_letters: as in :func:`analyze`.

    Returns:
        ``n``, ``n_empty`` (no letters), ``code_switch_rate`` (share of non-empty
        continuations flagged), ``code_switch_languages`` (:data:`SWITCH_LANGUAGES`),
        ``switch_rates`` (``{lang: share of non-empty continuations with a sentence of
        min_letters+ letters labelled lang}``), ``non_bashkir_word_share`` (pooled: non-Bashkir words / all
        labelled words), ``language_shares`` (``{lang: share}``, letters of sentences with
        that label / letters of all sentences, pooled), letter shares (pooled over letters),
        ``distinct_1``/``distinct_2`` (pooled n-grams of all continuations, Li et al. 2016),
        ``repeated_ngram_rate`` (mean over continuations that have a 4-gram),
        ``mean_words``. NaN where a denominator is 0.
    """
    rows = list(rows) if rows is not None else analyze_many(texts, min_letters)
    if len(rows) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(rows)} rows")
    nonempty = [r for r in rows if r["n_letters"] > 0]
    lc = [letter_counts(t) for t in texts]

    def pooled(key: str, denom: str) -> float:
        d = sum(c[denom] for c in lc)
        return sum(c[key] for c in lc) / d if d else math.nan

    def mean(values: list[float]) -> float:
        values = [v for v in values if not math.isnan(v)]
        return sum(values) / len(values) if values else math.nan

    lang_letters = {lang: sum(r[f"letters_{lang}"] for r in rows) for lang in LANGUAGES}
    total = sum(lang_letters.values())
    words_all = sum(r["n_label_words"] for r in rows)
    toks = [words(t) for t in texts]
    out = {
        "n": len(rows),
        "n_empty": len(rows) - len(nonempty),
        "code_switch_rate": (sum(r["code_switch"] for r in nonempty) / len(nonempty)) if nonempty else math.nan,
        "code_switch_languages": list(SWITCH_LANGUAGES),
        "switch_rates": {lang: (sum(r[f"long_{lang}"] for r in nonempty) / len(nonempty)) if nonempty else math.nan
                         for lang in LANGUAGES},
        "non_bashkir_word_share": (sum(r["n_non_bashkir_words"] for r in rows) / words_all) if words_all else math.nan,
    }
    out["language_shares"] = {lang: (lang_letters[lang] / total) if total else math.nan for lang in LANGUAGES}
    out.update({
        "cyrillic_share": pooled("cyrillic", "letters"),
        "latin_share": pooled("latin", "letters"),
        "other_letter_share": pooled("other", "letters"),
        "bashkir_letter_share": pooled("bashkir", "cyrillic"),
        "distinct_1": distinct_n(toks, 1),
        "distinct_2": distinct_n(toks, 2),
        "repeated_ngram_rate": mean([r["repeated_ngram_rate"] for r in rows]),
        "mean_words": mean([float(r["n_words"]) for r in rows]),
        "min_letters": min_letters,
    })
    return out
