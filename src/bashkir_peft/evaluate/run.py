"""Evaluation (notebook 03): perplexity that means the same thing across tokenizers.

Two protocols, recorded with their settings in every result:

- ``paper``: the split packed like the training data (:mod:`bashkir_peft.data.packing`:
  EOS-joined documents cut into ``block_size`` blocks, tail dropped, no overlap); every
  target after a block's first token is scored. Token perplexity = exp(mean token NLL),
  the paper's kind of number (Arabov & Khaybullina 2026, test perplexity).
- ``rolling``: each document on its own, in rolling windows of one common ``max_length``
  for all models (optional ``stride``), the first window prefixed with BOS (EOS where the
  tokenizer has no BOS): lm-evaluation-harness ``loglikelihood_rolling``. For comparing
  models with different tokenizers.
- ``goldfish``: each sentence on its own, after one start token, at most 512 tokens, only
  its second half counted (:mod:`bashkir_peft.evaluate.goldfish`): the protocol of the
  published FLORES-200 table of Goldfish (Chang et al. 2024), for numbers beside it.

Metrics (:mod:`bashkir_peft.evaluate.metrics`): perplexity, bits_per_byte, word_perplexity as
corpus-level sums, overall and per corpus source. Under ``paper`` the bytes and words of a
document are split over its tokens (:func:`bashkir_peft.evaluate.metrics.token_spans`) and only
those of scored tokens count; the separators between documents (EOS, and BOS where the
model has one) are scored and own no bytes: their NLL counts in token perplexity only.

What is scored: a split of the prepared data (``split``), or a named external test set
(``external``, :mod:`bashkir_peft.data.external`: any corpus, or a side of SIB-200, scored
whole and raw by default), whose name then stands in every table where a split name does.

Outputs in ``output_dir`` (the run folder for a trained run):
``eval.json`` (one entry per ``protocol/split`` or ``protocol/<external set>``, each with
its settings and provenance),
``eval_documents.parquet`` (per-document sums ``nll, tokens, bytes, words`` for the
bootstrap) and ``eval_metrics.csv`` (the tidy table: one row per protocol x split x
source). All writes are atomic; other entries already there are kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bashkir_peft.atomic import write_parquet_atomic, write_text_atomic
from bashkir_peft.config.evaluate import EvalParams
from bashkir_peft.data.external import load_external
from bashkir_peft.data.folder import load_split, read_manifest
from bashkir_peft.data.packing import document_framing, pack_blocks
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.evaluate.goldfish import GOLDFISH_MAX_TOKENS, score_goldfish
from bashkir_peft.evaluate.metrics import count_bytes, count_words, summarize, token_spans
from bashkir_peft.evaluate.scoring import block_windows, rolling_windows, score_windows
from bashkir_peft.models.loading import prefix_token_id
from bashkir_peft.models.registry import load_registry
from bashkir_peft.models.subject import load_subject
from bashkir_peft.models.trained import read_finished_run
from bashkir_peft.names import ADAPTER_METHODS
from bashkir_peft.provenance import ResourceMeter, environment_info
from bashkir_peft.records import EvalEntry, EvalRecord, RunFiles, read_eval_documents, read_record_if_any, write_record
from bashkir_peft.runtime import configure_threads
from bashkir_peft.text.excerpt import head_bytes

# --------------------------------------------------------------------------- scoring


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix_token_id(tokenizer)


def score_rolling(model, tokenizer, texts: list[str], *, max_length: int = 1024, stride: int | None = None,
                  batch_size: int = 8, padding_side: str = "right", chunk_tokens: int = 1024,
                  progress: bool = False) -> dict[str, np.ndarray]:
    """Per-document sums under the ``rolling`` protocol.

    Every token of each text (tokenized without special tokens) is scored once.

    Args:
        model, tokenizer: a causal LM (or peft model) and its tokenizer.
        texts: the documents.
        max_length, stride: see :func:`bashkir_peft.evaluate.scoring.rolling_windows`.
        batch_size, padding_side, chunk_tokens: see :func:`bashkir_peft.evaluate.scoring.score_windows`.

    Returns:
        ``{"nll", "tokens", "bytes", "words", "separator_nll", "separator_tokens"}``: arrays
        of length ``len(texts)`` (NLL in nats; no separator is scored: zeros).
    """
    prefix = prefix_token_id(tokenizer)
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
    windows = [w for d, t in enumerate(ids) for w in rolling_windows(t, prefix, max_length, stride, doc=d)]
    nlls = score_windows(model, windows, batch_size=batch_size, pad_token_id=_pad_id(tokenizer),
                         padding_side=padding_side, chunk_tokens=chunk_tokens, progress=progress)
    nll = np.zeros(len(texts))
    for w, v in zip(windows, nlls):
        nll[w.doc] += v.sum()
    return {
        "nll": nll,
        "tokens": np.array([len(t) for t in ids], dtype=np.int64),
        "bytes": np.array([count_bytes(t) for t in texts], dtype=np.int64),
        "words": np.array([count_words(t) for t in texts], dtype=np.int64),
        "separator_nll": np.zeros(len(texts)),
        "separator_tokens": np.zeros(len(texts), dtype=np.int64),
    }


def score_paper(model, tokenizer, texts: list[str], *, block_size: int, batch_size: int = 8,
                chunk_tokens: int = 1024, progress: bool = False) -> dict[str, np.ndarray]:
    """Per-document sums under the ``paper`` protocol (packed blocks, as training).

    Documents are tokenized without special tokens and framed as in training (EOS after
    each, BOS before each where the model has its own BOS:
    :func:`bashkir_peft.data.packing.document_framing`), concatenated and cut into
    ``block_size`` blocks, the tail dropped (:func:`bashkir_peft.data.packing.pack_blocks`).
    Each scored target (all but each block's first token) is credited to its document,
    with the bytes and words its token spans. The separators (BOS, EOS) own no bytes:
    their NLL is kept apart (``separator_nll``, ``separator_tokens``), so bits per byte
    and word perplexity sum the NLL of text tokens only, while token perplexity counts
    every scored target, separators included, as the training loss does
    (:func:`bashkir_peft.evaluate.metrics.corpus_metrics`).

    Returns:
        ``{"nll", "tokens", "bytes", "words", "separator_nll", "separator_tokens"}`` per
        document (``nll``/``tokens``: text tokens only; zeros for documents that fall
        entirely in the dropped tail).

    Raises:
        ConfigError: the tokenizer is not a fast tokenizer (offsets are needed) or has no EOS.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("the paper protocol needs a fast tokenizer (character offsets)")
    if tokenizer.eos_token_id is None:
        raise ConfigError("the tokenizer has no EOS token to separate packed documents")
    prefix, suffix = document_framing(tokenizer)
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True) if texts else \
        {"input_ids": [], "offset_mapping": []}
    ids, docs, nbytes, nwords, seps = [], [], [], [], []
    for d, (t, off, text) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], texts)):
        b, w = token_spans(text, off)
        ids.append(prefix + list(t) + suffix)
        docs.append(np.full(len(ids[-1]), d, dtype=np.int64))
        nbytes.append(np.concatenate([np.zeros(len(prefix), np.int64), b, np.zeros(len(suffix), np.int64)]))
        nwords.append(np.concatenate([np.zeros(len(prefix), np.int64), w, np.zeros(len(suffix), np.int64)]))
        seps.append(np.concatenate([np.ones(len(prefix), bool), np.zeros(len(t), bool), np.ones(len(suffix), bool)]))
    blocks = pack_blocks(ids, block_size)
    n_flat = blocks.size

    def flat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts)[:n_flat] if parts else np.zeros(0, dtype)

    doc_of, bytes_of, words_of = flat(docs, np.int64), flat(nbytes, np.int64), flat(nwords, np.int64)
    sep_of = flat(seps, bool)
    scored = (np.arange(n_flat) % block_size) != 0
    nlls = score_windows(model, block_windows(blocks), batch_size=batch_size, pad_token_id=_pad_id(tokenizer),
                         chunk_tokens=chunk_tokens, progress=progress)
    nll_flat = np.zeros(n_flat)
    if n_flat:
        nll_flat[scored] = np.concatenate(nlls)
    n = len(texts)
    text_tok, sep_tok = scored & ~sep_of, scored & sep_of
    return {
        "nll": np.bincount(doc_of[text_tok], weights=nll_flat[text_tok], minlength=n),
        "tokens": np.bincount(doc_of[text_tok], minlength=n).astype(np.int64),
        "bytes": np.bincount(doc_of[scored], weights=bytes_of[scored], minlength=n).astype(np.int64),
        "words": np.bincount(doc_of[scored], weights=words_of[scored], minlength=n).astype(np.int64),
        "separator_nll": np.bincount(doc_of[sep_tok], weights=nll_flat[sep_tok], minlength=n),
        "separator_tokens": np.bincount(doc_of[sep_tok], minlength=n).astype(np.int64),
    }


