"""SIB-200 topic classification (Adelani et al. 2023, arXiv 2309.07445): its readers.

The shared copy (``../shared/eval/sib200``, see its README) has one folder per language
(``bak_Cyrl``, ``eng_Latn``, ``rus_Cyrl``), each with ``train.tsv``, ``dev.tsv``,
``test.tsv`` (header ``index_id<TAB>category<TAB>text``, no quoting: some texts contain
``"``) and ``labels.txt`` (the 7 categories, one a line). Row k of a split has the same
``index_id`` and ``category`` in every language: the sides are parallel (FLORES-200).

Used by the external test sets of the evaluation (forgetting of English and Russian), the
downstream stage (topic classification) and the tokenizer-parity table.
"""

from __future__ import annotations

import csv
from pathlib import Path

from bashkir_peft.errors import DataError

SIB200_SPLITS = ("train", "dev", "test")
SIB200_COLUMNS = ("index_id", "category", "text")
SIB200_LANGUAGES = ("bak_Cyrl", "eng_Latn", "rus_Cyrl")


def read_sib200_labels(language_dir: str | Path) -> list[str]:
    """The categories of one language folder, in the order of its ``labels.txt``.

    Raises:
        DataError: the file is missing or empty.
    """
    path = Path(language_dir) / "labels.txt"
    if not path.is_file():
        raise DataError(f"{path}: not found (expected a SIB-200 language folder such as ../shared/eval/sib200/bak_Cyrl)")
    labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not labels:
        raise DataError(f"{path}: no labels")
    return labels


def read_sib200_split(language_dir: str | Path, split: str):
    """One split of one language as a DataFrame with columns index_id (int), category, text.

    Args:
        language_dir: a language folder, e.g. ``../shared/eval/sib200/bak_Cyrl``.
        split: ``train``, ``dev`` or ``test``.

    Returns:
        ``pandas.DataFrame``, one row per sentence, in file order.

    Raises:
        DataError: unknown split; missing file; a header other than
            ``index_id, category, text``; a row without exactly three fields (line named);
            a non-integer index_id; a category not in ``labels.txt``.
    """
    import pandas as pd

    if split not in SIB200_SPLITS:
        raise DataError(f"unknown SIB-200 split {split!r}; one of {', '.join(SIB200_SPLITS)}")
    path = Path(language_dir) / f"{split}.tsv"
    if not path.is_file():
        raise DataError(f"{path}: not found (expected a SIB-200 language folder such as ../shared/eval/sib200/bak_Cyrl)")
    labels = set(read_sib200_labels(language_dir))
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or tuple(header) != SIB200_COLUMNS:
            raise DataError(f"{path}: header {header!r}, expected {'<TAB>'.join(SIB200_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            if len(row) != len(SIB200_COLUMNS):
                raise DataError(f"{path}:{line}: {len(row)} fields, expected 3 (index_id, category, text)")
            index_id, category, text = row
            if not index_id.strip().isdigit():
                raise DataError(f"{path}:{line}: index_id {index_id!r} is not an integer")
            if category not in labels:
                raise DataError(f"{path}:{line}: category {category!r} is not in labels.txt")
            rows.append((int(index_id), category, text))
    return pd.DataFrame(rows, columns=list(SIB200_COLUMNS))
