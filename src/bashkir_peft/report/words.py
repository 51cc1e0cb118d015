"""Words, not letters, in the generations: per run, the in-lexicon rate and the copy rate of its
continuations (:mod:`bashkir_peft.text.lexicon`: word forms of the training split seen at least
twice; word 8-grams found in the training split), beside the same measures on the reference
continuations (the documents' own next words: the ceiling) and on Russian text (the Russian
side of SIB-200's test split: the floor, Cyrillic but not Bashkir).

The lexicon is built from the grid's prepared training split (``data_dir``); nothing is
written and no text leaves the run folders (the table holds rates).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bashkir_peft.data.folder import load_split
from bashkir_peft.data.sib200 import read_sib200_split
from bashkir_peft.names import REFERENCE_LABEL, method_sort_key
from bashkir_peft.records import RunFiles, read_table
from bashkir_peft.report.runs import RUN_KEYS, RunRecord, run_keys
from bashkir_peft.settings import resolve_path
from bashkir_peft.text.lexicon import Lexicon

RUSSIAN_FLOOR = "../shared/eval/sib200/rus_Cyrl"
"""The Russian text of the floor row: SIB-200's Russian test side (repository-relative)."""
RUSSIAN_LABEL = "Russian text (SIB-200 test)"

WORD_COLUMNS = [*RUN_KEYS, "texts", "words", "in_lexicon_rate", "word_8grams", "copy_rate"]
"""Columns of :func:`words_table`."""


def _row(keys: dict, lexicon: Lexicon, texts: list[str]) -> dict:
    hits, words = lexicon.in_lexicon(texts)
    copied, grams = lexicon.copy_rate(texts)
    return {**keys, "texts": len(texts), "words": words, "in_lexicon_rate": hits / words if words else float("nan"),
            "word_8grams": grams, "copy_rate": copied / grams if grams else float("nan")}


def words_table(runs: list[RunRecord], data_dir: str | Path | None, russian: str | Path | None = RUSSIAN_FLOOR
                ) -> pd.DataFrame:
    """The in-lexicon and copy rates of every finished run's generations, with the reference
    continuations (ceiling, once per model) and Russian text (floor) beside them.

    Args:
        runs: all runs (finished ones with ``generations.parquet`` are read).
        data_dir: the prepared data (its ``train`` split builds the lexicon); ``None`` or no
            training split: an empty table.
        russian: a SIB-200 Russian folder for the floor row (``None`` or missing: no row).

    Returns:
        Columns :data:`WORD_COLUMNS`, rates pooled over a run's continuations (``words``:
        word forms; ``word_8grams``: its word 8-grams): per run, then per model a row
        :data:`~bashkir_peft.names.REFERENCE_LABEL` (the prompts' reference continuations)
        and a row ``Russian text (SIB-200 test)``. Sorted by model and method.
    """
    if data_dir is None or not (Path(data_dir) / "train.parquet").is_file():
        return pd.DataFrame(columns=WORD_COLUMNS)
    lexicon = Lexicon.build(str(t) for t in load_split(data_dir, "train")["text"])
    rows, references = [], {}
    for run in runs:
        path = run.path / RunFiles.GENERATIONS
        if run.status != "finished" or run.generate is None or not path.is_file():
            continue
        df = read_table(path, {"continuation": "string", "reference": "string"})
        rows.append(_row(run_keys(run), lexicon,
                         [str(t) for t in df["continuation"].fillna("")]))
        refs = [str(t) for t in df["reference"].dropna()]
        if refs and run.model not in references:
            references[run.model] = refs
    for model, refs in references.items():
        rows.append(_row({"model": model, "method_label": REFERENCE_LABEL}, lexicon, refs))
    folder = resolve_path(russian) if russian is not None else None
    if rows and folder is not None and folder.is_dir():
        texts = read_sib200_split(folder, "test")["text"].tolist()
        rows.append(_row({"model": "", "method_label": RUSSIAN_LABEL}, lexicon, texts))
    table = pd.DataFrame(rows, columns=WORD_COLUMNS)
    order = table["method_label"].map(lambda x: (99, "", 0) if x == RUSSIAN_LABEL else method_sort_key(x))
    return table.assign(_o=order).sort_values(["_o", "model"], kind="stable").drop(columns="_o").reset_index(drop=True)
