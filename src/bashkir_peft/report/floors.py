"""The floors of the language-model tables: n-gram models of the grid's training split
(:mod:`bashkir_peft.evaluate.ngram`), scored on every set and protocol the runs were scored on.

Two floors: interpolated Kneser-Ney over bytes (order :data:`BYTE_ORDER`) and, per base model
of the runs, a bigram over that model's tokens with Goldfish's stupid backoff. Both are trained
on the training split of the grid's prepared data only, and score the documents the runs
scored (the union of their ids, per protocol and split):

- ``rolling`` (and any split or external set under it): bits per byte over every byte of each
  document (the bigram: every token after the start context);
- ``goldfish``: bits per sentence on each sentence's second half (the byte model: the bytes
  from the half-way character on, after the first half as context; the bigram: the Goldfish
  protocol's steps on the model's tokens, :func:`bashkir_peft.evaluate.goldfish.goldfish_windows`),
  and bits per byte of those halves;
- ``paper`` (packed blocks): no floor (the blocks cut across documents; the rolling floor of
  the same split is the one to read).

The bigram is keyed by tokenizer: one per (base model, grid ``tokenizer`` axis), counted once.
A run with an adapted tokenizer (axis not ``base``) gets a bigram over its own tokens, read from
the first run folder that saved that tokenizer (``<run>/tokenizer``, written by the training
stage, :mod:`bashkir_peft.data.vocab`): bits per byte compare across tokenizers, tokens do not.
Where no run folder holds it (a results bundle leaves tokenizers out), that bigram is left out.
No text is written: the table holds numbers only.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bashkir_peft.config.external import DATA_PREP_SPLITS, ExternalSet
from bashkir_peft.data.external import load_external
from bashkir_peft.data.fertility import load_profile_tokenizer
from bashkir_peft.data.folder import load_split
from bashkir_peft.evaluate.goldfish import goldfish_windows
from bashkir_peft.evaluate.ngram import ByteKneserNey, TokenBigram
from bashkir_peft.names import BASE_TOKENIZER
from bashkir_peft.records import RECORDED, RunFiles
from bashkir_peft.report.runs import RunRecord, eval_documents

BYTE_ORDER = 7
"""Order of the byte Kneser-Ney floor (7 bytes: about 3.5 Cyrillic letters; the most the
integer codes of :mod:`bashkir_peft.evaluate.ngram` hold)."""

BYTE_FLOOR = f"byte Kneser-Ney, order {BYTE_ORDER}"
BIGRAM_FLOOR = "token bigram, stupid backoff (as Goldfish)"
FLOOR_LABELS = {BYTE_FLOOR: f"floor: byte {BYTE_ORDER}-gram (KN)", BIGRAM_FLOOR: "floor: token bigram"}
"""The label of each floor where it sits as a reference row among runs (:func:`floor_reference`)."""

REFERENCE_COLUMNS = ["model", "method_label", "protocol", "split", "documents", "bits_per_byte"]
"""Columns of :func:`floor_reference`."""

FLOOR_COLUMNS = ["floor", "model", "tokenizer", "protocol", "split", "documents", "bits_per_byte", "bits_per_sentence",
                 "trained_on"]
"""Columns of :func:`floors_table`."""


def _scored(runs: list[RunRecord]) -> tuple[dict[tuple[str, str], list[str]], dict[str, ExternalSet]]:
    """(protocol, split) -> the document ids any finished run scored (in first-seen order), and
    external set name -> the set as recorded."""
    ids: dict[tuple[str, str], dict[str, None]] = {}
    sets: dict[str, ExternalSet] = {}
    for run in runs:
        if run.status != "finished" or run.eval is None:
            continue
        for entry in run.eval.evaluations.values():
            ext = entry.data.external
            if ext is not None and ext.name not in sets:
                sets[ext.name] = ExternalSet.model_validate(ext.model_dump(include=set(ExternalSet.model_fields)),
                                                            context=RECORDED)
        docs = eval_documents(run)
        for (protocol, split), g in docs.groupby(["protocol", "split"], sort=True):
            if protocol != "paper":
                ids.setdefault((protocol, split), {}).update(dict.fromkeys(g["id"]))
    return {k: list(v) for k, v in ids.items()}, sets


def _texts(split: str, wanted: list[str], data_dir: Path, sets: dict[str, ExternalSet], cleaning: dict | None
           ) -> list[str] | None:
    """The texts of ``wanted`` ids of a split or external set (``None``: not readable here)."""
    if split in DATA_PREP_SPLITS:
        ds = load_split(data_dir, split)
        by_id = dict(zip((str(i) for i in ds["id"]), ds["text"]))
    elif split in sets:
        docs = load_external(sets[split], cleaning)
        by_id = dict(zip(docs.ids, docs.texts))
    else:
        return None
    return [by_id[i] for i in wanted if i in by_id]


def floor_tokenizers(runs: list[RunRecord]) -> dict[tuple[str, str], object]:
    """The tokenizer of each (base model, ``tokenizer`` axis) of the finished runs, loaded once.

    ``base``: the model's own (:func:`~bashkir_peft.data.fertility.load_profile_tokenizer`);
    an adapted one: the tokenizer saved in the first run folder (in run-id order) that has it
    (``<run>/tokenizer``); an adaptation no folder holds is left out.

    Returns:
        ``(model, tokenizer axis) -> tokenizer``, sorted by key.

    Raises:
        ConfigError: a model the registry does not know.
    """
    from transformers import AutoTokenizer

    found: dict[tuple[str, str], object] = {}
    for run in sorted((r for r in runs if r.status == "finished"), key=lambda r: r.run_id):
        key = (run.model, run.cell.params.tokenizer)
        if key in found:
            continue
        if key[1] == BASE_TOKENIZER:
            found[key] = load_profile_tokenizer(run.model)[0]
        elif (run.path / RunFiles.TOKENIZER).is_dir():
            found[key] = AutoTokenizer.from_pretrained(run.path / RunFiles.TOKENIZER)
    return dict(sorted(found.items()))


def goldfish_byte_bits(lm: ByteKneserNey, texts: list[str]) -> tuple[float, float]:
    """The byte model under the Goldfish protocol's split: each sentence stripped and scored
    from a start context, the bits of its bytes from the half-way character
    (``floor(len / 2)``) on summed.

    Returns:
        ``(bits, bytes)`` summed over the sentences (bits per sentence = bits / sentences).
    """
    lines = [t.strip() for t in texts]
    bits = lm.byte_bits(lines)
    cut = [len(t[: len(t) // 2].encode("utf-8")) for t in lines]
    return float(sum(b[c:].sum() for b, c in zip(bits, cut))), float(sum(len(b) - c for b, c in zip(bits, cut)))


def goldfish_bigram_bits(lm: TokenBigram, tokenizer, texts: list[str]) -> tuple[float, float]:
    """The token bigram under the Goldfish protocol: the counted targets of
    :func:`~bashkir_peft.evaluate.goldfish.goldfish_windows` (after the start context, at most
    512 tokens, the first half's tokens not counted), scored by the bigram.

    Returns:
        ``(bits, bytes of the second halves)`` summed over the sentences.
    """
    windows, _, _ = goldfish_windows(texts, tokenizer)
    bits = 0.0
    for w in windows:
        tokens = [int(t) for t in w.tokens[1:]]
        bits += float(lm.surprisals(tokens)[-w.n_scored:].sum())
    nbytes = sum(len(t.strip()[len(t.strip()) // 2:].encode("utf-8")) for t in texts)
    return bits, float(nbytes)


def floors_table(runs: list[RunRecord], data_dir: str | Path | None) -> pd.DataFrame:
    """The n-gram floors on every (protocol, split) the finished runs were scored on.

    Args:
        runs: all runs.
        data_dir: the grid's prepared data (its ``train`` split is counted); ``None``: no
            floors (an empty table).

    Returns:
        Columns :data:`FLOOR_COLUMNS`: ``floor`` (its name), ``model`` and ``tokenizer`` (whose
        tokenizer the bigram counts: the base model and the grid's ``tokenizer`` axis, ``base``
        or an adaptation's name, :func:`floor_tokenizers`; both empty for the byte model),
        ``protocol``, ``split``, ``documents``, ``bits_per_byte`` (``goldfish``: of the second halves), ``bits_per_sentence``
        (``goldfish`` only: Goldfish's unit), ``trained_on`` (documents and bytes of the
        training split). Empty without a data folder or a scored split.

    Raises:
        DataError: the training split or an external set cannot be read.
        RecordError: a finished run's per-document table does not match the contract.
    """
    if data_dir is None or not (Path(data_dir) / "train.parquet").is_file():
        return pd.DataFrame(columns=FLOOR_COLUMNS)
    scored, sets = _scored(runs)
    if not scored:
        return pd.DataFrame(columns=FLOOR_COLUMNS)
    data_dir = Path(data_dir)
    train = [str(t) for t in load_split(data_dir, "train")["text"]]
    trained_on = f"training split: {len(train)} documents, {sum(len(t.encode()) for t in train):,} bytes"
    byte_lm = ByteKneserNey.fit(train, order=BYTE_ORDER)
    bigrams = {}
    for key, tokenizer in floor_tokenizers(runs).items():
        ids = tokenizer(train, add_special_tokens=False)["input_ids"]
        bigrams[key] = (tokenizer, TokenBigram.fit(ids, vocab_size=len(tokenizer), unk=tokenizer.unk_token_id))
    rows = []
    for (protocol, split), wanted in sorted(scored.items()):
        texts = _texts(split, wanted, data_dir, sets, None)
        if not texts:
            continue
        n = len(texts)
        if protocol == "goldfish":
            bits, nbytes = goldfish_byte_bits(byte_lm, texts)
        else:
            bits, nbytes = float(byte_lm.bits(texts).sum()), float(sum(len(t.encode()) for t in texts))
        rows.append({"floor": BYTE_FLOOR, "model": "", "tokenizer": "", "protocol": protocol,
                     "split": split, "documents": n, "bits_per_byte": bits / nbytes,
                     "bits_per_sentence": bits / n if protocol == "goldfish" else math.nan, "trained_on": trained_on})
        for (model, axis), (tokenizer, lm) in bigrams.items():
            if protocol == "goldfish":
                bits, nbytes = goldfish_bigram_bits(lm, tokenizer, texts)
            else:
                ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
                bits = float(sum(lm.surprisals(s).sum() for s in ids))
                nbytes = float(sum(len(t.encode()) for t in texts))
            rows.append({"floor": BIGRAM_FLOOR, "model": model, "tokenizer": axis, "protocol": protocol,
                         "split": split, "documents": n, "bits_per_byte": bits / nbytes,
                         "bits_per_sentence": bits / n if protocol == "goldfish" else math.nan,
                         "trained_on": trained_on})
    return pd.DataFrame(rows, columns=FLOOR_COLUMNS).astype({"bits_per_byte": float, "bits_per_sentence": float}) \
        if rows else pd.DataFrame(columns=FLOOR_COLUMNS)


def floor_reference(floors: pd.DataFrame | None, pairs) -> pd.DataFrame:
    """The floors as reference rows of a language-model table or figure: one row per floor on
    each wanted (protocol, split), labelled as a floor (:data:`FLOOR_LABELS`), never a run.

    Args:
        floors: :func:`floors_table` (``None`` or empty: no rows).
        pairs: the (protocol, split) pairs of the table's rows; a pair without a floor (the
            ``paper`` protocol, a split the floors could not read) gets no row.

    Returns:
        :data:`REFERENCE_COLUMNS`: ``model`` (whose tokenizer a bigram counts; empty for the
        byte model), ``method_label`` (the floor's label), ``protocol``, ``split``,
        ``documents`` (scored by the floor: the union of those the runs scored),
        ``bits_per_byte`` (``goldfish``: of the second halves, as the runs' rows); the byte
        floor first on each pair, then the bigrams by model.
    """
    wanted = set(pairs)
    if floors is None or floors.empty or not wanted:
        return pd.DataFrame(columns=REFERENCE_COLUMNS)
    f = floors[[(p, s) in wanted for p, s in zip(floors["protocol"], floors["split"])]].dropna(subset=["bits_per_byte"])
    axis = f["tokenizer"].fillna("") if "tokenizer" in f.columns else pd.Series("", index=f.index)  # older tables
    label = [FLOOR_LABELS[fl] + (f" (tok={t})" if t not in ("", BASE_TOKENIZER) else "")
             for fl, t in zip(f["floor"], axis)]
    out = f.assign(method_label=label, model=f["model"].fillna(""), _byte=f["floor"] != BYTE_FLOOR)
    out = out.sort_values(["protocol", "split", "_byte", "model", "method_label"], kind="stable")
    return out[REFERENCE_COLUMNS].reset_index(drop=True)