# --------------------------------------------------------------------------- models


def _check_length(length: int, ctx: int | None, protocol: str) -> None:
    if ctx is not None and length > ctx:
        if protocol == "goldfish":
            raise ConfigError(f"the goldfish protocol scores up to {length} tokens; the model's context is {ctx}")
        what = "max_length" if protocol == "rolling" else "block_size"
        raise ConfigError(f"{what}={length} exceeds the model's context length {ctx}; "
                          f"use one {what} <= {ctx} for every model compared")


def _registry_context_length(name: str | None) -> int | None:
    entry = load_registry().models.get(name) if name else None
    return entry.context_length if entry else None


def _context_length(model) -> int | None:
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "seq_length"):
        if getattr(cfg, key, None):
            return int(getattr(cfg, key))
    return None


# --------------------------------------------------------------------------- records


def _block(protocol: str, split: str, row: dict) -> dict:
    keys = ("documents", "nll", "tokens", "bytes", "words", "separator_nll", "separator_tokens",
            "perplexity", "bits_per_byte", "word_perplexity")
    return {"protocol": protocol, "split": split, "source": row["group"], **{k: row[k] for k in keys}}


def tidy_metrics(per_doc):
    """Tidy metrics (pandas) of a per-document table holding ``protocol`` and ``split``
    columns: one row per protocol x split x source (``source == "all"``: every document)."""
    import pandas as pd

    parts = []
    for (protocol, split), g in per_doc.groupby(["protocol", "split"], sort=True):
        t = summarize(g, by="source").rename(columns={"group": "source"})
        t.insert(0, "split", split)
        t.insert(0, "protocol", protocol)
        parts.append(t)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def scored_documents(params: EvalParams, data_dir, manifest) -> tuple[list[str], list[str], list[str], dict | None]:
    """``(texts, ids, sources, external info)`` of what ``params`` scores: a split of the
    prepared data (first ``max_documents``, each cut to its first ``max_document_bytes`` at a
    word boundary, :func:`~bashkir_peft.text.excerpt.head_bytes`), or the external set
    (cleaned, on request, with the prepared data's own settings where known). DataError:
    nothing to score."""
    if params.external is not None:
        docs = load_external(params.external, manifest.params if manifest else None)
        return docs.texts, docs.ids, docs.sources, docs.info
    ds = load_split(data_dir, params.split)
    if params.max_documents is not None:
        ds = ds.select(range(min(params.max_documents, len(ds))))
    if len(ds) == 0:
        raise DataError(f"{data_dir}: split {params.split!r} has no documents")
    texts = list(ds["text"])
    if params.max_document_bytes is not None:
        texts = [head_bytes(t, params.max_document_bytes) for t in texts]
    return texts, [str(i) for i in ds["id"]], [str(s) for s in ds["source"]], None


