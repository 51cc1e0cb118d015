"""Generate continuations of Bashkir prompts from a base model or a training run, and measure them.

One call, :func:`run_generation`, does the whole stage of ``notebooks/04_generate.ipynb``:
validated :class:`GenerateParams` -> prompts (the opening words of held-out test documents,
or a prompts file) -> batched generation with left padding -> per-continuation language
metrics (:mod:`bashkir_peft.text.codeswitch`) -> ``OUTPUT_DIR/generations.parquet`` and
``OUTPUT_DIR/generate.json`` (summary, decoding settings and provenance), both written
atomically. :func:`side_by_side` and :func:`run_summaries` read several such folders back
into the tables of the report.

Conditioning: every prompt is preceded by the evaluation's prefix token
(:func:`bashkir_peft.models.loading.prefix_token_id`: BOS, or EOS where the tokenizer has no
BOS, as lm-evaluation-harness does), so a prompt reads as the start of a document, as in
evaluation and as after the EOS that ends each document in training data.

Determinism: batch ``b`` (0-based) is generated right after ``torch.manual_seed(seed + b)``,
so the same model, prompts, ``batch_size`` and decoding settings give the same text on the
same hardware and library versions. Sampled text depends on ``batch_size`` (the random
draws of a batch are made together); greedy text does not, up to float rounding.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bashkir_peft.atomic import write_parquet_atomic
from bashkir_peft.config.generate import GenerateParams, PromptsFile
from bashkir_peft.data.folder import load_split, read_manifest
from bashkir_peft.errors import DataError
from bashkir_peft.generate.decoding import (
    budget_criteria,
    budget_reached,
    decode_whole,
    penalty_processors,
    trim_to_budget,
)
from bashkir_peft.generate.words import lexicon_info, training_lexicon, word_counts
from bashkir_peft.models.loading import prefix_token_id
from bashkir_peft.models.subject import Subject, load_subject
from bashkir_peft.models.trained import read_finished_run
from bashkir_peft.names import sha256_file
from bashkir_peft.provenance import ResourceMeter, environment_info
from bashkir_peft.records import GeneratedRun, GenerateRecord, RunFiles, TrainRecord, read_record, write_record
from bashkir_peft.runtime import configure_threads
from bashkir_peft.settings import resolve_path
from bashkir_peft.text.codeswitch import analyze_many, summarize
from bashkir_peft.text.crosscheck import crosscheck
from bashkir_peft.yamlio import load_yaml


@dataclass(frozen=True)
class Prompt:
    """One prompt: a stable id, its text, and (from data) the document's true next words."""

    id: str
    text: str
    reference: str | None = None


def _rank_key(doc_id: str) -> str:
    return hashlib.sha256(doc_id.encode("utf-8")).hexdigest()


def select_prompts(ids: list[str], texts: list[str], n_prompts: int, prompt_words: int,
                   reference_words: int = 0) -> list[Prompt]:
    """Deterministic prompts from documents: the opening ``prompt_words`` words of the
    ``n_prompts`` documents with the smallest SHA-256 of their id, among documents with more
    than ``prompt_words`` words. The choice depends on the ids only (not on a seed), so every
    run of a study gets the same prompts, and adding documents changes it only where a new id
    ranks first.

    Args:
        ids, texts: document ids and texts (same length).
        n_prompts: prompts wanted.
        prompt_words: whitespace words per prompt.
        reference_words: the document's next words kept as ``reference`` (0 = none).

    Returns:
        Up to ``n_prompts`` :class:`Prompt` (fewer if fewer documents qualify), in rank order.

    Raises:
        DataError: no document has more than ``prompt_words`` words.
    """
    order = sorted(range(len(ids)), key=lambda i: _rank_key(ids[i]))
    out = []
    for i in order:
        w = texts[i].split()
        if len(w) <= prompt_words:
            continue
        ref = " ".join(w[prompt_words : prompt_words + reference_words]) if reference_words else None
        out.append(Prompt(ids[i], " ".join(w[:prompt_words]), ref))
        if len(out) == n_prompts:
            break
    if not out:
        raise DataError(f"no document has more than prompt_words={prompt_words} words to make a prompt from")
    return out


