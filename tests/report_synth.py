"""Synthetic run records for the report and book tests, built from the record contract's
models (:mod:`bashkir_peft.records`) and written with :func:`~bashkir_peft.records.write_record`.
What a synthetic record does not vary (environment, model, decoding, costs, the downstream task)
comes from real records of the smoke grid (``tests/fixtures/records-v1``, read through the
contract's upgrade), so the fixtures have the shapes real runs write.

Per-document NLL is drawn so that each method has a known true bits-per-byte; the
evaluation record's metrics are the corpus-level sums of the per-document table, as the
evaluation stage computes them.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bashkir_peft.config.downstream import DownstreamParams
from bashkir_peft.config.evaluate import EvalParams
from bashkir_peft.config.generate import GenerateParams
from bashkir_peft.config.train import TrainParams
from bashkir_peft.data.folder import write_presplit_folder
from bashkir_peft.records import (
    EVAL_DOCUMENT_COLUMNS,
    CellAxes,
    CellRecord,
    Cost,
    DownstreamRecord,
    DownstreamResult,
    EvalData,
    EvalEntry,
    EvalRecord,
    Failure,
    FinalEval,
    GeneratedRun,
    GenerateRecord,
    GenerationSummary,
    GridFiles,
    GridIndex,
    IndexCell,
    IndexData,
    Losses,
    MetricBlock,
    RunFiles,
    StageState,
    TrainData,
    TrainRecord,
    read_record,
    write_record,
)

# (model, method, lora_r, seed, true bits per byte)
CELLS = [
    ("tiny-gpt2", "base", None, None, 3.00),
    ("tiny-gpt2", "full", None, 42, 2.00),
    ("tiny-gpt2", "full", None, 123, 2.10),
    ("tiny-gpt2", "lora", 8, 42, 2.50),
    ("tiny-gpt2", "lora", 8, 123, 2.40),
    ("tiny-gpt2", "lora", 8, 2024, 2.45),
]
N_DOCS = 60
STAMP = "2025-01-01T00:00:00+00:00"
REAL = Path(__file__).parent / "fixtures" / "records-v1"
TRAIN_REAL = read_record(REAL / "train.json", TrainRecord)
EVAL_REAL = read_record(REAL / "eval.json", EvalRecord).evaluations["rolling/test"]
GENERATE_REAL = read_record(REAL / "generate.json", GenerateRecord)
DOWNSTREAM_REAL = read_record(REAL / "downstream.json", DownstreamRecord)
ENVIRONMENT = TRAIN_REAL.environment
DATA = TrainData(dir="data", fingerprint="abc")


def model_info(name: str):
    """A base model's record entry named ``name`` (the rest as a real record has it)."""
    return TRAIN_REAL.model.model_copy(update={"name": name, "revision": "x"})


def documents(rng: np.random.Generator, n: int = N_DOCS) -> pd.DataFrame:
    """``n`` test documents: ``id``, ``bytes``, ``tokens``, ``words``, ``source``."""
    n_bytes = rng.integers(200, 2000, size=n)
    return pd.DataFrame({"id": [f"d{i:03d}" for i in range(n)], "bytes": n_bytes,
                         "tokens": (n_bytes / 3).astype(int), "words": (n_bytes / 8).astype(int),
                         "source": np.where(np.arange(n) % 2 == 0, "news", "wiki"),
                         "separator_nll": 0.0, "separator_tokens": 0})


def _block(frame: pd.DataFrame, protocol: str, source: str = "all") -> MetricBlock:
    nll = float(frame["nll"].sum())
    return MetricBlock(protocol=protocol, split="test", source=source, documents=len(frame), nll=nll,
                       tokens=int(frame["tokens"].sum()), bytes=int(frame["bytes"].sum()),
                       words=int(frame["words"].sum()), perplexity=math.exp(nll / frame["tokens"].sum()),
                       bits_per_byte=nll / (math.log(2) * frame["bytes"].sum()),
                       word_perplexity=math.exp(nll / frame["words"].sum()))


