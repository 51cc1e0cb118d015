"""External test sets (notebook 03): a corpus scored whole, under its own name.

An external set is text the model never trained on and data preparation never split: a
corpus file or folder in the formats data prep reads (:func:`bashkir_peft.data.corpus.resolve_source`:
``.jsonl``, ``.jsonl.gz``, ``.parquet``, a folder of them or of ``.txt``), one language
side of the shared SIB-200 files (:func:`bashkir_peft.data.sib200.read_sib200_split`), or
a file of one sentence a line, plain or gzip (FLORES-200's devtest sides). A budget
(``max_documents``) keeps rows spread over the set (:mod:`bashkir_peft.data.subsets`:
evenly spaced, or stratified by SIB-200 category), never its first rows; the record keeps
the subset's composition by category. It is scored whole (no split, no de-duplication) and raw by default: the grid's
cleaning would change what is measured (``min_chars`` alone drops most SIB-200
sentences, the Bashkir filter every English and Russian one). With ``clean: true`` the
documents pass through data prep's per-document cleaning and filtering
(:func:`bashkir_peft.data.prepare.clean_documents`) and the drop counts are recorded.

The first external sets are the parallel Bashkir, English and Russian sides of
``../shared/eval/sib200`` (FLORES-200 sentences): bits per byte on the English and Russian
sides measures what adaptation to Bashkir cost the model in languages it knew
(forgetting), on the same content as the Bashkir side.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from bashkir_peft.config.data import DataPrepParams
from bashkir_peft.config.external import ExternalSet
from bashkir_peft.data.corpus import iter_documents, resolve_source
from bashkir_peft.data.prepare import clean_documents
from bashkir_peft.data.sib200 import SIB200_SPLITS, read_sib200_split
from bashkir_peft.data.subsets import composition, even_indices, stratified_indices
from bashkir_peft.errors import DataError
from bashkir_peft.settings import resolve_path


@dataclass(frozen=True)
class ExternalDocuments:
    """The documents of an external set, ready to score.

    Attributes:
        texts, ids, sources: one entry per document (SIB-200: id = ``index_id``, the same
            in every language; source = the language folder, e.g. ``eng_Latn``).
        info: what the evaluation record keeps: the set's parameters, the resolved path,
            ``documents_read``, ``documents`` (scored), ``drops`` (reason -> documents;
            empty when raw), ``cleaning_settings``, ``composition`` (SIB-200: category ->
            documents scored; ``None`` for a set without categories) and ``fingerprint``
            (SHA-256 of the scored ids and texts).
    """

    texts: list[str]
    ids: list[str]
    sources: list[str]
    info: dict


def _sib200(spec: ExternalSet) -> tuple[list[str], list[str], list[str], list[str]]:
    folder = resolve_path(spec.path)
    splits = SIB200_SPLITS if spec.sib200_split == "all" else (spec.sib200_split,)
    texts, ids, categories = [], [], []
    for split in splits:
        df = read_sib200_split(folder, split)
        texts += df["text"].tolist()
        ids += [str(i) for i in df["index_id"]]
        categories += df["category"].tolist()
    return texts, ids, [folder.name] * len(texts), categories


def read_lines(path: str | Path) -> tuple[list[str], list[str]]:
    """A file of one sentence a line (plain, or gzip when it ends in ``.gz``): the stripped
    non-empty lines and their ids (the 0-based line number, so a FLORES-200 devtest line
    keeps its place in every language).

    Raises:
        DataError: not a file, or not UTF-8 text (gzip) as named.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not a file (expected one sentence a line, plain or .gz)")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        lines = raw.decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not readable as UTF-8 text{' (gzip)' if path.suffix == '.gz' else ''}: {err}") from None
    kept = [(str(i), line.strip()) for i, line in enumerate(lines) if line.strip()]
    return [t for _, t in kept], [i for i, _ in kept]


def _subset(spec: ExternalSet, n_rows: int, categories: list[str] | None) -> list[int]:
    """Row indices ``spec`` keeps (all rows without a budget)."""
    if spec.max_documents is None:
        return list(range(n_rows))
    if spec.selection == "first":
        return list(range(min(n_rows, spec.max_documents)))
    if spec.selection == "stratified":
        return stratified_indices(categories or [], spec.max_documents)
    return even_indices(n_rows, spec.max_documents)


def load_external(spec: ExternalSet, cleaning_settings: dict | None = None) -> ExternalDocuments:
    """Read an external set (raw, or cleaned with ``cleaning_settings``).

    Args:
        spec: the set.
        cleaning_settings: ``min_chars`` and ``langid_min_letters`` of data prep (the
            prepared data's own settings where known); used only with ``spec.clean``.

    Returns:
        The :class:`ExternalDocuments`.

    Raises:
        DataError: the path does not exist or is not readable in its format; no document
            is left to score.
    """
    categories = None
    if spec.format == "sib200":
        texts, ids, sources, categories = _sib200(spec)
    elif spec.format == "lines":
        texts, ids = read_lines(resolve_path(spec.path))
        # the file's name, e.g. bak_Cyrl.devtest: never a SIB-200 folder's (bak_Cyrl), whose rows
        # the forgetting table pairs by id
        sources = [resolve_path(spec.path).name.removesuffix(".gz")] * len(texts)
    else:
        docs = list(iter_documents(resolve_source(spec.path)))
        texts, ids, sources = [d.text for d in docs], [d.id for d in docs], [d.source for d in docs]
    read = len(texts)
    drops: dict[str, int] = {}
    settings = None
    if spec.clean:
        defaults = DataPrepParams.model_fields
        settings = {k: (cleaning_settings or {}).get(k, defaults[k].default) for k in ("min_chars", "langid_min_letters")}
        kept, drops = clean_documents(texts, ids, sources, **settings)
        if categories is not None:
            by_id = dict(zip(ids, categories))
            categories = [by_id[k[1]] for k in kept]
        texts, ids, sources = [k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept]
    rows = _subset(spec, len(texts), categories)
    texts, ids, sources = [texts[i] for i in rows], [ids[i] for i in rows], [sources[i] for i in rows]
    if not texts:
        raise DataError(f"external set {spec.name!r} ({spec.path}): no document left to score "
                        f"(read {read}; dropped by cleaning: {drops or 'none'})")
    h = hashlib.sha256()
    for i, t in zip(ids, texts):
        h.update(f"{i}\t{t}\n".encode())
    info = {**spec.model_dump(), "resolved_path": str(resolve_path(spec.path)), "documents_read": read,
            "documents": len(texts), "drops": drops, "cleaning_settings": settings,
            "composition": composition([categories[i] for i in rows]) if categories is not None else None,
            "fingerprint": h.hexdigest()}
    return ExternalDocuments(texts, ids, sources, info)