def load_prompts(params: GenerateParams) -> tuple[list[Prompt], dict]:
    """The prompts of ``params`` and a provenance record of where they came from.

    Returns:
        ``(prompts, data_record)``; ``data_record`` has ``kind`` (``test_split`` or
        ``prompts_file``), the path, and ``fingerprint`` (the data manifest's, or the file's
        SHA-256).

    Raises:
        ConfigError: the prompts file is missing or malformed.
        DataError: the data folder has no usable test split / manifest.
    """
    if params.prompts_file:
        path = resolve_path(params.prompts_file)
        pf = load_yaml(path, PromptsFile)
        prompts = [Prompt(p.id, p.text.strip(), p.reference) for p in pf.prompts[: params.n_prompts]]
        return prompts, {"kind": "prompts_file", "path": str(path), "source": pf.source,
                         "fingerprint": "sha256:" + sha256_file(path), "data_dir": params.data_dir}

    manifest = read_manifest(params.data_dir)
    ds = load_split(params.data_dir, "test")
    prompts = select_prompts(list(ds["id"]), list(ds["text"]), params.n_prompts, params.prompt_words,
                             params.reference_words)
    return prompts, {"kind": "test_split", "path": str(params.data_dir),
                     "fingerprint": manifest.fingerprint, "test_documents": len(ds)}


def generate_texts(model, tokenizer, prompts: list[str], params: GenerateParams) -> list[dict]:
    """Generate one continuation per prompt, in batches with left padding.

    Each row stops at EOS, at the text budget (``params.budget`` words or characters, see
    :func:`bashkir_peft.generate.decoding.budget_criteria`) or at the ``max_new_tokens`` cap,
    whichever comes first; a repetition penalty other than 1.0 applies to generated tokens
    only (:func:`bashkir_peft.generate.decoding.penalty_processors`).

    Args:
        model: a causal LM (``transformers`` or ``peft``), on its device.
        tokenizer: its tokenizer (EOS must be set; pad falls back to EOS).
        prompts: prompt texts.
        params: decoding settings, ``seed`` and ``batch_size``.

    Returns:
        Per prompt ``{"continuation": str, "n_new_tokens": int, "stopped_at_eos": bool,
        "stop_reason": "eos" | "budget" | "token_cap"}``; ``continuation`` is the decoded new
        tokens up to (without) the first EOS, special tokens skipped, cut to the budget and
        never ending inside a character; ``n_new_tokens`` counts the tokens generated before
        the stop (including any past the budget that the cut removed).
    """
    import torch
    from transformers import GenerationConfig

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    settings = {k: v for k, v in params.decoding().items() if k not in ("repetition_penalty", "budget", "budget_unit")}
    config = GenerationConfig(**settings, eos_token_id=eos, pad_token_id=pad)
    prefix = prefix_token_id(tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[dict] = []
    try:
        for b, start in enumerate(range(0, len(prompts), params.batch_size)):
            chunk = prompts[start : start + params.batch_size]
            enc = [[prefix] + tokenizer(p, add_special_tokens=False)["input_ids"] for p in chunk]
            width = max(map(len, enc))
            ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc], device=device)
            mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=device)
            torch.manual_seed(params.seed + b)  # seeds the CPU and every CUDA generator
            with torch.inference_mode():
                gen = model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                     logits_processor=penalty_processors(params.repetition_penalty, width),
                                     stopping_criteria=budget_criteria(tokenizer, width, params.budget,
                                                                       params.budget_unit))
            for row in gen[:, width:].tolist():
                # a finished row is padded: the text ends at its EOS or first pad
                stop = next((i for i, t in enumerate(row) if t in (eos, pad)), len(row))
                text = decode_whole(tokenizer, row[:stop])
                # budget first: a row stopped by the budget is padded, and pad may be EOS
                reason = ("budget" if budget_reached(text, params.budget, params.budget_unit) else
                          "eos" if stop < len(row) else "token_cap")
                out.append({"continuation": trim_to_budget(text, params.budget, params.budget_unit),
                            "n_new_tokens": stop, "stopped_at_eos": reason == "eos", "stop_reason": reason})
    finally:
        model.train(was_training)
    return out


def _run_info(params: GenerateParams, record: TrainRecord | None) -> GeneratedRun:
    """The run that generates: the base model, or a trained run (its folder, status, seed, rank,
    training data and parameters)."""
    if record is None:
        return GeneratedRun(method="base", run_dir=None)
    tp = record.params
    return GeneratedRun(method=tp.method, run_dir=str(params.run_dir), status=record.status, seed=tp.seed,
                        lora_r=tp.lora_r, data_fingerprint=record.data.fingerprint, params=tp)


def default_label(params: GenerateParams, subject: Subject) -> str:
    """``label``, else the subject's run label (:meth:`bashkir_peft.models.subject.Subject.label`),
    e.g. ``smollm2-135m/qlora/r8/s42``: the training seed of a run, the decoding seed of a base
    model (so base cells of several seeds differ)."""
    return params.label or subject.label(params.seed)