def _summary(bak: float, switch: float) -> GenerationSummary:
    return GenerationSummary(n=10, n_empty=0, code_switch_rate=switch, non_bashkir_word_share=1 - bak,
                             language_shares={"bak": bak, "rus": 0.05 if bak < 1 else 0.0,
                                              "eng": max(0.95 - bak, 0.0), "other": 0.0},
                             cyrillic_share=0.9, latin_share=0.1, other_letter_share=0.0, bashkir_letter_share=0.1,
                             distinct_1=0.6, distinct_2=0.8, repeated_ngram_rate=0.05, mean_words=12.0,
                             min_letters=20, code_switch_languages=["rus", "eng"])


def _generations(bak: float, switch: float, n: int = 10) -> pd.DataFrame:
    """Per-prompt rows of a run whose summary is ``_summary(bak, switch)``: every row has the
    letter shares of the summary; the first ``switch * n`` rows hold a long English sentence."""
    n_switch = round(switch * n)
    rus = 5 if bak < 1 else 0
    letters = {"bak": round(100 * bak), "rus": rus, "eng": 100 - round(100 * bak) - rus, "other": 0}
    return pd.DataFrame({"n_letters": [100] * n, **{f"letters_{k}": [v] * n for k, v in letters.items()},
                         "long_bak": [True] * n, "long_rus": [False] * n,
                         "long_eng": [i < n_switch for i in range(n)], "long_other": [False] * n})


def _train_params(model: str, method: str, lora_r, seed) -> TrainParams:
    params = {"model": model, "method": method, "seed": seed, "block_size": 128, "learning_rate": 1e-4}
    if lora_r is not None:
        params.update(lora_r=lora_r, lora_alpha=2 * lora_r)
    return TrainParams.model_validate(params)


def _started_train(params: TrainParams | dict, **fields) -> TrainRecord:
    params = TrainParams.model_validate(params | {"learning_rate": 1e-4}) if isinstance(params, dict) else params
    return TrainRecord(**({"params": params, "optimizer": "adamw_torch",
                           "compute_dtype": "float32", "data": DATA, "started": STAMP,
                           "sessions": [{"started": STAMP}]} | fields))


def _cell(run_dir: Path, status: str, model: str, method: str, lora_r, seed, stages: dict[str, str],
          error: str | None = None, **fields) -> CellRecord:
    axes = CellAxes(model=model, method=method, lora_r=lora_r, seed=seed, label=None)
    return CellRecord(status=status, run_id=run_dir.name, grid="synth", grid_file=None, params=axes,
                      identity={"axes": axes.model_dump(), "params": {}, "data_fingerprint": "abc",
                                "model_revision": "x"},
                      sources={}, data_dir=str(run_dir.parent / GridFiles.DATA), corpus=None,
                      stages={s: StageState(status=st, notebook=str(run_dir / RunFiles.NOTEBOOKS / f"{s}.ipynb"),
                                            parameters={}) for s, st in stages.items()},
                      error=error, **fields)


