"""Words, not letters, counted per generation by the generate stage (notebooks/04_generate.ipynb):
each continuation's and reference continuation's word forms found in the lexicon of the
training split and word 8-grams found in it (:mod:`bashkir_peft.text.lexicon`), stored in
``generations.parquet`` (:data:`~bashkir_peft.records.GENERATION_WORD_COLUMNS`) so that a results
bundle, which leaves the corpus out, carries them and the report reads them
(:mod:`bashkir_peft.report.words`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bashkir_peft.data.folder import load_split
from bashkir_peft.records import GENERATION_WORD_COLUMNS, DataFiles, GenerationLexicon
from bashkir_peft.text.lexicon import Lexicon


def training_lexicon(data_dir: str | Path | None) -> tuple[Lexicon, int] | None:
    """The lexicon of a prepared data folder's training split.

    Args:
        data_dir: a prepared data folder (``None``: none).

    Returns:
        ``(lexicon, training documents)``; ``None`` without a folder or a training split.

    Raises:
        DataError: an unreadable training split.
    """
    if data_dir is None or not (Path(data_dir) / DataFiles.split("train")).is_file():
        return None
    texts = [str(t) for t in load_split(data_dir, "train")["text"]]
    return Lexicon.build(texts), len(texts)


def word_counts(lexicon: Lexicon, continuations: Sequence[str], references: Sequence[str | None]) -> pd.DataFrame:
    """Per generation, the counts of :data:`~bashkir_peft.records.GENERATION_WORD_COLUMNS`.

    Args:
        lexicon: the training split's lexicon.
        continuations: the generated texts, one per prompt.
        references: the prompts' reference continuations (``None``: a prompt without one:
            zero counts).

    Returns:
        One row per prompt, in order: ``lexicon_words`` (word forms), ``in_lexicon_words``
        (of them in the lexicon), ``word_8grams``, ``copied_8grams`` (found in the training
        split), and the same with ``reference_`` for the reference continuation.
    """
    rows = []
    for text, ref in zip(continuations, references, strict=True):
        row = {}
        for prefix, t in (("", text), ("reference_", ref or "")):
            hits, words = lexicon.in_lexicon([t])
            copied, grams = lexicon.copy_rate([t])
            row |= {f"{prefix}lexicon_words": words, f"{prefix}in_lexicon_words": hits,
                    f"{prefix}word_8grams": grams, f"{prefix}copied_8grams": copied}
        rows.append(row)
    return pd.DataFrame(rows, columns=list(GENERATION_WORD_COLUMNS)).astype("int64")


def pooled_rates(counts: pd.DataFrame, prefix: str = "") -> tuple[float | None, float | None]:
    """``(in-lexicon rate, copy rate)`` pooled over the rows of :func:`word_counts` (``prefix``
    ``reference_``: of the references); ``None`` where there is no word or no 8-gram."""
    words, grams = int(counts[f"{prefix}lexicon_words"].sum()), int(counts[f"{prefix}word_8grams"].sum())
    return (int(counts[f"{prefix}in_lexicon_words"].sum()) / words if words else None,
            int(counts[f"{prefix}copied_8grams"].sum()) / grams if grams else None)


def lexicon_info(data_dir: str | Path, lexicon: Lexicon, documents: int, counts: pd.DataFrame) -> GenerationLexicon:
    """The generate record's ``lexicon``: where the lexicon came from, its size, the pooled rates."""
    rate, copy = pooled_rates(counts)
    ref_rate, ref_copy = pooled_rates(counts, "reference_")
    return GenerationLexicon(data_dir=str(data_dir), train_documents=documents, min_count=lexicon.min_count,
                             n=lexicon.n, forms=len(lexicon.forms), in_lexicon_rate=rate, copy_rate=copy,
                             reference_in_lexicon_rate=ref_rate, reference_copy_rate=ref_copy)