def _clean(obj):
    """NaN -> None, so the JSON record is valid JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def run_generation(params: GenerateParams) -> GenerateRecord:
    """The generation stage: prompts -> continuations -> metrics -> files.

    Prompts and the run folder are checked before any model is loaded. Writes
    ``generations.parquet`` (first the texts alone, as soon as they exist; then with metrics) (one row per prompt: ``prompt_id``, ``prompt``, ``continuation``,
    ``reference``, ``n_new_tokens``, ``stopped_at_eos``, ``stop_reason`` and the metrics of
    :func:`bashkir_peft.text.codeswitch.analyze`; where the data folder has a training split, the
    word counts of :data:`~bashkir_peft.records.GENERATION_WORD_COLUMNS`,
    :func:`bashkir_peft.generate.words.word_counts`) and then ``generate.json`` (the record), both
    atomically, into ``params.out_dir``.

    Args:
        params: validated :class:`GenerateParams`.

    Returns:
        The record written to ``generate.json``: ``status``, ``label``, ``run``, ``model``,
        ``data``, ``params``, ``decoding``, ``prefix_token``, ``summary`` (see
        :func:`bashkir_peft.text.codeswitch.summarize`, plus the agreement with an independent
        identifier, :func:`bashkir_peft.text.crosscheck.crosscheck`), ``reference_summary`` (the
        same on the documents' true next words, when prompts come from data), ``stops``
        (continuations ended by EOS, the budget, the token cap), ``cost``,
        ``environment``, ``lexicon`` (the word counts' lexicon and pooled in-lexicon and copy
        rates; ``None`` without a training split). ``cost``: wall time and peak memory of loading plus generating
        (:class:`bashkir_peft.provenance.ResourceMeter`), ``generate_time_s`` and
        ``new_tokens_per_s`` and ``words_per_s`` of the generation alone.

    Raises:
        ConfigError: missing run folder, prompts file or data, or an unfinished run.
        DataError: unusable data.
    """
    import pandas as pd

    if params.run_dir is not None:
        trained = read_finished_run(params.run_dir, params.model)
        if params.data_dir is None and not params.prompts_file:
            params = params.model_copy(update={"data_dir": str(trained.data.dir)})
    prompts, data = load_prompts(params)
    configure_threads(params.num_threads)
    with ResourceMeter() as meter:
        # dtype is a base model's only (GenerateParams): a run generates in its training dtype
        subject = load_subject(params.model, params.run_dir, merge=params.merge,
                               dtype=params.dtype if params.run_dir is None else None, device=params.device)
        model, tokenizer = subject.model, subject.tokenizer
        t0 = time.perf_counter()
        gens = generate_texts(model, tokenizer, [p.text for p in prompts], params)
        gen_seconds = time.perf_counter() - t0
    run = _run_info(params, subject.record)
    if run.data_fingerprint and data["kind"] == "test_split":
        data["matches_training_data"] = run.data_fingerprint == data["fingerprint"]
    label = default_label(params, subject)
    df = pd.DataFrame([
        {"label": label, "prompt_id": p.id, "prompt": p.text, "continuation": g["continuation"],
         "reference": p.reference, "n_new_tokens": g["n_new_tokens"], "stopped_at_eos": g["stopped_at_eos"],
         "stop_reason": g["stop_reason"]}
        for p, g in zip(prompts, gens)
    ])
    out = params.out_dir
    write_parquet_atomic(df, out / RunFiles.GENERATIONS)  # the texts are kept even if measuring fails
    texts = df["continuation"].tolist()
    rows = analyze_many(texts, params.min_letters)
    df = pd.concat([df, pd.DataFrame(rows)], axis=1)
    lexicon = training_lexicon(params.data_dir)
    if lexicon is not None:  # words, not letters: counted once here, carried by a results bundle
        counts = word_counts(lexicon[0], texts, [p.reference for p in prompts])
        df = pd.concat([df, counts], axis=1)
    refs = [p.reference for p in prompts if p.reference]
    cost = meter.result()
    n_tokens = int(df["n_new_tokens"].sum())
    n_words = sum(len(t.split()) for t in texts)
    cost.update(generate_time_s=gen_seconds, new_tokens=n_tokens,
                new_tokens_per_s=n_tokens / gen_seconds if gen_seconds else None,
                words_per_s=n_words / gen_seconds if gen_seconds else None)
    result = {
        "status": "finished",
        "label": label,
        "run": run,
        "model": subject.model_info,
        "data": data,
        "params": params.model_dump(),
        "decoding": {**params.decoding(), "seed": params.seed, "batch_size": params.batch_size,
                     "padding_side": "left", "seeding": "torch.manual_seed(seed + batch index)",
                     "repetition_penalty_scope": "generated tokens only (prompt not penalized)",
                     "budget_rule": "stop once the decoded continuation holds the budget, then cut to it; "
                                    "max_new_tokens is a cap"},
        "prefix_token": subject.prefix_token,
        "summary": summarize(texts, rows, params.min_letters) | {"crosscheck": crosscheck(texts, params.min_letters)},
        "reference_summary": (summarize(refs, min_letters=params.min_letters)
                              | {"crosscheck": crosscheck(refs, params.min_letters)}) if refs else None,
        "stops": {k: int((df["stop_reason"] == k).sum()) for k in ("eos", "budget", "token_cap")},
        "files": {"generations": RunFiles.GENERATIONS},
        "cost": cost,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment_info(),
        "device": subject.placement.record(),
        "lexicon": None if lexicon is None else lexicon_info(params.data_dir, *lexicon, counts),
    }
    record = GenerateRecord.model_validate(_clean(result))
    write_parquet_atomic(df, out / RunFiles.GENERATIONS)
    write_record(out / RunFiles.GENERATE, record)
    return record


def read_generations(folder: str | os.PathLike) -> tuple[GenerateRecord, pd.DataFrame]:  # noqa: F821
    """``(record, generations table)`` of a folder written by :func:`run_generation`.

    Raises:
        DataError: the folder has no finished generation; RecordError: a record that does not
            match the contract.
    """
    import pandas as pd

    folder = Path(folder)
    rec_path, pq = folder / RunFiles.GENERATE, folder / RunFiles.GENERATIONS
    if not rec_path.is_file() or not pq.is_file():
        raise DataError(f"{folder}: no {RunFiles.GENERATE} + {RunFiles.GENERATIONS} (run the generation first)")
    return read_record(rec_path, GenerateRecord), pd.read_parquet(pq)


def side_by_side(folders: list[str | os.PathLike], reference: bool = True) -> pd.DataFrame:  # noqa: F821
    """Prompt x run table of continuations, for the report.

    Args:
        folders: output folders of :func:`run_generation` (run folders or base-model folders).
        reference: add a ``reference`` column (the document's true next words) where known.

    Returns:
        One row per prompt (index ``prompt_id``; columns ``prompt``, optionally ``reference``,
        then one column per run label holding its continuation; a prompt a run lacks is NaN).

    Raises:
        DataError: a folder without generations, or two folders with the same label.
    """
    import pandas as pd

    tables, labels = [], []
    for f in folders:
        rec, df = read_generations(f)
        if rec.label in labels:
            raise DataError(f"two generation folders share the label {rec.label!r}; set label= to tell them apart")
        labels.append(rec.label)
        tables.append(df.set_index("prompt_id"))
    base = pd.concat([t[["prompt", "reference"]] for t in tables])
    base = base[~base.index.duplicated()]
    out = base[["prompt", "reference"]] if reference else base[["prompt"]]
    if reference and out["reference"].isna().all():
        out = out[["prompt"]]
    cols = {label: t["continuation"] for label, t in zip(labels, tables)}
    return out.join(pd.DataFrame(cols), how="left")


def run_summaries(folders: list[str | os.PathLike]) -> pd.DataFrame:  # noqa: F821
    """One row per run: label, model, method, seed, lora_r and the run's summary metrics
    (``lang_share_<lang>``, ``switch_rate_<lang>``, ``crosscheck_agreement`` flattened).

    Raises:
        DataError: a folder without generations.
    """
    import pandas as pd

    rows = []
    for f in folders:
        rec, _ = read_generations(f)
        run = rec.run
        summary = rec.summary.model_dump(exclude={"code_switch_languages"})
        shares, switches = summary.pop("language_shares"), summary.pop("switch_rates") or {}
        check = summary.pop("crosscheck") or {}
        rows.append({"label": rec.label, "model": rec.model.name if rec.model else None,
                     "method": run.method, "lora_r": run.lora_r, "seed": run.seed,
                     **summary, **{f"lang_share_{k}": v for k, v in shares.items()},
                     **{f"switch_rate_{k}": v for k, v in switches.items()},
                     "crosscheck_agreement": check.get("agreement")})
    return pd.DataFrame(rows)