def write_run(root: Path, run_id: str, model: str, method: str, lora_r, seed, bpb: float,
              docs: pd.DataFrame, rng: np.random.Generator, *, generate: bool = True) -> Path:
    """Write one finished run folder (cell, training unless ``base``, evaluation, generation)."""
    d = root / run_id
    d.mkdir(parents=True)
    if method != "base":
        trainable = {"full": 1_000_000, "lora": 4096 * lora_r if lora_r else 0}.get(method, 1000)
        write_record(d / RunFiles.TRAIN, _started_train(
            _train_params(model, method, lora_r, seed), status="finished", reason=None,
            model=model_info(model), target_modules=["c_attn"], trainable_params=trainable,
            total_params=1_000_000, trainable_share=trainable / 1_000_000, environment=ENVIRONMENT,
            global_step=10, tokens_seen=20_480, tokens_per_s=1000.0 - trainable / 1e4,
            cost=Cost(wall_time_s=10.0 + trainable / 1e5, peak_rss_mib=500.0, peak_gpu_mib=None),
            losses=Losses(train=[{"step": 1, "loss": 3.0, "learning_rate": 1e-4}], eval=[]),
            final_eval=FinalEval(eval_loss=1.0, perplexity=math.e, blocks=4), finished=STAMP))
    # Per-document NLL (nats): true bpb * ln2 * bytes, with document-level noise. The paper
    # protocol scores the same documents 10 % worse (any other number would do).
    nll = bpb * math.log(2) * docs["bytes"].to_numpy() * rng.normal(1.0, 0.05, size=len(docs))
    rolling = docs.assign(nll=nll, protocol="rolling", split="test")[list(EVAL_DOCUMENT_COLUMNS)]
    paper = rolling.assign(nll=1.1 * nll, protocol="paper")
    pd.concat([rolling, paper], ignore_index=True).to_parquet(d / RunFiles.EVAL_DOCUMENTS)
    run_dir = None if method == "base" else str(d)
    evaluations = {f"{proto}/test": EvalEntry(
        status="finished", protocol=proto, split="test", max_length=None if proto == "rolling" else 128,
        stride=64 if proto == "rolling" else None, block_size=128 if proto == "paper" else None,
        prefix_token=None, dtype="float32", batch_size=8, max_documents=None, merged=False, merge_note=None,
        metrics=_block(frame, proto), by_source={s: _block(g, proto, s) for s, g in frame.groupby("source")},
        params=EvalParams(protocol=proto, split="test", model=model if run_dir is None else None, run_dir=run_dir,
                          data_dir="data"),
        method=method, model=model_info(model), run_dir=run_dir,
        data=EvalData(data_dir="data", fingerprint="abc", documents=len(frame), external=None),
        train_data_fingerprint=None if method == "base" else "abc", cost=EVAL_REAL.cost,
        environment=ENVIRONMENT) for proto, frame in (("rolling", rolling), ("paper", paper))}
    write_record(d / RunFiles.EVAL, EvalRecord(stage="evaluate", status="finished", method=method,
                                               model=model_info(model), model_name=model, run_dir=run_dir,
                                               evaluations=evaluations))
    if generate:
        bak = 0.9 if method != "full" else 0.6
        write_record(d / RunFiles.GENERATE, GenerateRecord(
            status="finished", label=run_id, run=GeneratedRun(method=method, run_dir=run_dir, seed=seed),
            model=model_info(model), data=GENERATE_REAL.data,
            params=GenerateParams(model=model, seed=1234, data_dir="data"),  # a decoding seed, not the cell's
            decoding=GENERATE_REAL.decoding, prefix_token="<|endoftext|>", summary=_summary(bak, 1 - bak),
            reference_summary=_summary(1.0, 0.0), files={"generations": RunFiles.GENERATIONS},
            cost=GENERATE_REAL.cost, created_utc=STAMP, environment=ENVIRONMENT))
        _generations(bak, 1 - bak).to_parquet(d / RunFiles.GENERATIONS)
    stages = {s: "finished" for s in (("evaluate", "generate") if method == "base" else
                                      ("train", "evaluate", "generate"))}
    write_record(d / RunFiles.CELL, _cell(d, "finished", model, method, lora_r, seed, stages, wall_time_s=60.0))
    (d / RunFiles.NOTEBOOKS).mkdir()
    (d / RunFiles.NOTEBOOKS / "03_evaluate.ipynb").write_text(
        json.dumps(notebook("# Evaluation\n", "Run " + run_id)))
    return d


