"""Words, not letters, in the generations: per run, the in-lexicon rate and the copy rate of its
continuations (:mod:`bashkir_peft.text.lexicon`: word forms of the training split seen at least
twice; word 8-grams found in the training split), beside the same measures on the reference
continuations (the documents' own next words: the ceiling) and on Russian text (the Russian
side of SIB-200's test split: the floor, Cyrillic but not Bashkir).

A run's rows are read from the word counts its generate stage stored per generation
(``generations.parquet``, :data:`~bashkir_peft.records.GENERATION_WORD_COLUMNS`: a results bundle
carries them); for a run generated before those counts existed, they are counted here against the
lexicon of the grid's prepared training split (``data_dir``), as is the Russian row. Nothing is
written and no text leaves the run folders (the table holds rates).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from bashkir_peft.data.folder import load_split
from bashkir_peft.data.sib200 import read_sib200_split
from bashkir_peft.names import REFERENCE_LABEL, method_sort_key
from bashkir_peft.records import GENERATION_WORD_COLUMNS, RunFiles, read_table
from bashkir_peft.report.runs import RUN_KEYS, RunRecord, run_keys
from bashkir_peft.settings import resolve_path
from bashkir_peft.text.lexicon import Lexicon

RUSSIAN_FLOOR = "../shared/eval/sib200/rus_Cyrl"
"""The Russian text of the floor row: SIB-200's Russian test side (repository-relative)."""
RUSSIAN_LABEL = "Russian text (SIB-200 test)"

WORD_COLUMNS = [*RUN_KEYS, "texts", "words", "in_lexicon_rate", "word_8grams", "copy_rate"]
"""Columns of :func:`words_table`."""


def _rates(keys: dict, texts: int, hits: int, words: int, copied: int, grams: int) -> dict:
    return {**keys, "texts": texts, "words": words, "in_lexicon_rate": hits / words if words else float("nan"),
            "word_8grams": grams, "copy_rate": copied / grams if grams else float("nan")}


def _row(keys: dict, lexicon: Lexicon, texts: list[str]) -> dict:
    return _rates(keys, len(texts), *lexicon.in_lexicon(texts), *lexicon.copy_rate(texts))


def _stored_row(keys: dict, df: pd.DataFrame, prefix: str = "") -> dict:
    """A row from the counts the generate stage stored (``prefix`` ``reference_``: of the references)."""
    c = {k: int(df[f"{prefix}{k}"].sum()) for k in ("in_lexicon_words", "lexicon_words", "copied_8grams",
                                                     "word_8grams")}
    return _rates(keys, len(df), c["in_lexicon_words"], c["lexicon_words"], c["copied_8grams"], c["word_8grams"])


def words_table(runs: list[RunRecord], data_dir: str | Path | None, russian: str | Path | None = RUSSIAN_FLOOR
                ) -> pd.DataFrame:
    """The in-lexicon and copy rates of every finished run's generations, with the reference
    continuations (ceiling, once per model) and Russian text (floor) beside them.

    Args:
        runs: all runs (finished ones with ``generations.parquet`` are read: the word counts
            stored in it where it has them, else its texts are counted here).
        data_dir: the prepared data (its ``train`` split builds the lexicon, for the runs
            without stored counts and for the Russian row); ``None`` or no training split: the
            runs with stored counts only (no Russian row).
        russian: a SIB-200 Russian folder for the floor row (``None`` or missing: no row).

    Returns:
        Columns :data:`WORD_COLUMNS`, rates pooled over a run's continuations (``words``:
        word forms; ``word_8grams``: its word 8-grams): per run, then per model a row
        :data:`~bashkir_peft.names.REFERENCE_LABEL` (the prompts' reference continuations)
        and a row ``Russian text (SIB-200 test)``. Sorted by model and method.
    """
    has_train = data_dir is not None and (Path(data_dir) / "train.parquet").is_file()
    lexicon: Lexicon | None = None

    def counted(keys: dict, texts: list[str]) -> dict | None:
        nonlocal lexicon
        if lexicon is None and has_train:
            lexicon = Lexicon.build(str(t) for t in load_split(data_dir, "train")["text"])
        return None if lexicon is None else _row(keys, lexicon, texts)

    rows, references = [], {}
    for run in runs:
        path = run.path / RunFiles.GENERATIONS
        if run.status != "finished" or run.generate is None or not path.is_file():
            continue
        try:
            stored = set(GENERATION_WORD_COLUMNS) <= set(pq.read_schema(path).names)
        except (OSError, ValueError):  # unreadable: the contract's reader says so in one line
            read_table(path, {"continuation": "string"})
            raise
        if not stored and not has_train:
            continue  # no stored counts, and no training text to count them with
        # the counts' kinds checked as the contract says
        df = read_table(path, {"continuation": "string", "reference": "string",
                               **(GENERATION_WORD_COLUMNS if stored else {})})
        row = _stored_row(run_keys(run), df) if stored else \
            counted(run_keys(run), [str(t) for t in df["continuation"].fillna("")])
        if row is None:
            continue
        rows.append(row)
        ref_keys = {"model": run.model, "method_label": REFERENCE_LABEL}
        refs = df[df["reference"].notna()]
        if len(refs) and run.model not in references:
            references[run.model] = _stored_row(ref_keys, refs, "reference_") if stored else \
                counted(ref_keys, [str(t) for t in refs["reference"]])
    rows += [r for r in references.values() if r is not None]
    folder = resolve_path(russian) if russian is not None else None
    if rows and has_train and folder is not None and folder.is_dir():
        texts = read_sib200_split(folder, "test")["text"].tolist()
        rows.append(counted({"model": "", "method_label": RUSSIAN_LABEL}, texts))
    table = pd.DataFrame(rows, columns=WORD_COLUMNS)
    order = table["method_label"].map(lambda x: (99, "", 0) if x == RUSSIAN_LABEL else method_sort_key(x))
    return table.assign(_o=order).sort_values(["_o", "model"], kind="stable").drop(columns="_o").reset_index(drop=True)