SUBJECT_FIELDS = ("model", "run_dir", "merge", "dtype", "device")
"""The evaluation parameters that decide the model under test (:func:`load_subject`'s arguments)."""


def shared_subject(passes: list[EvalParams]):
    """The model under test of several evaluation passes, loaded once, when there are two or
    more and every pass names the same one (the same :data:`SUBJECT_FIELDS`); ``None``
    otherwise (each pass loads its own, as a single evaluation always does).

    Returns:
        A :class:`~bashkir_peft.models.subject.Subject` or ``None``.

    Raises:
        ConfigError, RecordError: as :func:`load_subject` (unknown model, unfinished run ...).
    """
    keys = {tuple(getattr(p, f) for f in SUBJECT_FIELDS) for p in passes}
    if len(passes) < 2 or len(keys) != 1:
        return None
    p = passes[0]
    configure_threads(p.num_threads)
    return load_subject(p.model, p.run_dir, merge=p.merge, dtype=p.dtype, device=p.device)


def run_evaluation(params: EvalParams, *, progress: bool = True, subject=None) -> EvalEntry:
    """Evaluate a base model or a training run on one split, or on one external test set,
    under one protocol.

    Validates everything cheap first (paths, the run's status, block_size, data, the
    per-document table already there), then loads the model, scores, and writes
    ``eval.json``, ``eval_documents.parquet`` and ``eval_metrics.csv`` atomically into the
    output folder (entries of other protocol/split pairs already there are kept).

    Args:
        params: the pass's parameters.
        progress: show a progress bar while scoring.
        subject: the model under test already loaded for these parameters (by
            :func:`shared_subject`, for several passes of one notebook); ``None`` = load it
            here. The entry's ``cost`` then measures the scoring only, not the loading.

    Returns:
        The :class:`~bashkir_peft.records.EvalEntry` written into ``eval.json`` under
        ``<protocol>/<split>`` or ``<protocol>/<external set name>`` (``metrics``: all
        documents; ``by_source``: per corpus source; ``data.external``: the external set's
        path, fingerprint, documents read and scored, and drop counts where cleaned).

    Raises:
        ConfigError: bad parameters (max_length or block_size above the model's context,
            no block_size for the paper protocol, unfinished run ...).
        DataError: the split or external set is missing or empty.
        RecordError: the output folder's per-document table does not match the contract
            (e.g. written before separators were counted apart): evaluate into a fresh folder.
    """
    import pandas as pd

    threads = configure_threads(params.num_threads)
    train_params = read_finished_run(params.run_dir, params.model).params if params.run_dir is not None else None
    if params.merge and train_params.method not in ADAPTER_METHODS:  # merge comes with run_dir (EvalParams)
        raise ConfigError(f"merge applies to lora/qlora runs; {params.run_dir} is a {train_params.method!r} run")
    data_dir = params.data_dir or (train_params.data_dir if train_params else None)
    if data_dir is None and params.external is None:
        raise ConfigError("data_dir is not given and the training record names none")
    block_size = params.block_size or (train_params.block_size if train_params else None)
    if params.protocol == "paper" and not block_size:
        raise ConfigError("the paper protocol needs block_size (not given, not in the training record)")
    manifest = read_manifest(data_dir) if data_dir is not None else None
    texts, ids, sources, external = scored_documents(params, data_dir, manifest)
    scored = params.scored

    length = {"rolling": params.max_length, "paper": block_size, "goldfish": GOLDFISH_MAX_TOKENS}[params.protocol]
    _check_length(length, _registry_context_length(params.model or (train_params.model if train_params else None)), params.protocol)
    out_dir = params.out_dir
    docs_path = out_dir / RunFiles.EVAL_DOCUMENTS
    old = read_eval_documents(docs_path) if docs_path.is_file() else None
    out_dir.mkdir(parents=True, exist_ok=True)
    with ResourceMeter() as meter:
        if subject is None:
            subject = load_subject(params.model, params.run_dir, merge=params.merge, dtype=params.dtype,
                                   device=params.device)
        model, tokenizer = subject.model, subject.tokenizer
        _check_length(length, _context_length(model), params.protocol)
        if params.protocol == "rolling":
            sums = score_rolling(model, tokenizer, texts, max_length=params.max_length, stride=params.stride,
                                 batch_size=params.batch_size, chunk_tokens=params.chunk_tokens, progress=progress)
        elif params.protocol == "goldfish":
            sums = score_goldfish(model, tokenizer, texts, max_tokens=length, batch_size=params.batch_size,
                                  chunk_tokens=params.chunk_tokens, progress=progress)
        else:
            sums = score_paper(model, tokenizer, texts, block_size=block_size, batch_size=params.batch_size,
                               chunk_tokens=params.chunk_tokens, progress=progress)
    truncated = int(sums.pop("truncated").sum()) if "truncated" in sums else None
    per_doc = pd.DataFrame({"protocol": params.protocol, "split": scored, "id": ids, "source": sources, **sums})
    table = summarize(per_doc, by="source")
    rows = {r["group"]: r for r in table.to_dict("records")}
    settings = {"protocol": params.protocol, "split": scored,
                "max_length": length if params.protocol != "paper" else None,
                "stride": (params.stride or params.max_length) if params.protocol == "rolling" else None,
                "block_size": block_size if params.protocol == "paper" else None,
                "prefix_token": subject.prefix_token if params.protocol != "paper" else None,
                "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
                "batch_size": params.batch_size,
                "max_documents": params.external.max_documents if params.external else params.max_documents,
                "merged": subject.merged, "merge_note": subject.merge_note}
    entry = {
        "status": "finished",
        **settings,
        "metrics": _block(params.protocol, scored, rows["all"]),
        "by_source": {k: _block(params.protocol, scored, r) for k, r in rows.items() if k != "all"},
        "truncated": truncated,
        "params": params.model_dump(),
        "method": subject.method,
        "model": subject.model_info,
        "run_dir": params.run_dir,
        "data": {"data_dir": None if data_dir is None else str(data_dir),
                 "fingerprint": manifest.fingerprint if manifest else None,
                 "documents": len(texts), "external": external},
        "train_data_fingerprint": subject.record.data.fingerprint if subject.record else None,
        "cost": {**meter.result(), "torch_threads": threads,
                 "tokens_per_s": float(sums["tokens"].sum()) / max(meter.wall_time_s, 1e-9)},
        "environment": environment_info(),
        "device": subject.placement.record(),
    }
    entry = EvalEntry.model_validate(entry)
    eval_path = out_dir / RunFiles.EVAL
    earlier = read_record_if_any(eval_path, EvalRecord)
    record = EvalRecord(stage="evaluate", status="finished", method=subject.method, model=subject.model_info,
                        model_name=subject.model_info.name, run_dir=params.run_dir,
                        evaluations={**(earlier.evaluations if earlier else {}),
                                     f"{params.protocol}/{scored}": entry})
    if old is not None:
        old = old[~((old["protocol"] == params.protocol) & (old["split"] == scored))]
        per_doc = pd.concat([old, per_doc], ignore_index=True)
    write_parquet_atomic(per_doc, docs_path)
    write_text_atomic(out_dir / RunFiles.EVAL_METRICS, tidy_metrics(per_doc).to_csv(index=False))
    write_record(eval_path, record)
    return entry


def read_metrics(output_dir: str | Path):
    """The tidy metrics table (``eval_metrics.csv``) of an output folder, as pandas.

    Raises:
        DataError: no evaluation was written there.
    """
    import pandas as pd

    path = Path(output_dir) / RunFiles.EVAL_METRICS
    if not path.is_file():
        raise DataError(f"{output_dir}: no {RunFiles.EVAL_METRICS} (run the evaluation first)")
    return pd.read_csv(path)