def write_adapted_pair(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, Path, Path]:
    """Two finished LoRA r=8 runs of ``tiny-gpt2`` on the same documents: ``a`` on the model's
    tokenizer, ``b`` on an adapted tokenizer ``k8`` that cuts each document into a third of the
    tokens (its cell's ``tokenizer`` set to ``k8``).

    Returns:
        ``(documents, documents of b, folder of a, folder of b)``.
    """
    rng = np.random.default_rng(0)
    docs = documents(rng)
    fewer = docs.assign(tokens=docs["tokens"] // 3)
    plain = write_run(root, "a", "tiny-gpt2", "lora", 8, 42, 2.5, docs, rng)
    adapted = write_run(root, "b", "tiny-gpt2", "lora", 8, 42, 2.3, fewer, rng)
    cell = read_record(adapted / RunFiles.CELL, CellRecord)
    write_record(adapted / RunFiles.CELL, cell.model_copy(update={"params": cell.params.model_copy(
        update={"tokenizer": "k8"})}))
    return docs, fewer, plain, adapted


def write_index(root: Path, run_ids: list[str]) -> Path:
    """Write the grid runner's index ``grid.json`` listing the cells of ``run_ids``."""
    cells = []
    for run_id in run_ids:
        cell = read_record(root / run_id / RunFiles.CELL, CellRecord)
        cells.append(IndexCell(**cell.params.model_dump(), run_id=run_id, run_dir=str(root / run_id),
                               status=cell.status, error=cell.error))
    data = IndexData(status="finished", fingerprint="abc", notebook=str(root / "01_data_prep.ipynb"),
                     data_dir=str(root / GridFiles.DATA), error=None)
    return write_record(root / GridFiles.INDEX, GridIndex(grid="synth", grid_file=None, description=None,
                                                          corpus=None, data=data, cells=cells))


def notebook(*markdown: str) -> dict:
    """A small executed notebook (one markdown cell, one code cell with its output)."""
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": list(markdown)},
                    {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": ["print(1)"],
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]}],
          "metadata": {"kernelspec": {"name": "bashkir-peft", "display_name": "Python (bashkir-peft)",
                                      "language": "python"}}, "nbformat": 4, "nbformat_minor": 4}


def make_grid(root: Path, seed: int = 0, *, failed: bool = True) -> Path:
    """Write the synthetic grid into ``root`` (the runs folder, with its index) and return it."""
    rng = np.random.default_rng(seed)
    docs = documents(rng)
    # The grid runner's data stage: the data folder (no tokenizer table: fertility comes
    # from the evaluation sums) and the executed notebook.
    (root / GridFiles.DATA).mkdir(parents=True)
    (root / "01_data_prep.ipynb").write_text(json.dumps(notebook("# Data preparation\n", "kept 60 documents")))
    (root / GridFiles.REPLACED / "old").mkdir(parents=True)
    (root / GridFiles.REPLACED / "old" / "01_data_prep.ipynb").write_text(
        json.dumps(notebook("# Old\n", "moved aside")))
    run_ids = [f"run{i:02d}-{method}" for i, (_, method, *_r) in enumerate(CELLS)]
    for run_id, (model, method, r, s, bpb) in zip(run_ids, CELLS):
        write_run(root, run_id, model, method, r, s, bpb, docs, rng)
    if failed:
        d = root / "run99-qlora"
        d.mkdir()
        reason = "ValueError: Target modules {'nope'} not found in the base model"
        write_record(d / RunFiles.TRAIN, _started_train(_train_params("tiny-gpt2", "qlora", 8, 42), status="failed", reason=reason))
        failure = Failure(stage="train", notebook=str(d / RunFiles.NOTEBOOKS / "02_train.ipynb"),
                          ename="ValueError", evalue=reason.partition(": ")[2], error=f"train: {reason}",
                          cell_index=3)
        write_record(d / RunFiles.CELL, _cell(d, "failed", "tiny-gpt2", "qlora", 8, 42, {"train": "failed"},
                                              error=f"train: {reason}", failure=failure))
        # A cell still running (training started, no evaluation yet): neither a result nor a failure.
        d = root / "run98-lora"
        d.mkdir()
        write_record(d / RunFiles.TRAIN, _started_train(_train_params("tiny-gpt2", "lora", 16, 42),
                                                               status="running", reason=None))
        write_record(d / RunFiles.CELL, _cell(d, "running", "tiny-gpt2", "lora", 16, 42, {"train": "running"}))
        run_ids += ["run99-qlora", "run98-lora"]
    write_index(root, run_ids)
    return root


# Minimal valid records for the grid runner's throwaway stage notebooks (tests/test_grid_runner.py).


def stage_train_record(params: dict, status: str = "finished", reason: str | None = None, **fields) -> TrainRecord:
    """A training record of ``status`` (finished: every field a finished run has); ``fields``
    replace the stand-in values (e.g. ``model``, ``data``)."""
    if status != "finished":
        return _started_train(params, status=status, reason=reason, **fields)
    return _started_train(params, status="finished", reason=None, **({"model": model_info(params["model"])} | fields),
                          trainable_params=1, total_params=2, global_step=1, tokens_seen=1,
                          cost=Cost(wall_time_s=1.0, peak_rss_mib=1.0, peak_gpu_mib=None),
                          losses=Losses(train=[], eval=[]), final_eval=FinalEval(eval_loss=1.0, perplexity=math.e,
                                                                                 blocks=1), finished=STAMP)


def stage_eval_entry(protocol: str, model: str | None, run_dir: str | None) -> EvalEntry:
    """One finished evaluation entry over a single made-up document."""
    doc = pd.DataFrame({"nll": [2.0], "tokens": [4], "bytes": [8], "words": [2], "source": ["all"]})
    return EvalEntry(status="finished", protocol=protocol, split="test", max_length=None, stride=None, block_size=None,
                     prefix_token=None, dtype="float32", batch_size=1, max_documents=None, merged=False,
                     merge_note=None, metrics=_block(doc, protocol), by_source={},
                     params=EvalParams(model=model, run_dir=run_dir, data_dir="data", protocol=protocol),
                     method="base" if run_dir is None else "lora", model=None, run_dir=run_dir,
                     data=EvalData(data_dir="data", fingerprint="abc", documents=1, external=None),
                     train_data_fingerprint=None, cost=EVAL_REAL.cost, environment=ENVIRONMENT)


def downstream_result(approach: str, setting: str, accuracy: float, macro_f1: float, width: float = 0.05,
                      **extra) -> DownstreamResult:
    """One classifier's scores with an interval of ``+- width``."""
    return DownstreamResult(approach=approach, setting=setting, accuracy=accuracy, accuracy_low=accuracy - width,
                            accuracy_high=accuracy + width, macro_f1=macro_f1, macro_f1_low=macro_f1 - width,
                            macro_f1_high=macro_f1 + width, n=204, **extra)


def stage_downstream_record(model: str | None, run_dir: str | None, method: str = "base",
                            results: list[DownstreamResult] | None = None) -> DownstreamRecord:
    """A finished downstream record (default: the two baselines only)."""
    results = results or [downstream_result("majority", "most frequent train category", 0.25, 0.057),
                          downstream_result("char_tfidf", "char 1-4-gram TF-IDF + logistic regression", 0.6, 0.55)]
    return DownstreamRecord(stage="downstream", status="finished", method=method, model=None, model_name=model,
                            run_dir=run_dir, task=DOWNSTREAM_REAL.task, prompt=DOWNSTREAM_REAL.prompt, probe=None,
                            results=results, params=DownstreamParams(model=model, run_dir=run_dir),
                            cost=DOWNSTREAM_REAL.cost, environment=ENVIRONMENT)


def stage_generate_record(label: str) -> GenerateRecord:
    """A finished generation record."""
    return GenerateRecord(status="finished", label=label, run=GeneratedRun(method="base", run_dir=None), model=None,
                          data=GENERATE_REAL.data, params=GENERATE_REAL.params, decoding=GENERATE_REAL.decoding,
                          prefix_token="<|endoftext|>", summary=_summary(1.0, 0.0), reference_summary=None,
                          files={}, cost=GENERATE_REAL.cost, created_utc=STAMP, environment=ENVIRONMENT)


def write_corpus_data(folder: Path, corpus_dir: Path) -> tuple[Path, list[str]]:
    """A prepared data folder of the demo corpus's first 44 documents: 40 training, 2
    validation and 4 test documents (ids ``t000..``, ``v000..``, ``d000..``), for the floors'
    tests. Returns the folder and the 44 texts."""
    with gzip.open(corpus_dir / "bashkir-demo.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in itertools.islice(f, 44)]

    def frame(ts: list[str], prefix: str) -> pd.DataFrame:
        return pd.DataFrame({"id": [f"{prefix}{i:03d}" for i in range(len(ts))], "source": "web", "text": ts})

    write_presplit_folder(folder, {"train": frame(texts[:40], "t"), "validation": frame(texts[40:42], "v"),
                                   "test": frame(texts[40:44], "d")}, "fp", {"kind": "fixture", "location": "texts"})
    return folder, texts
